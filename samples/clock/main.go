// Command clock streams the time as Server-Sent Events in the async shape: every
// client's stream is a loop that sleeps on a host timer (wasmsrv.Sleep), so one
// instance keeps thousands of streams going at once.
//
//	wasmsrv run ./samples/clock
//	curl -N 'localhost:8080/events?n=5&interval=1s'
//
//wasmsrv:mode async
package main

import (
	"net/url"
	"strconv"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if r.Path != "/events" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteString(page)
			return
		}
		q, _ := url.ParseQuery(r.RawQuery)
		n, err := strconv.Atoi(q.Get("n"))
		if err != nil || n <= 0 || n > 100000 {
			n = 60
		}
		interval, err := time.ParseDuration(q.Get("interval"))
		if err != nil || interval < time.Millisecond || interval > time.Minute {
			interval = time.Second
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := 1; i <= n; i++ {
			if i > 1 {
				wasmsrv.Sleep(interval) // a host timer: other streams run meanwhile
			}
			w.WriteString("id: " + strconv.Itoa(i) + "\nevent: tick\ndata: " +
				time.Now().UTC().Format(time.RFC3339Nano) + "\n\n")
			if w.Flush() != nil {
				return // the client went away
			}
		}
	})
}

const page = `<!doctype html><title>wasmsrv clock</title><pre id=log></pre>
<script>
const es = new EventSource("events?n=3600&interval=1s");
es.addEventListener("tick", e => { log.textContent = e.data; });
</script>
`

func main() {}
