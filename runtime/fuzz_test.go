package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// The ABI fuzz targets drive every host function of the wasmsrv module with
// arbitrary arguments from a real instance (see testkit.FuzzGuest): regions past the
// end of memory, ptr+len that overflows 32 bits, negative i32s, huge lengths, bad
// handles, calls in any order and in either shape. The host must never panic (a Go
// runtime error inside a host function), never allocate by a guest's length, and
// only trap the guest (an ABIError) or answer with a status code of the SPEC.
//
//	go test -run '^$' -fuzz '^FuzzHostABI$' -fuzztime 30s ./runtime/

// maxFuzzAlloc bounds what the host may allocate in one fuzzed request: the guest
// has 128 KiB of memory, so anything near this comes from a length it passed.
const maxFuzzAlloc = 16 << 20

// fuzzState is one program run and what the checks found.
type fuzzState struct {
	memory []byte // the guest's memory from 0, laid out before the calls
	calls  []testkit.FuzzCall
	names  []string // call<i> export names
	funcs  []testkit.ABIFunc

	ran chan struct{} // closed when fuzz.run returns or traps

	mu    sync.Mutex
	trap  error    // the error of the call that trapped the guest
	bad   []string // results outside the SPEC's codes
	ended bool     // the program itself ended the async connection
}

// fuzzRun is the guest's fuzz.run(ctx): it replays the program through the guest's
// wrappers, from inside the request.
func fuzzRun(ctx context.Context, mod api.Module, stack []uint64) {
	handle := stack[0]
	st := exchangeFor(ctx, "fuzz.run", handle).(interface{ state() *fuzzState }).state()
	defer close(st.ran)
	mod.Memory().Write(0, st.memory)
	args := make([]uint64, testkit.FuzzArgs)
	for _, c := range st.calls {
		for j := range args {
			if c.HandleMask&(1<<j) != 0 {
				args[j] = handle & 0xffffffff
			} else {
				args[j] = c.Args[j]
			}
		}
		res, err := mod.ExportedFunction(st.names[c.Func]).Call(ctx, args...)
		st.mu.Lock()
		if err != nil {
			st.trap = err
			st.mu.Unlock()
			panic(err) // the guest traps, as it would have
		}
		f := st.funcs[c.Func]
		if !testkit.FuzzStatusOK(int64(res[0]), false) {
			st.bad = append(st.bad, fmt.Sprintf("%s.%s%v = %d", f.Module, f.Name, args[:len(f.Params)], int64(res[0])))
		}
		if f.Name == abi.FnCtxDone && uint32(args[0]) == uint32(handle) && int64(res[0]) == int64(abi.OK) {
			st.ended = true
		}
		st.mu.Unlock()
	}
	stack[0] = 0
}

// fuzzExchange is a request whose body and head are real, plus the program.
type fuzzExchange struct {
	*fakeExchange
	st *fuzzState
}

func (x *fuzzExchange) state() *fuzzState { return x.st }

// fuzzWS is a fuzzExchange that is also a WebSocket, so the ws_* functions get past
// their ERR_STATE answer.
type fuzzWS struct {
	fuzzExchange
	accepted, closed bool
	received         int
}

func (w *fuzzWS) WSAccept(proto, hdr []byte) int32 {
	if w.accepted {
		return abi.ErrState
	}
	if _, err := abi.DecodeHeaderBlock(string(hdr), nil); err != nil && len(hdr) > 0 {
		return abi.ErrBadArgument
	}
	w.accepted = true
	return abi.OK
}

func (w *fuzzWS) WSRecv(p []byte) (int32, int, int32) {
	const msg = "hello, fuzzer"
	if w.received >= 3 {
		return 0, 0, abi.ErrClosed
	}
	if len(p) < len(msg) {
		return abi.MessageText, len(msg), abi.OK
	}
	w.received++
	return abi.MessageText, copy(p, msg), abi.OK
}

func (w *fuzzWS) WSSend(int32, []byte) int32 {
	if w.closed {
		return abi.ErrClosed
	}
	return abi.OK
}

func (w *fuzzWS) WSClose(int32, []byte) int32 {
	w.closed = true
	return abi.OK
}

func (w *fuzzWS) WSCloseInfo() (int32, []byte) {
	if !w.closed {
		return 0, nil
	}
	return 1000, []byte("bye")
}

// fuzzAsync is a fuzzExchange served by an async pool.
type fuzzAsync struct {
	fuzzExchange
	finished chan error
}

func (x *fuzzAsync) Bind(*Conn) {}

func (x *fuzzAsync) Finish(code int32, err error) { x.finished <- err }

// coreFuncs lists the wasmsrv module's functions.
func coreFuncs() []testkit.ABIFunc {
	var fs []testkit.ABIFunc
	for _, f := range coreModule().Funcs {
		fs = append(fs, testkit.ABIFunc{Module: abi.ImportModule, Name: f.Name, Params: f.Params, Results: f.Results})
	}
	return fs
}

func fuzzNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "call" + strconv.Itoa(i)
	}
	return names
}

