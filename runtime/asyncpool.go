package runtime

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// ErrConcurrencyLimit: the app (or every instance) already carries its maximum of
// in-flight connections (uvicorn's --limit-concurrency). The host answers 503.
var ErrConcurrencyLimit = errors.New("concurrency limit reached")

// AsyncConfig holds the limits specific to async pools. Zero values take the
// defaults noted.
type AsyncConfig struct {
	// MaxConnsPerInstance caps in-flight connections (HTTP requests and
	// WebSockets) on one instance (default 10,000).
	MaxConnsPerInstance int
	// MaxConns caps in-flight connections over the whole app (default: no cap
	// beyond Workers × MaxConnsPerInstance).
	MaxConns int
	// EventTimeout bounds one wasmsrv_on_event call (default 5 s). An instance that
	// overruns it is discarded with every connection it carries.
	EventTimeout time.Duration
	// MailboxSize bounds the events queued for one instance (default 4096). New
	// connections are refused with 503 while it is full; events of existing
	// connections wait.
	MailboxSize int
}

func (c *AsyncConfig) defaults() {
	if c.MaxConnsPerInstance <= 0 {
		c.MaxConnsPerInstance = 10000
	}
	if c.EventTimeout <= 0 {
		c.EventTimeout = 5 * time.Second
	}
	if c.MailboxSize <= 0 {
		c.MailboxSize = 4096
	}
}

// DefaultAsyncInstances is uvicorn's advice for event loops: one per core.
func DefaultAsyncInstances() int { return goruntime.NumCPU() }

// maxTimersPerInstance bounds the host memory a guest can pin with timers.
const maxTimersPerInstance = 1 << 17

// AsyncPool runs an async-mode app: Workers instances, each owned by one goroutine
// that feeds it events from a bounded mailbox, each carrying many connections. New
// connections go to the least-loaded instance. A failed instance costs only its own
// connections and is replaced in the background; a recycled one first drains.
//
// With PoolConfig.IdleTimeout it scales like a SyncPool: MinWorkers (at least
// one) at first, one more when a connection finds every instance carrying
// some (up to Workers), and an instance without connections for IdleTimeout
// drains and retires, down to MinWorkers; a connection that finds none waits
// for one in the queue.
type AsyncPool struct {
	app  *App
	cfg  PoolConfig
	acfg AsyncConfig

	mu      sync.Mutex
	insts   []*asyncInst            // in rotation
	all     map[*asyncInst]struct{} // alive: in rotation or draining
	avail   chan struct{}           // closed while insts is not empty
	closing bool
	lastErr error
	want    int // instances maintain keeps in rotation: Workers, or with scaling what the load asked for

	conns  atomic.Int64 // in-flight connections over the app
	need   chan struct{}
	closed chan struct{} // closed by Close: stop building
	owners sync.WaitGroup
	maint  sync.WaitGroup
	repl   *replacer
	stats  poolStats
}

// asyncInst is one instance of an async pool. Its owner is whichever goroutine
// holds run: the goroutine that posts an event runs the instance itself when no
// other goroutine does (flat combining), and otherwise leaves the event in the
// mailbox for the current owner, which drains it before letting go. Events are
// therefore serialized per instance exactly as with a dedicated goroutine, but a
// request on an idle instance costs no goroutine hand-off. Fields below "owner
// only" are touched only under run: every host function runs there, so the handle
// table and the timers need no other locks.
type asyncInst struct {
	pool   *AsyncPool
	in     *Instance
	run    sync.Mutex
	mail   chan event
	dead   chan struct{} // closed when the instance stops taking events
	over   atomic.Bool   // retired or discarded: nothing more runs
	active atomic.Int64  // connections assigned: start event queued or in the table
	bp     atomic.Bool   // the guest asked for no new connections
	used   atomic.Int64  // a scaling pool's: when a connection last came or went (UnixNano)
	wakes  wakeQueue     // Waker events: start-up kick and those waiting for mailbox room
	nextID uint32        // under pool.mu

	// owner only
	table     map[uint32]*Conn
	timers    guestTimers
	abandoned int // connections the host gave up on that the guest has not ended
	yield     bool
	// yieldSpent is the guest time of the POLL calls of the current YIELD
	// streak: together they get one event deadline.
	yieldSpent time.Duration
	draining   bool
	failErr    error
}

