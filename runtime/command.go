package runtime

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/runtime/internal/interrupt"
)

// CommandApp runs a plain WASI command module (exports _start, no wasmsrv markers)
// with a fresh instance per run, the way CGI runs a process per request (WAGI). A
// command exits when it is done, so instances are never reused; what a run needs
// besides its instance (module config, linear memory buffer, stderr writer, timer)
// is kept per concurrency slot (runSlot). Runs get the app's memory limit, a
// per-run deadline and a concurrency cap with a bounded wait queue (PoolConfig:
// Workers, QueueSize, QueueWait, RequestTimeout), like the instances of a SyncPool.
type CommandApp struct {
	name   string
	rt     wazero.Runtime
	cm     wazero.CompiledModule
	modCfg wazero.ModuleConfig
	log    *slog.Logger
	out    *guestlog.Sink // guest stderr's budget
	cfg    AppConfig
	pool   PoolConfig
	mounts mounts

	slots   chan *runSlot // the free ones: one per run allowed at once
	all     []*runSlot
	closing chan struct{}
	waiting atomic.Int64
	runs    atomic.Uint64
	// wasmStart: the module had a start function (interrupt.StartExport), run
	// before _start within the run's deadline.
	wasmStart bool
	engine    *Engine
	stopped   atomic.Bool // Engine.Interrupt: every run is stopped, new ones too
}

// runSlot is one of the runs a CommandApp allows at once, with what a run needs
// built once instead of per request: the module config with stdio and sleep bound
// to the slot (each With* of wazero's config clones it), the linear memory, the
// stderr writer, the deadline timer and the context wazero sees. A run then allocates little beyond
// wazero's instance itself.
type runSlot struct {
	c         *CommandApp
	modCfg    wazero.ModuleConfig
	ctx       context.Context // slotCtx with the memory allocator
	memory    slotMemory
	stdin     slotStdin
	stdout    slotStdout
	flusher   interface{ Flush() error } // the run's Stdout, if it can flush
	stderr    *logWriter
	env       commandEnv
	timer     *time.Timer   // the run's deadline: expire
	timerDone chan struct{} // expire has finished (capacity 1)
	ctxDone   chan struct{} // cancelled has finished (capacity 1)
	cancelled func()        // the caller's context ended; built once

	mu       sync.Mutex
	done     chan struct{}     // closed when the run is stopped; new per run
	flag     api.MutableGlobal // the instance's interrupt flag, once instantiated
	abort    func()
	running  bool
	stopped  bool
	deadline bool // the deadline, not the caller, stopped the run
}

// CommandIO is the input and output of one run.
type CommandIO struct {
	// Env holds "KEY=value" entries for this run. On a key the app's configured
	// Env also sets, the run's value wins.
	Env []string
	// Args is the run's argv (WAGI's argv template); nil means the app's name
	// alone. Arguments with a NUL byte, which WASI cannot carry, are dropped.
	Args []string
	// Stdin is the guest's standard input; nil means empty.
	Stdin io.Reader
	// Stdout receives the guest's standard output; nil discards it. If it has a
	// Flush() error method, that is called whenever the guest sleeps (WASI
	// poll_oneoff on a clock): what a command printed before a pause should reach
	// its reader (a CGI client) without waiting for the next write.
	Stdout io.Writer
	// Abort, if set, is called from another goroutine when the run's deadline passes
	// or ctx ends while the guest runs. The deadline stops guest code, not a host
	// read of Stdin or write to Stdout blocked on a slow client: Abort must unblock
	// those (runtime.Exchange's Abort plays the same part in sync mode).
	Abort func()
	// Acquired, if set, is called once the run has its slot, as the module is
	// about to start: the wait in the queue ends there (a trace's queue wait).
	Acquired func()
}

