package statuswriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStatus(t *testing.T) {
	cases := []struct {
		name string
		h    func(w http.ResponseWriter)
		want int
	}{
		{"nothing written", func(w http.ResponseWriter) {}, 0},
		{"body first", func(w http.ResponseWriter) { io.WriteString(w, "x") }, 200},
		{"interim then final", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(404) }, 404},
		{"101 is an answer", func(w http.ResponseWriter) { w.WriteHeader(101) }, 101},
		{"first final wins", func(w http.ResponseWriter) { w.WriteHeader(500); w.WriteHeader(200) }, 500},
		{"ReadFrom", func(w http.ResponseWriter) { io.Copy(w, strings.NewReader("x")) }, 200},
	}
	for _, c := range cases {
		sw := &Writer{ResponseWriter: httptest.NewRecorder()}
		c.h(sw)
		if sw.Status() != c.want {
			t.Errorf("%s: status %d, want %d", c.name, sw.Status(), c.want)
		}
		sw.Reset(httptest.NewRecorder())
		if sw.Status() != 0 {
			t.Errorf("%s: status %d after Reset", c.name, sw.Status())
		}
	}
}

// A hijacked connection (a WebSocket handshake) counts as a 101, and the
// hijack reaches the real connection through the wrapper.
func TestHijackIs101(t *testing.T) {
	got := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &Writer{ResponseWriter: w}
		c, _, err := sw.Hijack()
		if err != nil {
			t.Error(err)
			got <- -1
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\n")
		c.Close()
		got <- sw.Status()
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Fatalf("got %q", line)
	}
	if s := <-got; s != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", s)
	}
}
