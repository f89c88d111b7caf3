package runtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"
)

// PoolConfig sizes a pool and sets its limits. Zero values take the defaults noted.
type PoolConfig struct {
	// Workers is the number of instances (sync: 2×CPU+1, gunicorn's formula).
	Workers int
	// QueueSize bounds requests waiting for an instance (default 1024); beyond it
	// requests fail at once with ErrQueueFull.
	QueueSize int
	// QueueWait bounds how long a request waits for an instance (default 10 s).
	QueueWait time.Duration
	// RequestTimeout is the per-request deadline (default 30 s, gunicorn's timeout).
	RequestTimeout time.Duration
	// MaxRequests recycles an instance after this many requests (0 = never).
	MaxRequests int
	// MaxRequestsJitter adds 0..jitter to MaxRequests per instance, so instances do
	// not all recycle at once.
	MaxRequestsJitter int
	// StopTimeout bounds each instance's stop hook (default 5 s).
	StopTimeout time.Duration
	// Observer, if set, hears instance starts, recycles, crashes, deadline
	// kills, guest call times and queue waits (see Observer).
	Observer Observer
	// IdleTimeout scales the pool with its load (0: Workers instances from the
	// start, always): instances idle this long are given back down to
	// MinWorkers, and requests that find none free start more, up to Workers,
	// waiting for them (queued, not refused).
	IdleTimeout time.Duration
	// MinWorkers is what an IdleTimeout pool keeps however idle (0: scale to
	// zero). It is at most Workers.
	MinWorkers int
}

// DefaultSyncWorkers is gunicorn's recommended worker count: 2×CPU+1.
func DefaultSyncWorkers() int { return 2*goruntime.NumCPU() + 1 }

// recycleAfter draws one instance's request budget: MaxRequests plus its
// jitter, or 0 (never recycle).
func (c *PoolConfig) recycleAfter() int {
	if c.MaxRequests <= 0 {
		return 0
	}
	if c.MaxRequestsJitter > 0 {
		return c.MaxRequests + rand.IntN(c.MaxRequestsJitter+1)
	}
	return c.MaxRequests
}

