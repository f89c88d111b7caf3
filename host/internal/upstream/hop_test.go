package upstream

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/framing"
)

// TestHopByHopOneList: both proxy paths (the lean one, and ReverseProxy, which
// serves upgrades) drop exactly the fields framing.IsHopByHop names, both
// ways, including those ReverseProxy's own list lacks (HTTP2-Settings). The
// client is a raw socket, so nothing in between drops a field for us.
func TestHopByHopOneList(t *testing.T) {
	hop := []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Trailer", "Http2-Settings", "X-Named-By-Connection"}
	for _, k := range hop[:len(hop)-1] {
		if !framing.IsHopByHop(k) {
			t.Fatalf("%s is not in framing's list", k)
		}
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seen []string
		for _, k := range hop {
			if r.Header.Get(k) != "" {
				seen = append(seen, k)
			}
		}
		w.Header().Set("Connection", "X-Named-By-Connection")
		for _, k := range hop {
			if k != "Trailer" {
				w.Header().Set(k, "from-upstream")
			}
		}
		fmt.Fprintf(w, "seen=%s", strings.Join(seen, ","))
	})}
	front := frontOf(t, up)

	for _, path := range []struct{ name, extra string }{
		{"lean", "Connection: X-Named-By-Connection\r\n"},
		// An Upgrade the upstream declines takes the ReverseProxy path.
		{"reverseproxy", "Connection: Upgrade, X-Named-By-Connection\r\nUpgrade: something\r\n"},
	} {
		t.Run(path.name, func(t *testing.T) {
			c, err := net.Dial("tcp", front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var req strings.Builder
			req.WriteString("GET /x HTTP/1.1\r\nHost: front\r\n" + path.extra)
			for _, k := range hop {
				req.WriteString(k + ": from-client\r\n")
			}
			req.WriteString("\r\n")
			if _, err := c.Write([]byte(req.String())); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			if _, err := bufio.NewReader(resp.Body).WriteTo(&body); err != nil {
				t.Fatal(err)
			}
			if body.String() != "seen=" {
				t.Errorf("upstream received hop-by-hop fields: %s", body.String())
			}
			for _, k := range hop {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("client received %s: %s", k, v)
				}
			}
		})
	}
}