// Control events (conn == nil) for the owner.
const (
	ctlTimer int32 = -1 - iota
	ctlDrain
	ctlKill
	ctlPlugin  // a Waker's EventPlugin: a = token, b = connection handle (0: none)
	ctlAbandon // conn != nil, a = status
)

// Conn is one connection on an async instance, the host side's handle to post
// events for it.
type Conn struct {
	ai        *asyncInst
	id        uint32
	ex        AsyncExchange
	done      bool      // owner goroutine only: finished, events are dropped
	abandoned bool      // owner goroutine only: no longer counted, see Abandon
	opened    time.Time // when Open queued it, with an Observer only: its queue wait
}

// Post queues an event for the connection's guest. It blocks while the instance's
// mailbox is full and returns false when the instance is gone (the connection was
// or will be finished with an error).
func (c *Conn) Post(kind int32, a, b int64) bool {
	select {
	case c.ai.mail <- event{conn: c, kind: kind, a: a, b: b}:
		c.ai.drain()
		return true
	case <-c.ai.dead:
		return false
	}
}

// TryPost is Post without waiting: it reports false when the mailbox is full or
// the instance is gone. Code that must not block (or may run on the owner
// goroutine itself) tries this first and falls back to Post on a goroutine.
func (c *Conn) TryPost(kind int32, a, b int64) bool {
	select {
	case c.ai.mail <- event{conn: c, kind: kind, a: a, b: b}:
		c.ai.drain()
		return true
	default:
		return false
	}
}

// Abandon tells the pool that the host side is done with the connection before
// the guest ended it: the client is gone, or the request deadline passed and the
// client got its 504. The connection stops counting toward the per-instance and
// per-app caps at once, so a guest that never calls ctx_done cannot lock new
// connections out. The guest's handle stays valid until its ctx_done, and events
// for it are still delivered.
//
// With status 0 the exchange stays in use until ctx_done (a closed WebSocket:
// the guest may still take the messages received before the close). Otherwise
// the exchange is finished now (Finish with ErrAbandoned) and the guest's host
// calls on the handle answer status (abi.ErrTimeout, abi.ErrClosed) from then on.
//
// An instance carrying more abandoned connections than MaxConnsPerInstance is
// recycled. Abandon never blocks.
func (c *Conn) Abandon(status int32) {
	ev := event{conn: c, kind: ctlAbandon, a: int64(status)}
	select {
	case c.ai.mail <- ev:
		c.ai.drain()
	default:
		go func() {
			select {
			case c.ai.mail <- ev:
				c.ai.drain()
			case <-c.ai.dead:
			}
		}()
	}
}

// Instance returns the id of the instance carrying the connection.
func (c *Conn) Instance() uint64 { return c.ai.in.id }

// NewAsyncPool starts an async pool, pre-warming every instance (start hooks
// included) before it returns. It fails if no instance can start.
func NewAsyncPool(ctx context.Context, app *App, cfg PoolConfig, acfg AsyncConfig) (*AsyncPool, error) {
	if app.info.Mode != ModeAsync {
		return nil, fmt.Errorf("app %s: module is %s-mode, an async pool needs an async guest", app.name, app.info.Mode)
	}
	cfg.defaults(DefaultAsyncInstances())
	acfg.defaults()
	p := &AsyncPool{
		app: app, cfg: cfg, acfg: acfg,
		need:   make(chan struct{}, 1),
		closed: make(chan struct{}),
		all:    make(map[*asyncInst]struct{}),
		avail:  make(chan struct{}),
		repl:   newReplacer(cfg.Workers, app.log),
	}
	start := time.Now()
	p.want = cfg.initial()
	for range cfg.initial() {
		ai, err := p.build(ctx)
		if err != nil {
			p.mu.Lock()
			insts := p.insts
			p.insts = nil
			p.mu.Unlock()
			for _, ai := range insts {
				ai.control(ctlDrain) // no connections yet: it retires at once
			}
			p.owners.Wait()
			return nil, fmt.Errorf("app %s: %w", app.name, err)
		}
		p.mu.Lock()
		p.addLocked(ai)
		p.mu.Unlock()
	}
	app.log.Info("pool ready", "mode", "async", "instances", cfg.initial(), "max_instances", cfg.Workers, "min_instances", p.minWorkers(),
		"max_conns_per_instance", acfg.MaxConnsPerInstance, "took", time.Since(start).Round(time.Millisecond))
	p.maint.Add(1)
	go p.maintain()
	return p, nil
}