func (c *PoolConfig) defaults(workers int) {
	if c.Workers <= 0 {
		c.Workers = workers
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.QueueWait <= 0 {
		c.QueueWait = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	c.MinWorkers = min(max(c.MinWorkers, 0), c.Workers)
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	}
}

// initial is how many instances a pool starts with: all of them, or with
// scaling MinWorkers but at least one, so a module that cannot start fails at
// once rather than at its first request (that one idles out).
func (c *PoolConfig) initial() int {
	if c.IdleTimeout > 0 {
		return max(c.MinWorkers, 1)
	}
	return c.Workers
}

// reapEvery is how often a scaling pool looks for idle instances.
func (c *PoolConfig) reapEvery() time.Duration {
	return min(max(c.IdleTimeout/4, 10*time.Millisecond), time.Second)
}

// SyncPool runs a sync-mode app (or an http-wasm handler, through Acquire and
// Release): Workers pre-warmed instances, each serving one
// request at a time, with a bounded wait queue in front. Dead or recycled instances
// are replaced by a background goroutine, never on the request path.
//
// With IdleTimeout the pool follows its load instead: it starts with
// MinWorkers (at least one, to prove the module starts), a request that finds
// no instance free asks for one more (up to Workers) and waits in the queue
// for the first instance free, and instances idle for IdleTimeout are stopped
// down to MinWorkers, zero included.
type SyncPool struct {
	app  *App
	cfg  PoolConfig
	idle chan *Instance

	waiting atomic.Int64
	live    atomic.Int64 // instances alive: idle + busy
	want    atomic.Int64 // instances maintain keeps alive: Workers, or with scaling what the load asked for
	need    chan struct{}
	gone    chan struct{}          // capacity 1: an instance left the pool; wakes Close
	all     map[*Instance]struct{} // live instances, for interruptBusy; guarded by mu
	drained bool                   // Close's drain timed out; guarded by mu
	closing chan struct{}
	wg      sync.WaitGroup

	// replacements are rate-limited so a module that crashes on every request
	// cannot turn the pool into a busy instantiation loop.
	repl *replacer
	// health: the last build error while no instance is live; served as
	// ErrUnavailable instead of making requests wait the whole queue timeout.
	mu       sync.Mutex
	lastErr  error
	discards int // since the last storm report
	stats    poolStats
}

type poolStats struct {
	served, discarded, recycled, built atomic.Int64
	scaledDown                         atomic.Int64 // instances stopped for being idle

	// Failed instance starts, for Stats; under mu of the pool.
	startFailures int64
	lastStartErr  string
	lastStartAt   time.Time
}

// startFailed records a failed instance start; the caller holds the pool's mu.
func (s *poolStats) startFailed(err error) {
	s.startFailures++
	s.lastStartErr, s.lastStartAt = err.Error(), time.Now()
}

// NewSyncPool starts a pool and pre-warms every instance before returning, so the
// first requests never pay for instantiation. It fails if no instance can start.
func NewSyncPool(ctx context.Context, app *App, cfg PoolConfig) (*SyncPool, error) {
	if app.info.Mode != ModeSync && app.info.Mode != ModeHTTPWasm {
		return nil, fmt.Errorf("app %s: module is %s-mode, a sync pool needs a sync or http-wasm guest", app.name, app.info.Mode)
	}
	cfg.defaults(DefaultSyncWorkers())
	p := &SyncPool{
		app:     app,
		cfg:     cfg,
		idle:    make(chan *Instance, cfg.Workers),
		need:    make(chan struct{}, cfg.Workers),
		gone:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		all:     map[*Instance]struct{}{},
		repl:    newReplacer(cfg.Workers, app.log),
	}
	start := time.Now()
	p.want.Store(int64(cfg.initial()))
	for range cfg.initial() {
		in, err := p.build(ctx)
		if err != nil {
			p.closeIdle(ctx)
			return nil, fmt.Errorf("app %s: %w", app.name, err)
		}
		p.idle <- in
	}
	if cfg.IdleTimeout > 0 {
		app.log.Info("pool ready", "mode", app.info.Mode.String(), "workers", cfg.initial(), "min_workers", cfg.MinWorkers,
			"max_workers", cfg.Workers, "idle_timeout", cfg.IdleTimeout, "took", time.Since(start).Round(time.Millisecond))
	} else {
		app.log.Info("pool ready", "mode", app.info.Mode.String(), "workers", cfg.Workers, "took", time.Since(start).Round(time.Millisecond))
	}
	p.wg.Add(1)
	go p.maintain()
	return p, nil
}

func (p *SyncPool) build(ctx context.Context) (*Instance, error) {
	start := time.Now()
	in, err := p.app.newInstance(ctx, p.cfg.recycleAfter())
	if err != nil {
		return nil, err
	}
	if o := p.cfg.Observer; o != nil {
		o.Observe(Event{Kind: EventInstanceStarted, App: p.app.name, Instance: in.id, Took: time.Since(start)})
	}
	p.live.Add(1)
	p.stats.built.Add(1)
	in.memSeen.Store(int64(in.mod.Memory().Size()))
	in.idleSince = time.Now()
	p.mu.Lock()
	p.all[in] = struct{}{}
	p.mu.Unlock()
	return in, nil
}

// forget drops a departing instance from the set Close may interrupt.
func (p *SyncPool) forget(in *Instance) {
	p.mu.Lock()
	delete(p.all, in)
	p.mu.Unlock()
}

// Serve runs one request on an instance. It returns the guest's wasmsrv_handle
// result, or an error saying why the request did not run or did not finish: see
// the Err* variables and *GuestError.
func (p *SyncPool) Serve(ctx context.Context, ex Exchange) (int32, error) {
	if p.app.info.Mode != ModeSync {
		return 0, fmt.Errorf("app %s: Serve runs wasmsrv sync guests; an %s guest takes Acquire and Release", p.app.name, p.app.info.Mode)
	}
	in, err := p.acquire(ctx)
	if err != nil {
		return 0, err
	}
	if a, ok := ex.(Acquirer); ok {
		a.Acquired(in.id)
	}
	code, err := in.serveSync(ex, p.cfg.RequestTimeout)
	if o := p.cfg.Observer; o != nil {
		o.Observe(Event{Kind: EventGuestCall, App: p.app.name, Instance: in.id, Took: in.lastCall})
	}
	p.stats.served.Add(1)
	p.release(in, err)
	return code, err
}

func (p *SyncPool) acquire(ctx context.Context) (*Instance, error) {
	if gate := p.app.cfg.CPU; gate != nil {
		if err := gate.OverBudget(); err != nil {
			return nil, err
		}
	}
	select {
	case in := <-p.idle:
		if o := p.cfg.Observer; o != nil {
			o.Observe(Event{Kind: EventQueueWait, App: p.app.name})
		}
		return in, nil
	default:
	}
	in, err := p.wait(ctx)
	return in, err
}

// wait is acquire once no instance is idle: in the queue, up to QueueWait.
func (p *SyncPool) wait(ctx context.Context) (*Instance, error) {
	var start time.Time
	if p.cfg.Observer != nil {
		start = time.Now()
	}
	if err := p.unavailable(); err != nil {
		return nil, err
	}
	if p.waiting.Add(1) > int64(p.cfg.QueueSize) {
		p.waiting.Add(-1)
		return nil, ErrQueueFull
	}
	defer p.waiting.Add(-1)
	if p.cfg.IdleTimeout > 0 {
		p.grow()
	}
	t := time.NewTimer(p.cfg.QueueWait)
	defer t.Stop()
	select {
	case in := <-p.idle:
		if o := p.cfg.Observer; o != nil {
			o.Observe(Event{Kind: EventQueueWait, App: p.app.name, Took: time.Since(start)})
		}
		return in, nil
	case <-t.C:
		if err := p.unavailable(); err != nil {
			return nil, err
		}
		return nil, ErrQueueTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.closing:
		return nil, ErrPoolClosed
	}
}

// grow asks a scaling pool for one more instance, up to Workers: the request
// that asked takes whichever instance is free first, that one or another.
func (p *SyncPool) grow() {
	for {
		w := p.want.Load()
		if w >= int64(p.cfg.Workers) || w >= p.live.Load()+p.waiting.Load() {
			return // at the maximum, or enough on their way for those waiting
		}
		if p.want.CompareAndSwap(w, w+1) {
			p.requestReplacement()
			return
		}
	}
}

// reap stops the instances of a scaling pool idle for IdleTimeout, down to
// MinWorkers. Instances it keeps go back to the idle channel; a request that
// looked in the meantime waits for them in the queue.
func (p *SyncPool) reap() {
	now := time.Now()
	n := len(p.idle)
	for range n {
		var in *Instance
		select {
		case in = <-p.idle:
		default:
			return
		}
		if now.Sub(in.idleSince) >= p.cfg.IdleTimeout && p.want.Load() > int64(p.cfg.MinWorkers) {
			p.want.Add(-1)
			p.stats.scaledDown.Add(1)
			p.retire(in)
			continue
		}
		p.idle <- in
	}
}

// unavailable returns ErrUnavailable (with the cause) when no instance is alive and
// the last attempt to build one failed.
func (p *SyncPool) unavailable() error {
	if p.live.Load() > 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastErr != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, p.lastErr)
	}
	return nil
}