// fuzzApp loads the generated guest with the fuzz.run host function.
func fuzzApp(tb testing.TB, funcs []testkit.ABIFunc, async bool) *App {
	tb.Helper()
	run := HostModule{Name: "fuzz", Funcs: []HostFunc{{Name: "run", Params: []api.ValueType{i32}, Results: []api.ValueType{i32}, Fn: fuzzRun}}}
	app, err := engine(tb).Load(context.Background(), AppConfig{
		Name: "fuzz", Wasm: testkit.FuzzGuest(funcs, async), MemoryLimit: 1 << 20,
		HostModules: []HostModule{run},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = app.Close(context.Background()) })
	return app
}

// checkFuzzOutcome applies the checks every target shares. err is how the request
// (sync) or connection (async) ended.
func checkFuzzOutcome(t *testing.T, st *fuzzState, err error, allocated uint64) {
	t.Helper()
	var rte goruntime.Error
	if errors.As(err, &rte) || errors.As(st.trap, &rte) {
		t.Fatalf("a host function panicked: %v", firstErr(err, st.trap))
	}
	var ae *ABIError
	if st.trap != nil && !errors.As(st.trap, &ae) {
		t.Fatalf("the guest trapped other than by the ABI's checks: %v", st.trap)
	}
	if err != nil {
		var ge *GuestError
		if !errors.As(err, &ge) || ge.Kind != FailABI || !errors.As(err, &ae) {
			t.Fatalf("the request failed other than by an ABI trap: %v", err)
		}
	}
	for _, b := range st.bad {
		t.Errorf("result outside the SPEC's status codes: %s", b)
	}
	if allocated > maxFuzzAlloc {
		t.Errorf("the host allocated %d bytes for one request of a guest with %d KiB of memory", allocated, testkit.FuzzGuestPages*64)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func totalAlloc() uint64 {
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// fuzzSeeds adds programs that reach past every check at least once: regions at
// and past the end of memory, overflowing ptr+len, negative and huge values, bad
// handles, and call sequences a real guest makes.
func fuzzSeeds(f *testing.F, funcs []testkit.ABIFunc, prefix ...byte) {
	const mem = testkit.FuzzGuestPages * 65536
	edges := []uint64{0, 1, 8, mem - 1, mem, mem + 1, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 1, mem - 16}
	idx := func(name string) int { return testkit.FuzzFuncIndex(funcs, abi.ImportModule, name) }
	var memory []byte
	add := func(calls ...testkit.FuzzCall) {
		p := testkit.FuzzProgram{Memory: memory, Calls: calls}
		f.Add(append(append([]byte(nil), prefix...), p.Encode()...))
	}
	for i := range funcs {
		for _, e := range edges {
			// every function with the real handle and one edge value everywhere else
			c := testkit.FuzzCall{Func: i, HandleMask: 1}
			for j := range c.Args {
				c.Args[j] = e
			}
			add(c)
			// ptr in memory, length the edge value
			c.Args = [testkit.FuzzArgs]uint64{0, 16, e, 16, e, 16, e, 16}
			add(c)
		}
		add(testkit.FuzzCall{Func: i}) // handle 0: not a request
	}
	// With memory laid out as a guest would: a header block at 0 (x-a: b), a
	// subprotocol at 64, a body at 128.
	hdr := abi.AppendHeaderBlock(nil, []abi.Header{{Name: "x-a", Value: "b"}})
	memory = make([]byte, 160)
	copy(memory, hdr)
	copy(memory[64:], "chat")
	copy(memory[128:], "body")
	add(testkit.FuzzCall{Func: idx(abi.FnRespStart), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 201, 0, uint64(len(hdr))}},
		testkit.FuzzCall{Func: idx(abi.FnRespStart), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 200, 0, uint64(len(hdr)) - 1}},
		testkit.FuzzCall{Func: idx(abi.FnRespWrite), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 128, 4, 1}})
	add(testkit.FuzzCall{Func: idx(abi.FnWSAccept), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 64, 4, 0, uint64(len(hdr))}},
		testkit.FuzzCall{Func: idx(abi.FnWSSend), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 1, 128, 4}})
	memory = nil
	// The handle passed as a plain value (upper bits set) rather than by mask;
	// then a call on it after ctx_done (async: now an unknown handle).
	add(testkit.FuzzCall{Func: idx(abi.FnCtxDone), Args: [testkit.FuzzArgs]uint64{1<<32 | 1, 0}},
		testkit.FuzzCall{Func: idx(abi.FnDisconnected), HandleMask: 1})
	ok := [testkit.FuzzArgs]uint64{0, 1024, 4096}
	add(testkit.FuzzCall{Func: idx(abi.FnReqHead), HandleMask: 1, Args: ok},
		testkit.FuzzCall{Func: idx(abi.FnBodyRead), HandleMask: 1, Args: ok},
		testkit.FuzzCall{Func: idx(abi.FnRespStart), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 200, 0, 0}},
		testkit.FuzzCall{Func: idx(abi.FnRespWrite), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 1024, 100, 1}},
		testkit.FuzzCall{Func: idx(abi.FnRespWrite), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 1024, 100, 0}})
	add(testkit.FuzzCall{Func: idx(abi.FnWSAccept), HandleMask: 1},
		testkit.FuzzCall{Func: idx(abi.FnWSRecv), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 100, 4}},
		testkit.FuzzCall{Func: idx(abi.FnWSRecv), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 100, 64}},
		testkit.FuzzCall{Func: idx(abi.FnWSSend), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 2, 100, 5}},
		testkit.FuzzCall{Func: idx(abi.FnWSClose), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 1000, 0, 3}},
		testkit.FuzzCall{Func: idx(abi.FnWSCloseInfo), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 0, 2}})
	add(testkit.FuzzCall{Func: idx(abi.FnTimerSet), Args: [testkit.FuzzArgs]uint64{7, 1<<63 - 1}},
		testkit.FuzzCall{Func: idx(abi.FnTimerSet), Args: [testkit.FuzzArgs]uint64{7, 1 << 63}},
		testkit.FuzzCall{Func: idx(abi.FnTimerCancel), Args: [testkit.FuzzArgs]uint64{7}},
		testkit.FuzzCall{Func: idx(abi.FnSetBackpressure), Args: [testkit.FuzzArgs]uint64{1}},
		testkit.FuzzCall{Func: idx(abi.FnCtxDone), HandleMask: 1, Args: [testkit.FuzzArgs]uint64{0, 500}},
		testkit.FuzzCall{Func: idx(abi.FnDisconnected), HandleMask: 1})
}

