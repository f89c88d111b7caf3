package site

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// TestSharedRateLimitAcrossSites: two sites from the same file (two nodes)
// share a route's rate limit through Redis (shared = true), while a route
// without it keeps one bucket per node.
func TestSharedRateLimitAcrossSites(t *testing.T) {
	r := testkit.StartRedis(t)
	body := head + fmt.Sprintf(`
[plugins]
redis_url = %q

[[routes]]
path = "/shared"
redirect = "/elsewhere"
[routes.rate_limit]
rate = 0.001
burst = 4
shared = true

[[routes]]
path = "/local"
redirect = "/elsewhere"
[routes.rate_limit]
rate = 0.001
burst = 4
`, r.URL)
	nodes := []*fixture{start(t, body, nil), start(t, body, nil)}
	for _, tc := range []struct {
		path string
		want int // requests let through by the two nodes together
	}{{"/shared", 4}, {"/local", 8}} {
		passed := 0
		for i := range 20 {
			code, h, _ := get(t, nodes[i%2].url+tc.path)
			switch code {
			case http.StatusPermanentRedirect: // the redirect route's default code
				passed++
			case http.StatusTooManyRequests:
				if h.Get("Retry-After") == "" {
					t.Errorf("%s: 429 without Retry-After", tc.path)
				}
			default:
				t.Fatalf("%s: status %d", tc.path, code)
			}
		}
		if passed != tc.want {
			t.Errorf("%s: %d of 20 let through by two nodes, want %d", tc.path, passed, tc.want)
		}
	}
}