// build instantiates one instance (start hook included) and starts its owner.
func (p *AsyncPool) build(ctx context.Context) (*asyncInst, error) {
	start := time.Now()
	in, err := p.app.newInstance(ctx, p.cfg.recycleAfter())
	if err != nil {
		return nil, err
	}
	if o := p.cfg.Observer; o != nil {
		o.Observe(Event{Kind: EventInstanceStarted, App: p.app.name, Instance: in.id, Took: time.Since(start)})
	}
	ai := &asyncInst{
		pool: p, in: in,
		mail:  make(chan event, p.acfg.MailboxSize),
		dead:  make(chan struct{}),
		table: make(map[uint32]*Conn),
	}
	ai.used.Store(time.Now().UnixNano())
	ai.timers = newGuestTimers(maxTimersPerInstance, func() { ai.control(ctlTimer) })
	in.async = ai
	p.stats.built.Add(1)
	p.owners.Add(1)
	p.mu.Lock()
	p.all[ai] = struct{}{}
	p.mu.Unlock()
	return ai, nil
}

// Open assigns a new connection to the least-loaded instance and queues its start
// event (abi.EventRequest, or abi.EventWSConnect for a WebSocket upgrade request).
// Errors: ErrConcurrencyLimit, ErrQueueFull (mailbox full), ErrUnavailable,
// ErrPoolClosed, ErrCPUBudget (a *cpushare.BudgetError: the tenant's CPU budget
// is spent).
// While every instance is being replaced (all recycled at once, or after a
// crash) new connections wait up to QueueWait for one.
func (p *AsyncPool) Open(ex AsyncExchange, websocket bool) (*Conn, error) {
	if gate := p.app.cfg.CPU; gate != nil {
		if err := gate.OverBudget(); err != nil {
			return nil, err
		}
	}
	var timeout <-chan time.Time
	for {
		c, wait, err := p.assign(ex, websocket)
		if err != nil {
			return nil, err
		}
		if c != nil {
			c.ai.drain() // most often this goroutine runs the guest right here
			return c, nil
		}
		if timeout == nil {
			t := time.NewTimer(p.cfg.QueueWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-wait:
		case <-timeout:
			return nil, ErrQueueTimeout
		case <-p.closed:
			return nil, ErrPoolClosed
		}
	}
}

// assign picks the instance and queues the start event, or returns a channel to
// wait on when no instance is in rotation but one is on its way.
func (p *AsyncPool) assign(ex AsyncExchange, websocket bool) (*Conn, <-chan struct{}, error) {
	kind := abi.EventRequest
	if websocket {
		kind = abi.EventWSConnect
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return nil, nil, ErrPoolClosed
	}
	if p.acfg.MaxConns > 0 && p.conns.Load() >= int64(p.acfg.MaxConns) {
		return nil, nil, ErrConcurrencyLimit
	}
	var best *asyncInst
	bestLoad := int64(p.acfg.MaxConnsPerInstance)
	for _, ai := range p.insts {
		if ai.bp.Load() {
			continue
		}
		if n := ai.active.Load(); n < bestLoad {
			best, bestLoad = ai, n
		}
	}
	if p.cfg.IdleTimeout > 0 && p.want < p.cfg.Workers && p.want <= len(p.insts) && (best == nil || bestLoad > 0) {
		// Scaling: no instance, or every one carries connections: one more.
		p.want++
		p.requestReplacement()
	}
	if best == nil {
		if len(p.insts) == 0 && p.lastErr != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, p.lastErr)
		}
		if len(p.insts) == 0 {
			return nil, p.avail, nil
		}
		return nil, nil, ErrConcurrencyLimit
	}
	best.nextID++
	if best.nextID == 0 {
		best.nextID = 1
	}
	c := &Conn{ai: best, id: best.nextID, ex: ex}
	if p.cfg.Observer != nil {
		c.opened = time.Now()
	}
	ex.Bind(c)
	select {
	case best.mail <- event{conn: c, kind: kind}:
	default:
		return nil, nil, ErrQueueFull
	}
	best.active.Add(1)
	p.conns.Add(1)
	if p.cfg.IdleTimeout > 0 {
		best.used.Store(time.Now().UnixNano())
	}
	return c, nil, nil
}