func (p *SyncPool) release(in *Instance, err error) {
	if !in.broken {
		in.memSeen.Store(int64(in.mod.Memory().Size()))
	}
	switch {
	case in.broken:
		p.discard(in, err)
	case in.recycleDue():
		p.stats.recycled.Add(1)
		if o := p.cfg.Observer; o != nil {
			o.Observe(Event{Kind: EventInstanceRecycled, App: p.app.name, Instance: in.id})
		}
		p.retire(in)
	default:
		select {
		case <-p.closing:
			p.retire(in)
		default:
			if p.cfg.IdleTimeout > 0 {
				in.idleSince = time.Now()
			}
			p.idle <- in
		}
	}
}

// discard drops a dead instance and asks for a replacement.
func (p *SyncPool) discard(in *Instance, err error) {
	p.forget(in)
	p.live.Add(-1)
	p.noteGone()
	p.stats.discarded.Add(1)
	if o := p.cfg.Observer; o != nil {
		o.Observe(lossEvent(p.app.name, in.id, err))
	}
	p.app.log.Error("instance discarded", append([]any{"instance", in.id}, errAttrs(err)...)...)
	p.mu.Lock()
	p.discards++
	p.mu.Unlock()
	go in.close(context.Background())
	p.requestReplacement()
}

// retire stops a healthy instance in the background (stop hook, then close).
func (p *SyncPool) retire(in *Instance) {
	// wg before live: once Close sees live reach zero it waits on wg, and that
	// Wait must not run before this Add (the stop hook would outlive Close).
	p.forget(in)
	p.mu.Lock()
	late := p.drained // Close gave up waiting: no stop hook, and no wg.Add after its Wait
	if !late {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if late {
		in.close(context.Background())
	} else {
		go func() {
			defer p.wg.Done()
			p.app.stop(context.Background(), in, p.cfg.StopTimeout)
		}()
	}
	p.live.Add(-1)
	p.noteGone()
	p.requestReplacement()
}

// noteGone wakes Close, which waits for live to reach zero: an instance that was
// busy when Close started leaves through retire or discard, never through idle.
func (p *SyncPool) noteGone() {
	select {
	case p.gone <- struct{}{}:
	default:
	}
}

func (p *SyncPool) requestReplacement() {
	select {
	case p.need <- struct{}{}:
	default: // a replacement is already pending; maintain() tops up to Workers anyway
	}
}

// maintain keeps the pool at Workers instances, building replacements in the
// background at a bounded rate and reporting crash loops.
func (p *SyncPool) maintain() {
	defer p.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-p.closing; cancel() }()
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	var reap <-chan time.Time
	if p.cfg.IdleTimeout > 0 {
		t := time.NewTicker(p.cfg.reapEvery())
		defer t.Stop()
		reap = t.C
	}
	for {
		select {
		case <-p.closing:
			return
		case <-report.C:
			p.reportStorm()
			continue
		case <-reap:
			p.reap()
			continue
		case <-p.need:
		}
		for p.live.Load() < p.want.Load() {
			in, ok, err := nextInstance(ctx, p.repl, p.build)
			if !ok {
				return
			}
			p.mu.Lock()
			p.lastErr = err
			if err != nil {
				p.stats.startFailed(err)
			}
			p.mu.Unlock()
			if err != nil {
				if o := p.cfg.Observer; o != nil {
					o.Observe(Event{Kind: EventInstanceStartFailed, App: p.app.name, Err: err})
				}
				continue
			}
			select {
			case p.idle <- in:
			case <-p.closing:
				p.live.Add(-1)
				p.noteGone()
				in.close(ctx)
				return
			}
		}
	}
}

