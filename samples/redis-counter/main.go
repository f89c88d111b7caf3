// Command redis-counter counts visits in Redis with go-redis running inside the
// guest, its connections made by the host through the sockets plugin.
//
//	wasmsrv run --grant sockets,config --sockets-allow 127.0.0.1:6379 \
//	    --var REDIS_ADDR=127.0.0.1:6379 ./samples/redis-counter
//	curl localhost:8080/hits/home        # {"key":"home","hits":1}
//	curl -X DELETE localhost:8080/hits/home
//
// REDIS_ADDR (host:port) is a config variable; REDIS_PASSWORD an optional secret;
// REDIS_TLS=1 has the host do TLS (verified against the system roots or the app's
// tls_ca). Each instance keeps one client, and with it a pool of connections, in a
// package variable, so connections live from request to request. Redis being
// down answers 503 with Retry-After, not a hang.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/sockets"
	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"
)

// poolSize is the connections each instance may hold: a sync instance serves one
// request at a time; an async one many, which gate lets queue the SDK's way for
// a connection (a pool's own wait would deadlock the instance).
var poolSize = map[bool]int{false: 2, true: 8}[wasmsrv.Async]

var (
	rdb  *redis.Client
	gate = wasmsrv.NewSemaphore(poolSize)
)

func init() {
	wasmsrv.OnStart(func() error {
		addr, ok := config.Lookup("REDIS_ADDR")
		if !ok {
			return errors.New("no REDIS_ADDR: grant config and set it (--var REDIS_ADDR=host:port)")
		}
		pw, _ := config.Lookup("REDIS_PASSWORD")
		dial := sockets.Dial
		if v, _ := config.Lookup("REDIS_TLS"); v == "1" {
			dial = sockets.DialTLS
		}
		rdb = redis.NewClient(&redis.Options{
			Addr: addr, Password: pw, Dialer: dial, PoolSize: poolSize,
			// No retries: go-redis backs off between them with timers, and a guest
			// goroutine asleep in the Go runtime holds its instance (in the async
			// shape, every connection of it). A request that meets Redis down gets
			// 503 at once, and the client retries.
			MaxRetries: -1, DialerRetries: 1,
			DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
			// go-redis holds a lock across the maintenance-notifications handshake
			// of each new connection, and takes it for writing when the server
			// refuses the handshake. In the async shape a request waiting for
			// that lock stops its whole instance, while the holders wait for
			// their replies (docs/async.md): turn the feature off. It serves
			// Redis Enterprise's hitless upgrades, nothing a single server needs.
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
		return nil
	})
	wasmsrv.OnStop(func() error { return rdb.Close() })

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hits/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		n, err := with(r.Context(), func(ctx context.Context) (int64, error) { return rdb.Incr(ctx, "hits:"+key).Result() })
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"key": key, "hits": n})
	})
	mux.HandleFunc("DELETE /hits/{key}", func(w http.ResponseWriter, r *http.Request) {
		_, err := with(r.Context(), func(ctx context.Context) (int64, error) { return rdb.Del(ctx, "hits:"+r.PathValue("key")).Result() })
		if err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	wasmhttp.Handle(mux)
}

// with runs f holding one of the instance's pool slots.
func with(ctx context.Context, f func(context.Context) (int64, error)) (int64, error) {
	gate.Acquire()
	defer gate.Release()
	return f(ctx)
}

// fail answers a Redis error: unreachable or broken is 503 (try again), an error
// Redis itself returned is 500.
func fail(w http.ResponseWriter, err error) {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "redis unavailable: " + err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func main() {}