// reap drains the instances of a scaling pool that carried no connection for
// IdleTimeout, down to MinWorkers; they retire (stop hook) once drained. Guest
// timers of an instance given back end with it.
func (p *AsyncPool) reap() {
	now := time.Now().UnixNano()
	var idle []*asyncInst
	p.mu.Lock()
	for i := len(p.insts) - 1; i >= 0 && p.want > p.cfg.MinWorkers; i-- {
		ai := p.insts[i]
		if ai.active.Load() == 0 && now-ai.used.Load() >= int64(p.cfg.IdleTimeout) {
			p.want--
			p.removeLocked(ai)
			idle = append(idle, ai)
		}
	}
	p.mu.Unlock()
	for _, ai := range idle {
		p.stats.scaledDown.Add(1)
		ai.control(ctlDrain)
	}
}

// minWorkers is the pool's floor: MinWorkers when it scales, else Workers.
func (p *AsyncPool) minWorkers() int {
	if p.cfg.IdleTimeout > 0 {
		return p.cfg.MinWorkers
	}
	return p.cfg.Workers
}

// control queues a control event without blocking the caller (the timer
// callback, Close) and runs the instance if it is free.
func (ai *asyncInst) control(kind int32) {
	select {
	case ai.mail <- event{kind: kind}:
		ai.drain()
	default:
		go func() {
			select {
			case ai.mail <- event{kind: kind}:
				ai.drain()
			case <-ai.dead:
			}
		}()
	}
}

// drainSlice is how long one goroutine runs an instance's events before it
// hands the rest to a new goroutine: the caller of drain is often a request's
// own goroutine (flat combining), which has that request's response to write.
const drainSlice = 2 * time.Millisecond

// drain makes the calling goroutine the owner if no one else is, and runs queued
// events until the mailbox is empty, or for drainSlice, after which a new
// goroutine carries on (a guest that keeps returning YIELD, or a steady stream
// of events, never holds a request's goroutine). An event queued just as the
// previous owner let go is seen by the re-check after Unlock.
func (ai *asyncInst) drain() {
	for {
		if ai.over.Load() || !ai.run.TryLock() {
			return
		}
		more := false
		if !ai.over.Load() {
			more = ai.process()
		}
		ai.run.Unlock()
		if more {
			go ai.drain()
			return
		}
		if ai.over.Load() || len(ai.mail) == 0 {
			return
		}
	}
}

