package site

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

// A reload applies listener changes without a restart, as nginx does: a new
// address is bound before the new config is swapped in (a port in use rejects
// the reload), a removed one stops accepting and finishes its connections,
// and changed settings on an address (timeouts, header limit, connection cap,
// TLS files, renewed in place or not, the admin token) move the bound socket
// to a new server, so connections
// queued in the kernel are not reset, while the old server finishes its own.

// listenerSpec is one socket the config asks for.
type listenerSpec struct {
	key   string // "admin" or the site listener's address
	cfg   host.ServerConfig
	token string // admin only: part of what makes a change
	hosts string // admin only: admin.hosts, part of what makes a change
	// healthPath: the listener's health_path, part of its handler
	healthPath string
	tlsSum     string // digest of the certificate and key files: a renewed cert is a change
	handler    http.Handler
}

// live is a listener being served (or bound, before Serve).
type live struct {
	spec   listenerSpec
	srv    *host.Server
	cancel context.CancelFunc // nil until started
	done   chan error
}

func (s *Site) specs(cfg *config.Config) []listenerSpec {
	trusted := trustedPrefixes(cfg)
	var out []listenerSpec
	for _, l := range cfg.Listeners {
		var h http.Handler = s
		if l.HealthPath != "" {
			h = admin.Probes(l.HealthPath, s.opt.Readiness, s)
		}
		out = append(out, listenerSpec{key: l.Addr, handler: h, healthPath: l.HealthPath, tlsSum: fileSum(l.TLSCert, l.TLSKey), cfg: host.ServerConfig{
			Addr: l.Addr, TLSCert: l.TLSCert, TLSKey: l.TLSKey,
			ReadHeaderTimeout: l.ReadHeaderTimeout.D(), IdleTimeout: l.IdleTimeout.D(),
			MaxHeaderBytes: int(cfg.Limits.MaxHeader), ShutdownGrace: cfg.Server.ShutdownTimeout.D(),
			DrainDelay: cfg.Server.DrainDelay.D(),
			AccessLog:  s.opt.AccessLog, AccessLogFormat: s.opt.AccessLogFormat, AccessLogOut: s.opt.AccessLogOut,
			AccessLogQuery: s.opt.AccessLogQuery, TrustedProxies: trusted,
			MaxConnsPerIP: cfg.Limits.MaxConnsPerIP, ConnLimitExempt: trusted,
			Tracer: s.opt.Tracer,
		}})
	}
	if addr := cfg.Admin.Listen(); addr != "" {
		var api http.Handler
		if s.hosting != nil {
			api = s.hosting.WithPrincipal(s.hosting.API())
		}
		out = append(out, listenerSpec{key: "admin", token: cfg.Admin.Token, hosts: strings.Join(cfg.Admin.Hosts, ","),
			handler: admin.Handler(s, admin.Config{Addr: addr, Hosts: cfg.Admin.Hosts, Token: cfg.Admin.Token, Metrics: s.metricsHandler(), Readiness: s.opt.Readiness, Crashes: s.crashes, API: api}, s.log),
			cfg:     host.ServerConfig{Addr: addr, ShutdownGrace: 5 * time.Second}})
	}
	return out
}

func sameSpec(a, b listenerSpec) bool {
	ac, bc := a.cfg, b.cfg
	return a.key == b.key && a.token == b.token && a.hosts == b.hosts && a.tlsSum == b.tlsSum && ac.Addr == bc.Addr &&
		a.healthPath == b.healthPath && ac.DrainDelay == bc.DrainDelay && slices.Equal(ac.TrustedProxies, bc.TrustedProxies) &&
		ac.TLSCert == bc.TLSCert && ac.TLSKey == bc.TLSKey &&
		ac.ReadHeaderTimeout == bc.ReadHeaderTimeout && ac.IdleTimeout == bc.IdleTimeout &&
		ac.MaxHeaderBytes == bc.MaxHeaderBytes && ac.ShutdownGrace == bc.ShutdownGrace &&
		ac.AccessLog == bc.AccessLog && ac.MaxConnsPerIP == bc.MaxConnsPerIP &&
		slices.Equal(ac.ConnLimitExempt, bc.ConnLimitExempt)
}

// listenerPlan is what a reload will do to the listeners.
type listenerPlan struct {
	next    []*live // the listeners after the reload, in config order
	start   []*live // new servers (on new or handed-over sockets)
	retire  []*live // servers to stop; their sockets close unless handed over
	handoff map[*live]bool
}