func (p *SyncPool) reportStorm() {
	p.mu.Lock()
	n := p.discards
	p.discards = 0
	p.mu.Unlock()
	if n > p.cfg.Workers {
		p.app.log.Warn("instances keep failing: replacements are rate-limited", "discarded_last_10s", n, "workers", p.cfg.Workers)
	}
}

// SyncStats is a snapshot of pool counters (AsyncStats adds the async pool's own).
type SyncStats struct {
	Workers, Live, Idle, Waiting       int
	Served, Discarded, Recycled, Built int64
	// Busy is the number of live instances serving now (async: carrying a
	// connection); Memory the linear memory of the live instances in bytes, as
	// last seen (sync: when each last came back; async: Memory's sum).
	Busy   int
	Memory int64
	// MinWorkers is the least a scaling pool keeps (PoolConfig.IdleTimeout);
	// ScaledDown counts the instances it stopped for being idle.
	MinWorkers int
	ScaledDown int64
	// GuestTime is the time the app's guests ran for requests and events
	// (App.GuestTime).
	GuestTime time.Duration
	// StartFailures counts replacement instances that failed to start (a start
	// function, _initialize or start hook that failed or overran the start
	// timeout); LastStartError is the latest reason, at LastStartErrorAt.
	StartFailures    int64
	LastStartError   string
	LastStartErrorAt time.Time
}