// process runs events until none is queued and the guest has nothing left to
// do, and reports true when it stopped after drainSlice with work left.
func (ai *asyncInst) process() (more bool) {
	p := ai.pool
	var start time.Time // read only when a second event is due: one event costs no clock read
	for n := 0; ; n++ {
		if n > 0 && (ai.yield || len(ai.mail) > 0) {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > drainSlice {
				return true
			}
		}
		select {
		case ev := <-ai.mail:
			switch {
			case ev.conn != nil:
				ai.dispatch(ev)
			case ev.kind == ctlTimer:
				ai.fireTimers()
			case ev.kind == ctlDrain:
				if !ai.draining {
					ai.beginDrain(true)
				}
			case ev.kind == ctlKill:
				ai.fail(ErrPoolClosed)
			case ev.kind == ctlPlugin:
				ai.dispatchPlugin(ev)
			}
		default:
			if !ai.yield {
				return false
			}
			// The guest has work left and nothing else is queued: let it go on.
			ai.poll()
		}
		if ai.failErr != nil {
			ai.discard()
			return false
		}
		if !ai.draining && ai.in.recycleDue() {
			p.stats.recycled.Add(1)
			p.observeRecycle(ai)
			ai.beginDrain(false)
		}
		if ai.draining && ai.active.Load() == 0 {
			ai.retire()
			return false
		}
	}
}

// dispatch delivers one mailbox event to the guest.
func (ai *asyncInst) dispatch(ev event) {
	c := ev.conn
	switch ev.kind {
	case ctlAbandon:
		ai.abandon(c, int32(ev.a))
		return
	case abi.EventRequest, abi.EventWSConnect:
		ai.table[c.id] = c
		if a, ok := c.ex.(Acquirer); ok {
			a.Acquired(ai.in.id)
		}
		if o := ai.pool.cfg.Observer; o != nil {
			o.Observe(Event{Kind: EventQueueWait, App: ai.pool.app.name, Took: time.Since(c.opened)})
		}
	default:
		if c.done {
			return // the guest already ended this connection
		}
	}
	ai.in.event = c.ex
	ai.call(c.id, ev.kind, ev.a, ev.b)
	ai.in.event = nil
}

// poll continues a YIELD (SPEC §8.1). The POLL calls of one streak, from the
// YIELD that starts it to the POLL that answers IDLE, share one event deadline:
// YIELD lets the host serve other events in between, it does not extend the
// time the guest may compute. A guest that keeps yielding past it is treated as
// one whose event overran its deadline.
func (ai *asyncInst) poll() {
	limit := ai.pool.acfg.EventTimeout
	if ai.yieldSpent >= limit {
		ai.fail(ai.yieldError())
		return
	}
	start := time.Now()
	ai.callWithin(0, abi.EventPoll, 0, 0, limit-ai.yieldSpent, func(err error) error {
		ai.yieldSpent += time.Since(start)
		if errors.Is(err, ErrDeadline) {
			return ai.yieldError()
		}
		return err
	})
	switch {
	case ai.failErr != nil:
	case ai.yield:
		ai.yieldSpent += time.Since(start)
	default:
		ai.yieldSpent = 0
	}
}

func (ai *asyncInst) yieldError() error {
	return fmt.Errorf("%w: the guest kept answering YIELD to POLL for %v in all (the event timeout is %v)",
		ErrDeadline, ai.yieldSpent.Round(time.Millisecond), ai.pool.acfg.EventTimeout)
}

// call runs wasmsrv_on_event under the per-event deadline.
func (ai *asyncInst) call(ctx uint32, kind int32, a, b int64) {
	ai.callWithin(ctx, kind, a, b, ai.pool.acfg.EventTimeout, nil)
}