// planListeners binds what is new. On error nothing changed: sockets it bound
// are closed again.
func (s *Site) planListeners(cfg *config.Config) (*listenerPlan, error) {
	p := &listenerPlan{handoff: map[*live]bool{}}
	byKey := map[string]*live{}
	for _, l := range s.live {
		byKey[l.spec.key] = l
	}
	kept := map[*live]bool{}
	for _, spec := range s.specs(cfg) {
		old := byKey[spec.key]
		if old != nil && old.spec.cfg.Addr != spec.cfg.Addr {
			old = nil // the admin moved: a new socket
		}
		switch {
		case old != nil && sameSpec(old.spec, spec):
			kept[old] = true
			p.next = append(p.next, old)
		case old != nil:
			l := &live{spec: spec, srv: host.NewServer(spec.cfg, spec.handler, s.log)}
			if err := l.srv.Adopt(old.srv.Socket()); err != nil {
				p.abort()
				return nil, fmt.Errorf("listener %s: %w", spec.cfg.Addr, err)
			}
			p.handoff[old] = true
			p.next = append(p.next, l)
			p.start = append(p.start, l)
		case spec.key == "admin" && s.adminSock != nil && spec.cfg.Addr == s.adminAddr:
			// Bound while the site started, answering the probes: served on.
			l := &live{spec: spec, srv: host.NewServer(spec.cfg, spec.handler, s.log)}
			if err := l.srv.Adopt(s.adminSock); err != nil {
				p.abort()
				return nil, fmt.Errorf("listener %s: %w", spec.cfg.Addr, err)
			}
			s.adminSock = nil
			p.next = append(p.next, l)
			p.start = append(p.start, l)
		default:
			l := &live{spec: spec, srv: host.NewServer(spec.cfg, spec.handler, s.log)}
			if err := l.srv.Listen(); err != nil {
				p.abort()
				return nil, err
			}
			p.next = append(p.next, l)
			p.start = append(p.start, l)
		}
	}
	for _, l := range s.live {
		if !kept[l] {
			p.retire = append(p.retire, l)
		}
	}
	return p, nil
}

// abort closes the sockets the plan bound itself.
func (p *listenerPlan) abort() {
	for _, l := range p.start {
		if !p.adopted(l) {
			_ = l.srv.Socket().Close()
		}
	}
}

func (p *listenerPlan) adopted(l *live) bool {
	for old := range p.handoff {
		if old.srv.Socket() == l.srv.Socket() {
			return true
		}
	}
	return false
}

// apply starts the new servers and retires the old ones (in the background,
// each within its own grace period). Called with s.mu held.
func (s *Site) apply(p *listenerPlan) {
	for old := range p.handoff {
		old.srv.Detach()
	}
	s.live = p.next
	if s.serveCtx != nil {
		for _, l := range p.start {
			s.start(l)
		}
	}
	for _, l := range p.retire {
		if l.cancel == nil {
			// Bound but never served (a reload before Serve).
			if !p.handoff[l] {
				_ = l.srv.Socket().Close()
			}
			continue
		}
		s.retiring.add()
		go func() {
			defer s.retiring.done()
			if err := s.stop(l); err != nil {
				s.log.Warn("retired listener", "addr", l.spec.cfg.Addr, "err", err)
			}
		}()
		s.log.Info("listener retired", "addr", l.spec.cfg.Addr, "handed_over", p.handoff[l])
	}
	for _, l := range p.start {
		role := "site"
		if l.spec.key == "admin" {
			role = "admin"
		}
		s.log.Info("listener started", "addr", l.srv.URL(), "role", role)
	}
}

// start serves l until it is stopped or the site's Serve ends.
func (s *Site) start(l *live) {
	parent := s.serveCtx
	if l.spec.key == "admin" {
		// The admin listener outlives the site's: while they drain, its
		// /readyz says so. Serve stops it last.
		parent = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithCancel(parent)
	l.cancel, l.done = cancel, make(chan error, 1)
	go func() {
		err := l.srv.Serve(ctx)
		if errors.Is(err, host.ErrGraceExpired) {
			// Requests outlived the grace period: the configured behaviour.
			err = nil
		}
		if err != nil && ctx.Err() == nil {
			// The listener died on its own: the site cannot go on half-deaf.
			s.fail(fmt.Errorf("listener %s: %w", l.spec.cfg.Addr, err))
		}
		l.done <- err
	}()
}

func (s *Site) stop(l *live) error {
	l.cancel()
	return <-l.done
}

func (s *Site) fail(err error) {
	select {
	case s.serveErr <- err:
	default:
	}
}

// fileSum digests the named files ("" for none); unreadable files digest as
// their error, which Listen then reports.
func fileSum(paths ...string) string {
	h := sha256.New()
	any := false
	for _, p := range paths {
		if p == "" {
			continue
		}
		any = true
		b, err := os.ReadFile(p)
		if err != nil {
			b = []byte(err.Error())
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	if !any {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// metricsHandler serves the site's metrics, or nil when it keeps none.
func (s *Site) metricsHandler() http.Handler {
	if s.opt.Metrics == nil {
		return nil
	}
	return s.opt.Metrics.Handler()
}