// ValidateCommand checks that cm is a WASI command module this host can run: it
// exports _start () -> () and memory and none of the ABI's markers (abi.Exports,
// ShapeCommand), and imports nothing but WASI preview 1
// functions, checked against the WASI module rt holds (an *ImportError otherwise).
func ValidateCommand(cm wazero.CompiledModule, rt wazero.Runtime) error {
	exports := cm.ExportedFunctions()
	if _, ok := exports[abi.ExportStart]; !ok {
		return fmt.Errorf("%w: not a WASI command: missing export %s", ErrNotGuest, abi.ExportStart)
	}
	if err := checkExports(exports, cm.ExportedMemories(), abi.ShapeCommand); err != nil {
		return err
	}
	wasi := hostModules(rt)
	only := func(module string) (map[string]api.FunctionDefinition, bool) {
		if module != wasi_snapshot_preview1.ModuleName {
			return nil, false
		}
		return wasi(module)
	}
	return checkImports(cm.ImportedFunctions(), cm.ImportedMemories(), only, nil, true)
}

// LoadCommand compiles and validates a WASI command module. cfg.HostModules are not
// used: a command may import only WASI (plugins need a wasmsrv guest), so granting
// them changes nothing.
func (e *Engine) LoadCommand(ctx context.Context, cfg AppConfig, pool PoolConfig) (*CommandApp, error) {
	if cfg.Name == "" {
		cfg.Name = "app"
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	pool.defaults(DefaultSyncWorkers())
	log := cfg.Logger
	if log == nil {
		log = e.log
	}
	log = log.With("app", cfg.Name)
	// The deadline stops a looping guest through the flag package interrupt adds
	// (as for sync instances), not through wazero's per-loop exit to Go.
	mod, err := prepare(cfg.Wasm, cfg.MemoryLimit, false)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", cfg.Name, err)
	}
	rt := e.newRuntime(ctx, mod.MemoryPages)
	c := &CommandApp{
		name: cfg.Name, rt: rt, log: log, out: guestOutput(cfg.Output, log), cfg: cfg, pool: pool,
		slots:     make(chan *runSlot, pool.Workers),
		closing:   make(chan struct{}),
		wasmStart: mod.Start, engine: e,
	}
	if err := c.load(ctx, e, mod.Wasm); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("app %s: %w", cfg.Name, err)
	}
	for range pool.Workers {
		s := c.newSlot(e.alloc)
		c.all = append(c.all, s)
		c.slots <- s
	}
	if !e.track(c) {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("app %s: %w", cfg.Name, ErrPoolClosed)
	}
	return c, nil
}

// interruptAll stops every run and refuses new ones (Engine.Interrupt).
func (c *CommandApp) interruptAll() {
	c.stopped.Store(true)
	for _, s := range c.all {
		s.mu.Lock()
		running := s.running
		s.mu.Unlock()
		if running {
			s.stop(true)
		}
	}
}

func (c *CommandApp) newSlot(large experimental.MemoryAllocator) *runSlot {
	s := &runSlot{
		c:         c,
		memory:    slotMemory{large: large},
		stderr:    newLogWriter(c.out, "stderr", slog.LevelWarn, "run", 0),
		timerDone: make(chan struct{}, 1),
		ctxDone:   make(chan struct{}, 1),
	}
	s.ctx = experimental.WithMemoryAllocator(slotCtx{s}, &s.memory)
	s.modCfg = c.modCfg.WithStdin(&s.stdin).WithStdout(&s.stdout).WithStderr(s.stderr).WithNanosleep(s.sleep)
	s.timer = time.AfterFunc(time.Hour, func() {
		s.stop(true)
		s.timerDone <- struct{}{}
	})
	s.timer.Stop()
	s.cancelled = func() {
		s.stop(false)
		s.ctxDone <- struct{}{}
	}
	return s
}

