package plugins_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins"
)

// TestAsyncPluginCallsDoNotBlockTheInstance runs the test guest in the async shape on
// ONE instance: outbound requests to a slow upstream and a pubsub wait overlap
// instead of queueing behind each other, because the host never blocks an async
// instance in a plugin call.
func TestAsyncPluginCallsDoNotBlockTheInstance(t *testing.T) {
	const delay = 500 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Write([]byte("slow hi"))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-out", guest, "async", grants, 1)

	// A subscriber parks on the instance for the whole test.
	sub := subscriber(t, s.url, "ticks", 1)

	const n = 4
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body := get(t, s.url+"/fetch?url="+url.QueryEscape(up.URL+"/")); body != "200 slow hi" {
				t.Errorf("fetch = %q", body)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(start); took > n*delay*3/4 {
		t.Fatalf("%d fetches of %s took %s on one async instance: they were serialised", n, delay, took)
	}
	want(t, s.url+"/pub?t=ticks&m=tick", "ok")
	if got := next(t, sub); got != "tick" {
		t.Fatalf("subscriber got %q", got)
	}
}
