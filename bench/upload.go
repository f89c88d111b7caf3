package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The slow-upload scenario is the reason gunicorn's sync workers are run
// behind nginx: clients that send a request body slowly hold a sync worker
// each. While slowUploaders such clients trickle their bodies, wrk measures
// ordinary GETs of an app that reads request bodies. wasmsrv reads bodies
// ahead of the instance (its default), and is also run with --buffer-body 0
// as the control.

const (
	slowUploaders = 16 // more than the sync servers' 2×CPU+1 workers
	slowBodySize  = 1 << 20
	slowInterval  = 500 * time.Millisecond
)

func slowUploadScenario() Scenario {
	return Scenario{
		Name: "slow-upload",
		Description: fmt.Sprintf("GET rate while %d clients upload request bodies one byte every %v (the app reads bodies): "+
			"sync servers without request buffering stall", slowUploaders, slowInterval),
		Path:     "/",
		Expect:   Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:     Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline: "uvicorn",
		Subject:  "wasmsrv",
		Servers: []Server{
			wasmsrvServer("bench/apps/upload, 5 sync instances, request bodies read ahead (the default)", goGuest("./bench/apps/upload")),
			named("wasmsrv-stream", wasmsrvServer("the same with --buffer-body 0: bodies streamed to the instance", goGuest("./bench/apps/upload"), "--buffer-body", "0")),
			uvicornServer("asgi_hello:upload"),
			gunicornServer("wsgi_hello:upload"),
		},
		Background: slowUploads,
		Targets:    []Target{rpsAtLeast("uvicorn", 0.5)},
	}
}

// slowUploads keeps slowUploaders connections each sending a large body one
// byte at a time, redialling any the server closes, until stopped. The
// report gets how many were open at the end and how often the server cut one.
func slowUploads(ctx context.Context, addr string) (func() map[string]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var open, cut atomic.Int64
	head := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", slowBodySize)
	for range slowUploaders {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				if err != nil {
					return
				}
				open.Add(1)
				_, err = c.Write([]byte(head))
				t := time.NewTicker(slowInterval)
				for err == nil {
					select {
					case <-ctx.Done():
						err = ctx.Err()
					case <-t.C:
						_, err = c.Write([]byte{'x'})
					}
				}
				t.Stop()
				c.Close()
				open.Add(-1)
				if ctx.Err() == nil {
					cut.Add(1)
				}
			}
		})
	}
	// Let the uploads reach the server (and its workers) before the run.
	select {
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	return func() map[string]float64 {
		held := open.Load()
		cancel()
		wg.Wait()
		return map[string]float64{"uploads_open": float64(held), "uploads_cut": float64(cut.Load())}
	}, nil
}