func (c *CommandApp) load(ctx context.Context, e *Engine, bin []byte) error {
	cm, err := e.compile(ctx, c.rt, c.name, bin)
	if err != nil {
		return err
	}
	if err := instantiateCommandWASI(ctx, c.rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	if err := ValidateCommand(cm, c.rt); err != nil {
		return err
	}
	c.cm = cm
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous: concurrent runs of one module must not clash
		// argv comes from each run (CommandIO.Args, args_get below), as the
		// environment does.
		WithSysWalltime().WithSysNanotime().
		WithRandSource(rand.Reader).
		// _start is called by Run once the interrupt flag is in reach.
		WithStartFunctions()
	c.modCfg, c.mounts, err = withMounts(mc, c.cfg.Mounts)
	return err
}

// Name returns the app's name.
func (c *CommandApp) Name() string { return c.name }

// Logger returns the app's logger.
func (c *CommandApp) Logger() *slog.Logger { return c.log }

// PoolConfig returns the limits in force, defaults filled in.
func (c *CommandApp) PoolConfig() PoolConfig { return c.pool }

// Run instantiates the module and runs _start to completion with the given I/O. It
// returns nil when the command exits with status 0; ErrQueueFull, ErrQueueTimeout or
// ErrPoolClosed when it could not start; ErrDeadline when it overran
// RequestTimeout; ctx's error (wrapped) when ctx ended first; and *GuestError for a
// trap, a non-zero exit or memory exhaustion. The guest's stderr goes to the log.
func (c *CommandApp) Run(ctx context.Context, cio CommandIO) error {
	o := c.pool.Observer
	if o == nil {
		s, err := c.acquire(ctx)
		if err != nil {
			return err
		}
		defer func() { c.slots <- s }()
		if cio.Acquired != nil {
			cio.Acquired()
		}
		return s.run(ctx, cio)
	}
	start := time.Now()
	s, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { c.slots <- s }()
	o.Observe(Event{Kind: EventQueueWait, App: c.name, Took: time.Since(start)})
	if cio.Acquired != nil {
		cio.Acquired()
	}
	start = time.Now()
	err = s.run(ctx, cio)
	o.Observe(Event{Kind: EventGuestCall, App: c.name, Took: time.Since(start)})
	var ge *GuestError
	if errors.Is(err, ErrDeadline) || errors.As(err, &ge) {
		o.Observe(lossEvent(c.name, 0, err))
	}
	return err
}

func (s *runSlot) run(ctx context.Context, cio CommandIO) error {
	c := s.c
	s.stdin.r, s.stdout.w = cio.Stdin, cio.Stdout
	s.flusher, _ = cio.Stdout.(interface{ Flush() error })
	s.stderr.reset(c.runs.Add(1))
	c.environ(&s.env, cio.Env)
	c.argv(&s.env, cio.Args)
	s.mu.Lock()
	s.done, s.flag, s.abort, s.stopped, s.deadline = make(chan struct{}), nil, cio.Abort, false, false
	s.running = true
	s.mu.Unlock()
	if c.stopped.Load() { // after the reset: interruptAll cannot be missed
		s.stop(true)
	}
	s.timer.Reset(c.pool.RequestTimeout)
	defer func() {
		// A callback that already started must be over before the next run reuses
		// the slot, and Abort before the caller answers the client.
		if !s.timer.Stop() {
			<-s.timerDone
		}
		s.mu.Lock()
		s.running, s.abort = false, nil
		s.mu.Unlock()
		s.stdin.r, s.stdout.w, s.flusher = nil, nil, nil
		s.stderr.flushLine()
	}()

	mod, err := c.rt.InstantiateModule(s.ctx, c.cm, s.modCfg)
	if err != nil {
		if mod != nil {
			_ = mod.Close(context.Background())
		}
		return s.classify(ctx, err)
	}
	defer mod.Close(context.Background())
	flag, _ := mod.ExportedGlobal(interrupt.ExportName).(api.MutableGlobal)
	s.mu.Lock()
	s.flag = flag
	if s.stopped && flag != nil {
		flag.Set(1) // stopped while instantiating: trap at the first loop iteration
	}
	s.mu.Unlock()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, s.cancelled)
		defer func() {
			if !stop() {
				<-s.ctxDone
			}
		}()
	}
	if c.wasmStart {
		if _, err = mod.ExportedFunction(interrupt.StartExport).Call(s.ctx); err != nil {
			return s.classify(ctx, err)
		}
	}
	_, err = mod.ExportedFunction(abi.ExportStart).Call(s.ctx)
	if err == nil {
		return nil
	}
	return s.classify(ctx, err)
}

// stop ends the run: the deadline passed, or the caller's context ended. The guest
// traps at its next loop iteration, a sleep returns, and Abort cuts off host I/O
// blocked on the client. Only the first call counts, so the cause is the first one.
func (s *runSlot) stop(deadline bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped, s.deadline = true, deadline
	if s.flag != nil {
		s.flag.Set(1)
	}
	close(s.done)
	abort := s.abort
	s.mu.Unlock()
	if abort != nil {
		abort()
	}
}