// callWithin runs wasmsrv_on_event under timeout and acts on its result. The
// error of a failed call goes through wrap, if given, before it fails the
// instance.
func (ai *asyncInst) callWithin(ctx uint32, kind int32, a, b int64, timeout time.Duration, wrap func(error) error) {
	if ai.failErr != nil {
		return
	}
	in := ai.in
	in.stack[0], in.stack[1], in.stack[2], in.stack[3] = uint64(ctx), uint64(uint32(kind)), uint64(a), uint64(b)
	err := in.gatedCall(in.handle, timeout)
	if o := ai.pool.cfg.Observer; o != nil {
		o.Observe(Event{Kind: EventGuestCall, App: ai.pool.app.name, Instance: in.id, Took: in.lastCall})
	}
	if err != nil {
		if wrap != nil {
			err = wrap(err)
		}
		ai.fail(err)
		return
	}
	switch rc := int32(uint32(in.stack[0])); {
	case rc == abi.EventYield:
		ai.yield = true
	case rc < 0:
		in.broken = true
		ai.fail(&GuestError{App: ai.pool.app.name, Kind: FailABI,
			Err: fmt.Errorf("%s returned %d", abi.ExportOnEvent, rc), Stderr: in.stderr.Tail()})
	case kind == abi.EventPoll:
		// Only the guest's answer to POLL ends a YIELD: another event's IDLE may
		// come from a callback that knows nothing of the pending work (a C app's
		// on_request while on_poll has a job half done).
		ai.yield = false
	}
}

// exchange returns the exchange of handle h, trapping on a bad one (SPEC §2).
func (ai *asyncInst) exchange(fn string, h uint64) Exchange {
	c := ai.table[uint32(h)]
	if c == nil || uint64(c.id) != h&0xffffffff {
		trap(fn, fmt.Sprintf("unknown request handle %d", uint32(h)))
	}
	return c.ex
}

// finish ends connection h on behalf of the guest (ctx_done).
func (ai *asyncInst) finish(h uint32, code int32) bool {
	c := ai.table[h]
	if c == nil {
		return false
	}
	delete(ai.table, h)
	c.done = true
	if c.abandoned {
		ai.abandoned-- // counted and served when it was abandoned
		c.ex.Finish(code, nil)
		return true
	}
	ai.in.served++
	ai.pool.stats.served.Add(1)
	ai.active.Add(-1)
	ai.pool.conns.Add(-1)
	if ai.pool.cfg.IdleTimeout > 0 {
		ai.used.Store(time.Now().UnixNano())
	}
	c.ex.Finish(code, nil)
	return true
}

// abandon stops counting connection c (Conn.Abandon), on the owner goroutine.
func (ai *asyncInst) abandon(c *Conn, status int32) {
	if c.done || c.abandoned || ai.table[c.id] != c {
		return
	}
	c.abandoned = true
	ai.abandoned++
	ai.in.served++
	ai.pool.stats.served.Add(1)
	ai.active.Add(-1)
	ai.pool.conns.Add(-1)
	if status != 0 {
		head := append([]byte(nil), c.ex.Head()...)
		_, ws := c.ex.(WebSocket)
		ws = ws && len(head) > 1 && head[1] == abi.KindWebSocket
		c.ex.Finish(0, ErrAbandoned)
		c.ex = &endedExchange{head: head, status: status, ws: ws}
	}
	if ai.abandoned > ai.pool.acfg.MaxConnsPerInstance && !ai.draining {
		// The guest does not end the connections it is told are over: what it
		// keeps costs memory on both sides, so replace it once it has drained.
		ai.pool.app.log.Warn("async instance recycled: its guest does not end abandoned connections",
			"instance", ai.in.id, "abandoned", ai.abandoned)
		ai.pool.stats.recycled.Add(1)
		ai.pool.observeRecycle(ai)
		ai.beginDrain(false)
	}
}

// fail marks the instance dead and fails every connection it carries: theirs is
// the only traffic a broken instance costs.
func (ai *asyncInst) fail(err error) {
	if ai.failErr != nil {
		return
	}
	ai.failErr = err
	ai.in.broken = true
	p := ai.pool
	p.mu.Lock()
	p.removeLocked(ai)
	p.mu.Unlock()
	close(ai.dead)
	n := int64(0)
	for id, c := range ai.table {
		delete(ai.table, id)
		c.done = true
		c.ex.Finish(0, err)
		if !c.abandoned {
			n++
		}
	}
	// Connections whose start event is still queued never reached the guest; Open
	// cannot add more (the instance left the rotation under p.mu).
	for {
		select {
		case ev := <-ai.mail:
			if (ev.kind == abi.EventRequest || ev.kind == abi.EventWSConnect) && !ev.conn.done {
				ev.conn.done = true
				ev.conn.ex.Finish(0, err)
				n++
			}
			continue
		default:
		}
		break
	}
	ai.active.Add(-n)
	p.conns.Add(-n)
}

