// Command wsapp is the host package's test guest for WebSockets and the async
// gateway. The same source is built for both shapes (with and without the
// wasmsrv_async tag).
package main

import (
	"errors"
	"io"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func trap() {
	go func() { panic("trap on purpose") }() // unrecovered: the instance dies
	for {
		runtime.Gosched()
	}
}

// memstats reports the guest's memory (its own function: runtime.MemStats is
// big, and inlined into the handler it would make every request's stack grow).
//
//go:noinline
func memstats(w *wasmsrv.ResponseWriter) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.WriteString("stack=" + strconv.FormatUint(m.StackInuse, 10) + " heap=" + strconv.FormatUint(m.HeapAlloc, 10) +
		" sys=" + strconv.FormatUint(m.Sys, 10) + " goroutines=" + strconv.Itoa(runtime.NumGoroutine()) +
		" gc=" + strconv.FormatUint(uint64(m.NumGC), 10) + " next=" + strconv.FormatUint(m.NextGC, 10) +
		" spawned_done=" + strconv.Itoa(spawnedDone))
}

// spawnedDone counts the /spawn goroutines whose Sleep returned (the guest is
// single-threaded: no atomics needed).
var spawnedDone int

func init() {
	wasmsrv.OnStart(func() error {
		if os.Getenv("FAIL_START") != "" {
			return errors.New("start refused on purpose")
		}
		return nil
	})
	wasmsrv.OnStop(func() error {
		println("stop hook ran")
		return nil
	})
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		switch r.Path {
		case "/":
			w.WriteString("hello\n")
		case "/id":
			// Sleep a little so requests overlap on the instance.
			if ms, _ := strconv.Atoi(q.Get("ms")); ms > 0 {
				wasmsrv.Sleep(time.Duration(ms) * time.Millisecond)
			}
			w.Header().Set("Content-Type", "text/plain")
			w.WriteString("id=" + q.Get("id"))
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(400)
				return
			}
			w.Write(b)
		case "/big":
			n, _ := strconv.Atoi(q.Get("n"))
			chunk := make([]byte, 1000)
			for i := range chunk {
				chunk[i] = 'a' + byte(i%26)
			}
			for i := 0; i < n; i++ {
				w.Write(chunk)
			}
		case "/big-nohold":
			// As /big, but asks the host not to hold the response.
			w.Header().Set("X-Accel-Buffering", "no")
			n, _ := strconv.Atoi(q.Get("n"))
			chunk := make([]byte, 1000)
			for i := range chunk {
				chunk[i] = 'a' + byte(i%26)
			}
			for range n {
				w.Write(chunk)
			}
		case "/big-then-exit":
			// More than the SDK buffers, so bytes reach the host, then the
			// instance dies without finishing the response.
			chunk := make([]byte, 1000)
			for range 10 {
				w.Write(chunk)
			}
			os.Exit(3)
		case "/sse":
			n, _ := strconv.Atoi(q.Get("n"))
			ms, _ := strconv.Atoi(q.Get("ms"))
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 1; i <= n; i++ {
				if i > 1 {
					wasmsrv.Sleep(time.Duration(ms) * time.Millisecond)
				}
				w.WriteString("data: " + strconv.Itoa(i) + "\n\n")
				if w.Flush() != nil {
					return
				}
			}
		case "/memstats":
			if q.Get("gc") != "" {
				// Two cycles: the first shrinks idle goroutine stacks, the second
				// frees what the first released.
				runtime.GC()
				runtime.GC()
			}
			memstats(w)
		case "/spawn":
			// Diagnostics: park n SDK goroutines in Sleep, to compare their stack
			// cost with that of parked requests (/id?ms=...).
			n, _ := strconv.Atoi(q.Get("n"))
			mode := q.Get("mode")
			sleep := 10 * time.Second
			if ms, _ := strconv.Atoi(q.Get("ms")); ms > 0 {
				sleep = time.Duration(ms) * time.Millisecond
			}
			for range n {
				wasmsrv.Go(func() {
					switch mode {
					case "import":
						wasmsrv.SetBackpressure(false)
					case "query":
						url.ParseQuery("a=1&b=2")
					}
					wasmsrv.Sleep(sleep)
					spawnedDone++
				})
			}
		case "/status":
			w.WriteHeader(418)
		case "/trap":
			trap()
		case "/block":
			// What an async guest must not do: wait on its own channel.
			ch := make(chan int)
			<-ch
		case "/spin":
			// A runaway loop: only the event (or request) deadline stops it.
			x := 0
			for x >= 0 {
				x++
				if x == 1<<62 {
					x = 0
				}
			}
		case "/ws":
			if !r.IsWebSocket() {
				w.WriteHeader(400)
				return
			}
			opts := &wasmsrv.AcceptOptions{}
			for _, p := range r.Subprotocols() {
				if p == "echo" {
					opts.Subprotocol = p
				}
			}
			ws, err := wasmsrv.Accept(w, r, opts)
			if err != nil {
				return
			}
			for {
				kind, msg, err := ws.ReadMessage()
				if err != nil {
					if ce, ok := err.(*wasmsrv.CloseError); ok {
						println("ws closed by peer", ce.Code, ce.Reason)
					}
					return
				}
				if kind == wasmsrv.TextMessage {
					switch s := string(msg); {
					case s == "trap":
						trap()
					case s == "close":
						ws.Close(4000, "bye")
						return
					case s == "bp:on" || s == "bp:off":
						wasmsrv.SetBackpressure(s == "bp:on")
					case len(s) > 6 && s[:6] == "sleep:":
						ms, _ := strconv.Atoi(s[6:])
						wasmsrv.Sleep(time.Duration(ms) * time.Millisecond)
						msg = []byte("slept")
					}
				}
				if ws.WriteMessage(kind, msg) != nil {
					return
				}
			}
		case "/ws-flood":
			// Sends n messages of size bytes as fast as the host takes them
			// (a client that does not read makes the sends wait, then fail).
			n, _ := strconv.Atoi(q.Get("n"))
			size, _ := strconv.Atoi(q.Get("size"))
			ws, err := wasmsrv.Accept(w, r, nil)
			if err != nil {
				return
			}
			msg := make([]byte, size)
			for i := range n {
				if err := ws.WriteMessage(wasmsrv.BinaryMessage, msg); err != nil {
					println("flood stopped after", i, "messages:", err.Error())
					return
				}
			}
			println("flood done")
			ws.ReadMessage()
		case "/ws-limits":
			// Answers each request with what the host said to a send or a
			// close: "big:N" sends N bytes, "bad-text" invalid UTF-8 as text,
			// "close:CODE" closes with CODE.
			ws, err := wasmsrv.Accept(w, r, nil)
			if err != nil {
				return
			}
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				s := string(msg)
				switch {
				case len(s) > 4 && s[:4] == "big:":
					n, _ := strconv.Atoi(s[4:])
					err = ws.WriteMessage(wasmsrv.BinaryMessage, make([]byte, n))
				case s == "bad-text":
					err = ws.WriteMessage(wasmsrv.TextMessage, []byte("caf\xc3"))
				case len(s) > 6 && s[:6] == "close:":
					code, _ := strconv.Atoi(s[6:])
					err = ws.Close(code, "")
				}
				result := "ok"
				if err != nil {
					result = err.Error()
				}
				if ws.WriteText(s+" -> "+result) != nil {
					return
				}
			}
		case "/ws-slow-accept":
			// Accepts only after ms: past the request deadline the host has
			// answered 504 and the accept fails.
			ms, _ := strconv.Atoi(q.Get("ms"))
			wasmsrv.Sleep(time.Duration(ms) * time.Millisecond)
			if _, err := wasmsrv.Accept(w, r, nil); err != nil {
				println("late accept:", err.Error())
			}
		case "/ws-deny-custom":
			w.WriteHeader(401)
			w.WriteString("no entry\n")
		default:
			// "/ws-deny" and anything else: a WebSocket request neither accepted nor
			// answered is denied with 403; plain requests get 404.
			if !r.IsWebSocket() {
				w.WriteHeader(404)
			}
		}
	})
}

func main() {}
