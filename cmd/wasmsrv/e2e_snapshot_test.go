package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestE2ESnapshotFreshRandomness runs a Go guest that answers with a draw from
// each source of randomness it has (runtime/testdata/randguest) with one
// instance recycled after every request, so that each request is served by a
// new instance started from the app's snapshot (the guest counts its requests:
// always 1), and checks that no draw repeats.
func TestE2ESnapshotFreshRandomness(t *testing.T) {
	srv := startServer(t, "../../runtime/testdata/randguest", "--workers", "1", "--max-requests", "1", "--log-level", "debug")
	if !strings.Contains(srv.logs(), "instances start from a snapshot") {
		t.Fatalf("the app does not start from a snapshot:\n%s", srv.logs())
	}
	c := httpClient(t)
	seen := map[string]int{}
	const n = 100
	for i := range n {
		resp, body := get(t, c, srv.URL+"/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, body)
		}
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if len(lines) != 10 || lines[0] != "requests on this instance 1" {
			t.Fatalf("request %d: %q", i, body)
		}
		for _, l := range lines[1:] {
			if j, dup := seen[l]; dup {
				t.Fatalf("requests %d and %d (each on a new instance) both drew %q", j, i, l)
			}
			seen[l] = i
		}
	}
}