// discard closes a failed instance and asks for a replacement.
func (ai *asyncInst) discard() {
	p := ai.pool
	ai.over.Store(true)
	defer p.gone(ai)
	ai.timers.stop()
	if !errors.Is(ai.failErr, ErrPoolClosed) {
		p.stats.discarded.Add(1)
		if o := p.cfg.Observer; o != nil {
			o.Observe(lossEvent(p.app.name, ai.in.id, ai.failErr))
		}
		attrs := append([]any{"instance", ai.in.id}, errAttrs(ai.failErr)...)
		p.app.log.Error("async instance discarded with its connections", attrs...)
	}
	ai.in.close(context.Background())
	p.requestReplacement()
}

// beginDrain takes the instance out of rotation: it finishes what it carries and
// then retires. On pool close the guest also gets EventCancel for each connection.
func (ai *asyncInst) beginDrain(cancel bool) {
	ai.draining = true
	p := ai.pool
	p.mu.Lock()
	p.removeLocked(ai)
	p.mu.Unlock()
	p.requestReplacement()
	if cancel {
		for id, c := range ai.table {
			if !c.done {
				ai.call(id, abi.EventCancel, 0, 0)
			}
		}
	}
}

// retire runs the stop hook of a drained instance and closes it.
func (ai *asyncInst) retire() {
	ai.over.Store(true)
	defer ai.pool.gone(ai)
	close(ai.dead)
	for id, c := range ai.table { // abandoned connections the guest never ended
		delete(ai.table, id)
		c.done = true
		c.ex.Finish(0, ErrPoolClosed)
	}
	ai.timers.stop()
	ai.pool.app.stop(context.Background(), ai.in, ai.pool.cfg.StopTimeout)
}

func (p *AsyncPool) removeLocked(ai *asyncInst) {
	for i, x := range p.insts {
		if x == ai {
			p.insts = append(p.insts[:i], p.insts[i+1:]...)
			if len(p.insts) == 0 {
				p.avail = make(chan struct{}) // new connections wait for a replacement
			}
			return
		}
	}
}

func (p *AsyncPool) addLocked(ai *asyncInst) {
	p.insts = append(p.insts, ai)
	if len(p.insts) == 1 {
		close(p.avail)
	}
}

// gone forgets an instance that retired or was discarded.
func (p *AsyncPool) gone(ai *asyncInst) {
	p.mu.Lock()
	delete(p.all, ai)
	p.mu.Unlock()
	p.owners.Done()
}

func (p *AsyncPool) requestReplacement() {
	select {
	case p.need <- struct{}{}:
	default:
	}
}

// maintain keeps Workers instances in rotation, building replacements in the
// background at a bounded rate with backoff while builds fail.
func (p *AsyncPool) maintain() {
	defer p.maint.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-p.closed; cancel() }()
	var reap <-chan time.Time
	if p.cfg.IdleTimeout > 0 {
		t := time.NewTicker(p.cfg.reapEvery())
		defer t.Stop()
		reap = t.C
	}
	for {
		select {
		case <-p.closed:
			return
		case <-reap:
			p.reap()
			continue
		case <-p.need:
		}
		for {
			p.mu.Lock()
			short := !p.closing && len(p.insts) < p.want
			p.mu.Unlock()
			if !short {
				break
			}
			ai, ok, err := nextInstance(ctx, p.repl, p.build)
			if !ok {
				return
			}
			if err != nil {
				p.mu.Lock()
				p.lastErr = err
				p.stats.startFailed(err)
				p.mu.Unlock()
				if o := p.cfg.Observer; o != nil {
					o.Observe(Event{Kind: EventInstanceStartFailed, App: p.app.name, Err: err})
				}
				continue
			}
			p.mu.Lock()
			if p.closing {
				p.mu.Unlock()
				ai.control(ctlDrain)
				return
			}
			p.lastErr = nil
			p.addLocked(ai)
			p.mu.Unlock()
		}
	}
}