// Stats returns current counters.
func (p *SyncPool) Stats() SyncStats {
	p.mu.Lock()
	failures, lastErr, lastAt := p.stats.startFailures, p.stats.lastStartErr, p.stats.lastStartAt
	var mem int64
	for in := range p.all {
		mem += in.memSeen.Load()
	}
	p.mu.Unlock()
	return SyncStats{
		Memory: mem, Busy: max(int(p.live.Load())-len(p.idle), 0),
		Workers: p.cfg.Workers, Live: int(p.live.Load()), Idle: len(p.idle), Waiting: int(p.waiting.Load()),
		Served: p.stats.served.Load(), Discarded: p.stats.discarded.Load(),
		Recycled: p.stats.recycled.Load(), Built: p.stats.built.Load(),
		MinWorkers: p.minWorkers(), ScaledDown: p.stats.scaledDown.Load(), GuestTime: p.app.GuestTime(),
		StartFailures: failures, LastStartError: lastErr, LastStartErrorAt: lastAt,
	}
}

// minWorkers is the pool's floor: MinWorkers when it scales, else Workers.
func (p *SyncPool) minWorkers() int {
	if p.cfg.IdleTimeout > 0 {
		return p.cfg.MinWorkers
	}
	return p.cfg.Workers
}

// Close drains the pool: it stops building, waits for busy instances to come back
// (until ctx ends), runs every healthy instance's stop hook, and closes the app.
func (p *SyncPool) Close(ctx context.Context) error {
	close(p.closing)
	for p.live.Load() > 0 {
		select {
		case in := <-p.idle:
			p.live.Add(-1)
			p.app.stop(ctx, in, p.cfg.StopTimeout)
		case <-p.gone:
		case <-ctx.Done():
			return p.interruptBusy(ctx.Err())
		}
	}
	p.wg.Wait()
	return nil
}

// interruptBusy ends a drain that ran out of time: requests still running are
// stopped as if their deadline had passed (the guest traps at its next loop, its
// blocked I/O is aborted), so shutdown is bounded by the caller's context rather
// than by the slowest guest.
func (p *SyncPool) interruptBusy(cause error) error {
	p.mu.Lock()
	busy := make([]*Instance, 0, len(p.all))
	for in := range p.all {
		busy = append(busy, in)
	}
	p.mu.Unlock()
	n := 0
	for _, in := range busy {
		if in.interruptIfBusy() {
			n++
		}
	}
	wait := time.NewTimer(2 * time.Second)
	defer wait.Stop()
	for p.live.Load() > 0 {
		select {
		case in := <-p.idle:
			p.live.Add(-1)
			p.forget(in)
			in.close(context.Background())
		case <-p.gone:
		case <-wait.C:
			p.mu.Lock()
			p.drained = true
			p.mu.Unlock()
			p.wg.Wait()
			return fmt.Errorf("app %s: %d instances did not stop: %w", p.app.name, p.live.Load(), cause)
		}
	}
	p.wg.Wait()
	return fmt.Errorf("app %s: drain timed out, %d requests interrupted: %w", p.app.name, n, cause)
}

func (p *SyncPool) closeIdle(ctx context.Context) {
	for {
		select {
		case in := <-p.idle:
			in.close(ctx)
		default:
			return
		}
	}
}
