// Command sse streams Server-Sent Events under the sync shape: each event is flushed
// to the client as soon as it is written.
//
//	wasmsrv run ./samples/sse
//	curl -N 'localhost:8080/events?n=5&interval=200ms'
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
		if err != nil || n <= 0 || n > 10000 {
			n = 10
		}
		interval, err := time.ParseDuration(q.Get("interval"))
		if err != nil || interval < 0 || interval > 10*time.Second {
			interval = time.Second
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := 1; i <= n; i++ {
			if i > 1 {
				time.Sleep(interval)
			}
			w.WriteString("id: " + strconv.Itoa(i) + "\nevent: tick\ndata: {\"n\":" + strconv.Itoa(i) +
				",\"time\":\"" + time.Now().UTC().Format(time.RFC3339Nano) + "\"}\n\n")
			if w.Flush() != nil {
				return // client went away
			}
		}
	})
}

const page = `<!doctype html><title>wasmsrv SSE</title><pre id=log></pre>
<script>
const es = new EventSource("events?n=20&interval=500ms");
es.addEventListener("tick", e => { log.textContent += e.data + "\n"; });
es.onerror = () => es.close();
</script>
`

func main() {}