// AsyncStats is a snapshot of an async pool.
type AsyncStats struct {
	SyncStats
	// Conns is the number of in-flight connections per instance in rotation.
	Conns []int
	// Memory is the linear memory size of each instance in rotation, in bytes
	// (0 when the instance was busy at the time of the snapshot).
	Memory []uint32
}

// Stats returns current counters.
func (p *AsyncPool) Stats() AsyncStats {
	p.mu.Lock()
	failures, lastErr, lastAt := p.stats.startFailures, p.stats.lastStartErr, p.stats.lastStartAt
	loads := make([]int, len(p.insts))
	mem := make([]uint32, len(p.insts))
	for i, ai := range p.insts {
		loads[i] = int(ai.active.Load())
		if ai.run.TryLock() { // the memory may grow only while its owner runs
			if !ai.over.Load() {
				mem[i] = ai.in.mod.Memory().Size()
			}
			ai.run.Unlock()
		}
	}
	p.mu.Unlock()
	busy, total := 0, int64(0)
	for i, n := range loads {
		if n > 0 {
			busy++
		}
		total += int64(mem[i])
	}
	return AsyncStats{SyncStats: SyncStats{
		Busy: busy, Memory: total, Idle: len(loads) - busy,
		Workers: p.cfg.Workers, Live: len(loads), Waiting: int(p.conns.Load()),
		Served: p.stats.served.Load(), Discarded: p.stats.discarded.Load(),
		Recycled: p.stats.recycled.Load(), Built: p.stats.built.Load(), GuestTime: p.app.GuestTime(),
		MinWorkers: p.minWorkers(), ScaledDown: p.stats.scaledDown.Load(),
		StartFailures: failures, LastStartError: lastErr, LastStartErrorAt: lastAt,
	}, Conns: loads, Memory: mem}
}

// Close drains the pool: no new connections, every guest connection gets
// EventCancel, instances retire (stop hooks run) as they empty. When ctx ends first,
// the remaining connections fail with ErrPoolClosed and their instances close
// without stop hooks.
func (p *AsyncPool) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	insts := make([]*asyncInst, 0, len(p.all))
	for ai := range p.all {
		insts = append(insts, ai) // draining ones too: a kill must reach them
	}
	p.mu.Unlock()
	close(p.closed)
	p.maint.Wait()
	for _, ai := range insts {
		ai.control(ctlDrain)
	}
	done := make(chan struct{})
	go func() { p.owners.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, ai := range insts {
			ai.control(ctlKill) // fail what is left
		}
		<-done
		return fmt.Errorf("app %s: connections still open at close: %w", p.app.name, ctx.Err())
	}
}

// setTimer arms (or re-arms) guest timer id to fire after d.
func (ai *asyncInst) setTimer(id uint32, d time.Duration) int32 {
	if !ai.timers.set(id, time.Now().Add(d)) {
		return abi.ErrTooLarge
	}
	return abi.OK
}

func (ai *asyncInst) cancelTimer(id uint32) int32 {
	if !ai.timers.cancel(id) {
		return abi.ErrClosed
	}
	return abi.OK
}

// fireTimers delivers every due timer as its own EventTimer.
func (ai *asyncInst) fireTimers() {
	now := time.Now()
	for ai.failErr == nil {
		id, ok := ai.timers.popDue(now)
		if !ok {
			break
		}
		ai.call(0, abi.EventTimer, int64(id), 0)
	}
	if ai.failErr == nil {
		ai.timers.arm()
	}
}

// observeRecycle reports a recycled instance to the pool's Observer.
func (p *AsyncPool) observeRecycle(ai *asyncInst) {
	if o := p.cfg.Observer; o != nil {
		o.Observe(Event{Kind: EventInstanceRecycled, App: p.app.name, Instance: ai.in.id})
	}
}