// FuzzHostABI: the sync shape. The first byte picks the request: bit 0 makes it a
// WebSocket upgrade; the rest is the program.
func FuzzHostABI(f *testing.F) {
	funcs := coreFuncs()
	fuzzSeeds(f, funcs, 0)
	fuzzSeeds(f, funcs, 1)
	app := fuzzApp(f, funcs, false)
	names := fuzzNames(len(funcs))
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) == 0 {
			return
		}
		p := testkit.DecodeFuzzProgram(program[1:], len(funcs))
		st := &fuzzState{memory: p.Memory, calls: p.Calls, names: names, funcs: funcs, ran: make(chan struct{})}
		fx := fuzzExchange{fakeExchange: newFakeExchange("POST", "/", "", fuzzBody()), st: st}
		var ex Exchange = &fx
		if program[0]&1 != 0 {
			ex = &fuzzWS{fuzzExchange: fx}
		}
		ctx := context.Background()
		pool, err := NewSyncPool(ctx, app, PoolConfig{Workers: 1, RequestTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close(ctx)
		before := totalAlloc()
		_, err = pool.Serve(ctx, ex)
		if (err != nil) != (st.trap != nil) {
			t.Fatalf("request error %v, guest trap %v: one without the other", err, st.trap)
		}
		checkFuzzOutcome(t, st, err, totalAlloc()-before)
	})
}

// FuzzHostABIAsync: the async shape, where the same functions act on a connection
// table, timers and backpressure. The program runs on the REQUEST_START event.
func FuzzHostABIAsync(f *testing.F) {
	funcs := coreFuncs()
	fuzzSeeds(f, funcs)
	app := fuzzApp(f, funcs, true)
	names := fuzzNames(len(funcs))
	done := testkit.FuzzFuncIndex(funcs, abi.ImportModule, abi.FnCtxDone)
	f.Fuzz(func(t *testing.T, program []byte) {
		p := testkit.DecodeFuzzProgram(program, len(funcs))
		st := &fuzzState{memory: p.Memory, calls: p.Calls, names: names, funcs: funcs, ran: make(chan struct{})}
		// The connection ends with ctx_done(ctx, 0) unless the program ended it.
		st.calls = append(st.calls, testkit.FuzzCall{Func: done, HandleMask: 1})
		ex := &fuzzAsync{fuzzExchange: fuzzExchange{fakeExchange: newFakeExchange("POST", "/", "", fuzzBody()), st: st}, finished: make(chan error, 1)}
		ctx := context.Background()
		pool, err := NewAsyncPool(ctx, app, PoolConfig{Workers: 1, RequestTimeout: 10 * time.Second}, AsyncConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close(ctx)
		before := totalAlloc()
		if _, err := pool.Open(ex, false); err != nil {
			t.Fatal(err)
		}
		select {
		case err = <-ex.finished:
		case <-time.After(30 * time.Second):
			t.Fatal("the connection never finished")
		}
		// Finish may come from the program's own ctx_done: wait for the
		// program to end (or trap) too.
		select {
		case <-st.ran:
		case <-time.After(30 * time.Second):
			t.Fatal("the program never ended")
		}
		allocated := totalAlloc() - before
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.ended && (err != nil) != (st.trap != nil) {
			t.Fatalf("connection error %v, guest trap %v: one without the other", err, st.trap)
		}
		checkFuzzOutcome(t, st, err, allocated)
	})
}

// fuzzBody is a small request body to read.
func fuzzBody() io.Reader { return strings.NewReader("a request body for body_read") }
