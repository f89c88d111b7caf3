// Command counter is a hit counter kept in the kv plugin: every request adds one with
// a compare-and-swap, so concurrent instances never lose a hit, and the count
// survives a restart (bbolt file) or is shared by every node (Redis).
//
//	wasmsrv run --grant kv --kv-path ./counter.db ./samples/counter
//
// GET /        counts the hit and answers the new total
// GET /peek    answers the total without counting
package main

import (
	"errors"
	"strconv"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/kv"
	"github.com/wasmsrv/wasmsrv/sdk/go/log"
)

const key = "hits"

// increment adds one to key, retrying when another instance got there first.
func increment() (uint64, error) {
	for {
		old, err := kv.Get(key)
		var n uint64
		switch {
		case errors.Is(err, kv.ErrNotFound):
			old = nil // CompareAndSwap with nil: only if still absent
		case err != nil:
			return 0, err
		default:
			if n, err = strconv.ParseUint(string(old), 10, 64); err != nil {
				return 0, err
			}
		}
		next := strconv.AppendUint(nil, n+1, 10)
		err = kv.CompareAndSwap(key, old, next)
		if err == nil {
			return n + 1, nil
		}
		if !errors.Is(err, kv.ErrConflict) {
			return 0, err
		}
	}
}

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var (
			n   uint64
			err error
		)
		if r.Path == "/peek" {
			var b []byte
			if b, err = kv.Get(key); err == nil {
				n, err = strconv.ParseUint(string(b), 10, 64)
			} else if errors.Is(err, kv.ErrNotFound) {
				err = nil
			}
		} else {
			n, err = increment()
		}
		if err != nil {
			log.Error("counter failed", "err", err)
			w.WriteHeader(503)
			w.WriteString("counter unavailable\n")
			return
		}
		log.Debug("hit", "count", n)
		w.WriteString(strconv.FormatUint(n, 10) + "\n")
	})
}

func main() {}
