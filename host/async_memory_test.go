package host

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAsyncIdleWebSocketGuestStack: an idle WebSocket parks its connection's
// coroutine in the guest, and the stack it keeps is what an idle connection
// costs inside the guest. It measures 4 KiB after a GC (with the test guest's
// echo handler; the same as when connections parked on channels); more means
// the SDK's parked frames grew.
func TestAsyncIdleWebSocketGuestStack(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	stack := func() int {
		t.Helper()
		_, body := get(t, s.srv.URL+"/memstats?gc=1")
		for _, f := range strings.Fields(body) {
			if v, ok := strings.CutPrefix(f, "stack="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		t.Fatalf("no stack= in %q", body)
		return 0
	}
	before := stack()
	const n = 400
	for i := range n {
		c := dial(t, wsURL(s.srv, "/ws"))
		echo(t, c, websocket.TextMessage, []byte(fmt.Sprint("hello ", i)))
	}
	per := (stack() - before) / n
	t.Logf("guest stack per idle WebSocket: %d bytes", per)
	if per > 4608 {
		t.Errorf("guest stack per idle WebSocket %d bytes, want 4 KiB at most", per)
	}
}
