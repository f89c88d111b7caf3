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
// instance in a plugin call. The upstream holds every request until all n are in
// flight at once: an instance that served them one after the other would never
// get there (the wait fails after settleWithin).
func TestAsyncPluginCallsDoNotBlockTheInstance(t *testing.T) {
	const n = 4
	var (
		mu                sync.Mutex
		inFlight, maxSeen int
		allIn             = make(chan struct{})
		stop              = make(chan struct{})
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxSeen = max(maxSeen, inFlight)
		if inFlight == n {
			close(allIn)
		}
		mu.Unlock()
		select {
		case <-allIn: // released only when every request is here
		case <-stop:
			return
		}
		w.Write([]byte("slow hi"))
	}))
	defer up.Close()
	defer close(stop) // before Close: a failed test leaves no request held
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-out", guest, "async", grants, 1)

	// A subscriber parks on the instance for the whole test.
	sub := subscriber(t, s.url, "ticks", 1)

	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body := get(t, s.url+"/fetch?url="+url.QueryEscape(up.URL+"/")); body != "200 slow hi" {
				t.Errorf("fetch = %q", body)
			}
		}()
	}
	select {
	case <-allIn:
	case <-time.After(settleWithin):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d fetches on one async instance: at most %d reached the upstream at once in %s: they were serialised", n, maxSeen, settleWithin)
	}
	wg.Wait()
	want(t, s.url+"/pub?t=ticks&m=tick", "ok")
	if got := next(t, sub); got != "tick" {
		t.Fatalf("subscriber got %q", got)
	}
}
