// Command testguest exercises every standard plugin from one guest, for the plugin
// tests: each path is one operation, answered as plain text ("ERR_..." on error).
package main

import (
	"errors"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/fetch"
	"github.com/wasmsrv/wasmsrv/sdk/go/kv"
	"github.com/wasmsrv/wasmsrv/sdk/go/log"
	"github.com/wasmsrv/wasmsrv/sdk/go/pubsub"
)

func incr(key string) (uint64, error) {
	for {
		old, err := kv.Get(key)
		var n uint64
		if errors.Is(err, kv.ErrNotFound) {
			old = nil
		} else if err != nil {
			return 0, err
		} else if n, err = strconv.ParseUint(string(old), 10, 64); err != nil {
			return 0, err
		}
		err = kv.CompareAndSwap(key, old, strconv.AppendUint(nil, n+1, 10))
		if err == nil {
			return n + 1, nil
		}
		if !errors.Is(err, kv.ErrConflict) {
			return 0, err
		}
	}
}

func errText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "ERR_"); i >= 0 {
		return s[i:]
	}
	return s
}

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		out, err := route(w, r, q)
		if err != nil {
			w.WriteHeader(500)
			w.WriteString(errText(err))
			return
		}
		w.WriteString(out)
	})
}

func route(w *wasmsrv.ResponseWriter, r *wasmsrv.Request, q url.Values) (string, error) {
	k := q.Get("k")
	switch r.Path {
	case "/kv/get":
		v, err := kv.Get(k)
		return string(v), err
	case "/kv/set":
		ttl, _ := time.ParseDuration(q.Get("ttl"))
		return "ok", kv.SetTTL(k, []byte(q.Get("v")), ttl)
	case "/kv/setsize":
		n, _ := strconv.Atoi(q.Get("n"))
		return "ok", kv.Set(k, make([]byte, n))
	case "/kv/del":
		return "ok", kv.Delete(k)
	case "/kv/incr":
		n, err := incr(k)
		return strconv.FormatUint(n, 10), err
	case "/kv/list":
		keys, err := kv.List(q.Get("p"))
		return strings.Join(keys, ","), err
	case "/config":
		if k == "" {
			return strings.Join(config.Keys(), ","), nil
		}
		return config.Get(k)
	case "/log":
		log.Info(q.Get("msg"), "who", "guest", "app", "spoofed")
		return "ok", nil
	case "/fetch":
		resp, err := fetch.Get(q.Get("url"))
		if err != nil {
			return "", err
		}
		return strconv.Itoa(resp.Status) + " " + string(resp.Body), nil
	case "/loop":
		// Per-call cost: n calls of a cheap host function, timed by the caller.
		n, _ := strconv.Atoi(q.Get("n"))
		switch q.Get("what") {
		case "core": // no-op core call: wasmsrv.disconnected
			for i := 0; i < n; i++ {
				r.Disconnected()
			}
		case "log": // plugin call doing no work: wasmsrv_log.enabled
			for i := 0; i < n; i++ {
				log.Enabled(log.LevelDebug - 4)
			}
		case "config": // plugin call with a map lookup and a copy
			for i := 0; i < n; i++ {
				config.Lookup("greeting")
			}
		case "alloc": // what config.Lookup does in the guest besides the call
			b := []byte("hi")
			for i := 0; i < n; i++ {
				runtime.KeepAlive(string(b))
			}
		}
		return "ok", nil
	case "/pub":
		return "ok", pubsub.Publish(q.Get("t"), []byte(q.Get("m")))
	case "/sub":
		// Subscribe, tell the client (first line), then stream n messages.
		s, err := pubsub.Subscribe(q.Get("t"))
		if err != nil {
			return "", err
		}
		defer s.Close()
		n, _ := strconv.Atoi(q.Get("n"))
		w.WriteString("subscribed\n")
		w.Flush()
		for i := 0; i < n; i++ {
			m, err := s.Receive(10 * time.Second)
			if err != nil {
				w.WriteString(errText(err) + "\n")
				return "", nil
			}
			w.WriteString(string(m) + "\n")
			w.Flush()
		}
		return "", nil
	case "/trap-pending":
		// Async only: leaves an outbound request and an armed receive pending on
		// the instance, then kills it (proc_exit: the SDK recovers handler panics).
		s, err := pubsub.Subscribe(q.Get("t"))
		if err != nil {
			return "", err
		}
		wasmsrv.Go(func() { _, _ = fetch.Get(q.Get("url")) })
		wasmsrv.Go(func() { _, _ = s.Receive(10 * time.Second) })
		wasmsrv.Sleep(50 * time.Millisecond) // both are parked in the host by now
		os.Exit(3)
	}
	w.WriteHeader(404)
	return "no such test path", nil
}

func main() {}
