package upstream

import (
	"context"
	"io"
	"net/http"
	"time"
)

// HealthConfig configures active probes: GET Path on every server each
// Interval; Fails consecutive failures mark it down, Passes consecutive
// successes (2xx/3xx) bring it back. An empty Path disables probing.
type HealthConfig struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
	Passes   int
	Fails    int
}

// Start runs active health probes until ctx ends or Close is called.
func (g *Group) Start(ctx context.Context) {
	h := g.cfg.Health
	if h.Path == "" {
		return
	}
	ctx, g.stop = context.WithCancel(ctx)
	client := &http.Client{Transport: g.base, Timeout: orDefault(h.Timeout, 2*time.Second)}
	for _, s := range g.servers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.probeLoop(ctx, client, s, h)
		}()
	}
}

func (g *Group) probeLoop(ctx context.Context, client *http.Client, s *Server, h HealthConfig) {
	t := time.NewTicker(orDefault(h.Interval, 5*time.Second))
	defer t.Stop()
	passes, fails := 0, 0
	for {
		ok := g.probe(ctx, client, s, h.Path)
		if ctx.Err() != nil {
			return
		}
		if ok {
			passes, fails = passes+1, 0
			if s.down.Load() && passes >= max(h.Passes, 1) {
				s.down.Store(false)
				s.restore()
				g.log.Info("upstream server healthy", "server", s.id)
			}
		} else {
			fails, passes = fails+1, 0
			if !s.down.Load() && fails >= max(h.Fails, 1) {
				s.down.Store(true)
				g.log.Warn("upstream server failed health check", "server", s.id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Group) probe(ctx context.Context, client *http.Client, s *Server, path string) bool {
	u := *s.URL
	u.Path = path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "wasmsrv-health")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