// sleep is the guest's nanosleep: real time, cut short when the run is stopped, so
// a sleeping guest cannot outlive its deadline.
func (s *runSlot) sleep(ns int64) {
	if s.flusher != nil {
		_ = s.flusher.Flush() // a failure shows in the guest's next write
	}
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// slotCtx is the context wazero sees for a run: it carries the slot's environment
// to environ_get. Deadlines do not go through it (wazero does not watch contexts
// here: WithCloseOnContextDone is off); stop does.
type slotCtx struct{ s *runSlot }

func (slotCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (slotCtx) Done() <-chan struct{}       { return nil }
func (slotCtx) Err() error                  { return nil }
func (c slotCtx) Value(key any) any {
	if key == (commandEnvKey{}) {
		return &c.s.env
	}
	return nil
}

// slotStdin and slotStdout are a slot's stdio: the current run's reader and writer.
type slotStdin struct{ r io.Reader }

func (s *slotStdin) Read(p []byte) (int, error) {
	if s.r == nil {
		return 0, io.EOF
	}
	return s.r.Read(p)
}

type slotStdout struct{ w io.Writer }

func (s *slotStdout) Write(p []byte) (int, error) {
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

// commandEnvKey carries a run's environment (*commandEnv) to the WASI environ
// functions through the call's context.
type commandEnvKey struct{}

// commandEnv is a run's environment and argv as WASI hands them out.
type commandEnv struct {
	vars     []string // "KEY=value" entries
	size     uint32   // bytes of all entries with their NUL terminators
	args     []string
	argsSize uint32
}

// environ fills env with a run's variables merged with the app's configured ones
// (the run's win), dropping entries WASI cannot carry (no '=', or a NUL byte).
func (c *CommandApp) environ(env *commandEnv, run []string) {
	env.vars, env.size = env.vars[:0], 0
	add := func(kv string) {
		if strings.IndexByte(kv, '=') <= 0 || strings.IndexByte(kv, 0) >= 0 {
			return
		}
		env.vars = append(env.vars, kv)
		env.size += uint32(len(kv)) + 1
	}
	for _, kv := range run {
		add(kv)
	}
	for _, kv := range c.cfg.Env {
		if k, _, _ := strings.Cut(kv, "="); !hasEnv(run, k) {
			add(kv)
		}
	}
}

// argv fills env's argv with a run's arguments, or the app's name alone.
func (c *CommandApp) argv(env *commandEnv, args []string) {
	env.args, env.argsSize = env.args[:0], 0
	if args == nil {
		args = []string{c.name}
	}
	for _, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			continue
		}
		env.args = append(env.args, a)
		env.argsSize += uint32(len(a)) + 1
	}
}

// instantiateCommandWASI instantiates WASI preview 1 in rt with environ_get and
// environ_sizes_get serving each run's environment from its context. wazero's own
// take the environment from the ModuleConfig, where every variable costs a copy of
// the whole config (WithEnv clones it): 40% of a CGI request's CPU time.
func instantiateCommandWASI(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environSizesGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("result.environc", "result.environv_len").
		Export("environ_sizes_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("environ", "environ_buf").
		Export("environ_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(argsSizesGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("result.argc", "result.argv_len").
		Export("args_sizes_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(argsGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("argv", "argv_buf").
		Export("args_get")
	_, err := b.Instantiate(ctx)
	return err
}

// WASI errno values used here.
const (
	wasiErrnoSuccess = 0
	wasiErrnoFault   = 21
)

func runEnv(ctx context.Context) *commandEnv {
	if env, ok := ctx.Value(commandEnvKey{}).(*commandEnv); ok {
		return env
	}
	return &commandEnv{}
}

func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := runEnv(ctx)
	listSizes(mod, stack, env.vars, env.size)
}

func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := runEnv(ctx)
	listGet(mod, stack, env.vars, env.size)
}

func argsSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := runEnv(ctx)
	listSizes(mod, stack, env.args, env.argsSize)
}

func argsGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := runEnv(ctx)
	listGet(mod, stack, env.args, env.argsSize)
}

