package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// wsHoldScenario holds many WebSocket connections on one server, round-trips a
// message on each, and reports the connect rate (the "rps" column), the server's
// memory per connection and failed echoes. The default is 9,000 connections; -c
// changes it.
func wsHoldScenario() Scenario {
	return Scenario{
		Name:        "ws-hold",
		Description: "hold N WebSockets (default 9,000) on one server, echo one message on each: connect rate, RSS per connection, failed echoes",
		Path:        "/echo",
		Load:        Load{Threads: 1, Conns: 9000, Duration: time.Second}, // Conns WebSockets; Drive ignores the rest
		Baseline:    "uvicorn",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvServer("samples/ws, async shape, default pool (CPU instances)", asyncGuest("./samples/ws"), "--mode", "async"),
			uvicornWSServer(),
		},
		Drive: driveWSHold,
		Targets: []Target{
			{Row: "uvicorn", Label: "connect rate", Limit: 2, Format: formatRatio,
				Measure: func(s, r Result) (float64, bool) { return ratio(s.Wrk.RPS(), r.Wrk.RPS()) }},
			extraAtMost("wasmsrv", "RSS per WS", "rss_per_conn", 10<<10, formatKiB),
			extraAtMost("uvicorn", "RSS per WS", "rss_per_conn", 27<<10, formatKiB),
			extraAtMost("wasmsrv", "failed echoes", "failed", 0, formatCountValue),
		},
	}
}

func extraAtMost(row, label, key string, limit float64, format func(float64) string) Target {
	return Target{
		Row: row, Label: label, Limit: limit, AtMost: true, Format: format,
		Measure: func(_, r Result) (float64, bool) {
			v, ok := r.Extra[key]
			return v, ok
		},
	}
}

func formatKiB(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }

func formatCountValue(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// uvicornWSServer runs bench/apps/asgi_ws.py on one uvicorn worker with the
// websockets implementation, the configuration the comparison is about.
func uvicornWSServer() Server {
	return Server{
		Name:     "uvicorn",
		Note:     "1 worker, websockets",
		Requires: []Tool{pythonTool([]string{"uvicorn", "websockets"}, "python3-uvicorn", "python3-websockets")},
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			host, port, err := splitAddr(env.Addr)
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{
				debianPython, "-m", "uvicorn", "--app-dir", filepath.Join(env.WS.Root, "bench", "apps"),
				"--host", host, "--port", port, "--workers", "1", "--ws", "websockets",
				"--no-access-log", "--log-level", "warning", "--backlog", "4096", "asgi_ws:app",
			}}, nil
		},
	}
}

// driveWSHold connects load.Conns WebSockets, echoes one message on each while all
// are open, samples the server's memory with them idle, then closes them.
func driveWSHold(ctx context.Context, addr string, pid int, load Load) (Driven, error) {
	n := load.Conns
	if n <= 0 {
		n = 9000
	}
	base, _, err := TreeRSS("/proc", pid)
	if err != nil {
		return Driven{}, err
	}
	url := "ws://" + addr + "/echo"
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 512, WriteBufferSize: 512,
		NetDialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext}
	conns := make([]*websocket.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var dialErr atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	parallel(n, 32, func(i int) {
		c, _, err := d.DialContext(ctx, url, nil)
		if err != nil {
			dialErr.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		conns[i] = c
	})
	connectTime := time.Since(start)
	var failed atomic.Int64
	parallel(n, 64, func(i int) {
		c := conns[i]
		if c == nil {
			failed.Add(1)
			return
		}
		msg := "echo " + strconv.Itoa(i)
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			failed.Add(1)
			return
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
			failed.Add(1)
		}
	})
	time.Sleep(2 * time.Second) // idle: let the server settle before sampling
	rss, procs, err := TreeRSS("/proc", pid)
	if err != nil {
		return Driven{}, fmt.Errorf("rss with %d connections open (did it crash?): %w", n, err)
	}
	if e := firstErr.Load(); e != nil {
		return Driven{}, fmt.Errorf("%d of %d connections failed, first: %v", dialErr.Load(), n, e)
	}
	held := int64(n) - dialErr.Load()
	return Driven{
		Wrk: WrkResult{Requests: held, Duration: connectTime, Connect: dialErr.Load(), Status: failed.Load()},
		RSS: rss, Procs: procs,
		Extra: map[string]float64{
			"rss_per_conn": float64(rss-base) / float64(max(held, 1)),
			"failed":       float64(failed.Load()),
			"conns":        float64(held),
		},
	}, nil
}

// parallel runs fn(0..n-1) on k goroutines.
func parallel(n, k int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}
