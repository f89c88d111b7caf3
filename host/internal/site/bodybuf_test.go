package site

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A proxied route reads request bodies before they go to the upstream (the
// default), so a slow upload does not hold an upstream with one worker,
// like a gunicorn sync worker; with buffer_body = 0 (the control) it does.
// A chunked upload reaches the upstream with its Content-Length.
func TestProxyReadsBodiesAhead(t *testing.T) {
	worker := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		worker <- struct{}{}
		defer func() { <-worker }()
		b, _ := io.ReadAll(r.Body)
		if len(b) > 64 {
			b = b[:64]
		}
		fmt.Fprintf(w, "len=%d te=%v body=%s", r.ContentLength, r.TransferEncoding, b)
	}))
	defer up.Close()
	for _, tt := range []struct {
		name, extra string
		served      bool
	}{{"default", "", true}, {"buffer_body = 0", "buffer_body = 0\n", false}} {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, head+fmt.Sprintf(`
[upstreams.back]
servers = [{ url = %q }]

[[routes]]
upstream = "back"
%s`, up.URL, tt.extra), nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// More than the proxy's 4 KiB write buffer, so a streamed body
			// reaches the upstream before it is complete.
			const size, first = 100_000, 16 << 10
			fmt.Fprintf(c, "POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", size)
			c.Write([]byte(strings.Repeat("a", first)))
			time.Sleep(150 * time.Millisecond)
			client := &http.Client{Timeout: 700 * time.Millisecond}
			resp, err := client.Post(f.url+"/quick", "text/plain", io.MultiReader(strings.NewReader("chunked!")))
			if served := err == nil; served != tt.served {
				t.Fatalf("another upload served during the slow one: %v (%v), want %v", served, err, tt.served)
			}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "len=8 te=[] body=chunked!" {
					t.Errorf("the upstream saw %q", b)
				}
			}
			c.Write([]byte(strings.Repeat("a", size-first)))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "len=100000 te=[] body="+strings.Repeat("a", 64) {
				t.Errorf("slow upload: %q", b)
			}
		})
	}
}