// listSizes is WASI's environ_sizes_get / args_sizes_get for list (size: its
// bytes with NUL terminators).
func listSizes(mod api.Module, stack []uint64, list []string, size uint32) {
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), uint32(len(list))) || !mem.WriteUint32Le(uint32(stack[1]), size) {
		stack[0] = wasiErrnoFault
		return
	}
	stack[0] = wasiErrnoSuccess
}

// listGet is WASI's environ_get / args_get: the pointers at stack[0], the
// NUL-terminated strings at stack[1], both checked against guest memory.
func listGet(mod api.Module, stack []uint64, list []string, size uint32) {
	mem := mod.Memory()
	offsets, ok := mem.Read(uint32(stack[0]), uint32(len(list))*4)
	if !ok {
		stack[0] = wasiErrnoFault
		return
	}
	bufPtr := uint32(stack[1])
	buf, ok := mem.Read(bufPtr, size)
	if !ok {
		stack[0] = wasiErrnoFault
		return
	}
	var at uint32
	for i, kv := range list {
		binary.LittleEndian.PutUint32(offsets[i*4:], bufPtr+at)
		at += uint32(copy(buf[at:], kv))
		buf[at] = 0
		at++
	}
	stack[0] = wasiErrnoSuccess
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return true
		}
	}
	return false
}

// classify turns a failed run into one of Run's documented errors.
func (s *runSlot) classify(ctx context.Context, err error) error {
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	if isExit && exit.ExitCode() == 0 {
		return nil // proc_exit(0), as Go's runtime does after main returns
	}
	// Stopped (by the interrupt flag's trap, or a cut-off read or write): by the
	// caller going away or by the deadline, whichever came first. Cutting off a
	// blocked read can make the caller's context end too (net/http cancels a request
	// whose body read failed), so the first cause is the one reported.
	s.mu.Lock()
	stopped, deadline := s.stopped, s.deadline
	s.mu.Unlock()
	if stopped {
		if deadline {
			return ErrDeadline
		}
		return fmt.Errorf("app %s: run stopped: %w", s.c.name, ctx.Err())
	}
	if ctx.Err() != nil {
		return fmt.Errorf("app %s: run stopped: %w", s.c.name, ctx.Err())
	}
	ge := &GuestError{App: s.c.name, Kind: FailTrap, Err: err}
	if head, stack := s.stderr.Crash(); head != "" {
		ge.Reason, ge.Stack = head[:min(len(head), reasonMax)], stack
	} else {
		ge.Stderr = s.stderr.Tail()
	}
	switch {
	case isExit:
		ge.Kind = FailExit
	case s.stderr.mentions("out of memory"):
		ge.Kind = FailMemory
	}
	return ge
}

func (c *CommandApp) acquire(ctx context.Context) (*runSlot, error) {
	select {
	case <-c.closing:
		return nil, ErrPoolClosed
	default:
	}
	select {
	case s := <-c.slots:
		return s, nil
	default:
	}
	if c.waiting.Add(1) > int64(c.pool.QueueSize) {
		c.waiting.Add(-1)
		return nil, ErrQueueFull
	}
	defer c.waiting.Add(-1)
	t := time.NewTimer(c.pool.QueueWait)
	defer t.Stop()
	select {
	case s := <-c.slots:
		return s, nil
	case <-t.C:
		return nil, ErrQueueTimeout
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closing:
		return nil, ErrPoolClosed
	}
}

// Close refuses new runs, waits for running ones (until ctx ends) and releases the
// compiled module. Calls after the first return at once.
func (c *CommandApp) Close(ctx context.Context) error {
	select {
	case <-c.closing:
		return nil
	default:
		close(c.closing)
	}
	c.engine.untrack(c)
	// Taking every slot means no run is in flight.
	for range cap(c.slots) {
		select {
		case s := <-c.slots:
			s.timer.Stop()
		case <-ctx.Done():
			_ = c.rt.Close(context.Background())
			_ = c.mounts.close()
			return fmt.Errorf("app %s: runs still in flight: %w", c.name, ctx.Err())
		}
	}
	return errors.Join(c.rt.Close(ctx), c.mounts.close())
}
