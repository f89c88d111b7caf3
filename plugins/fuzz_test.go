package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// FuzzPluginABI drives every function of every standard plugin (log, config, kv,
// pubsub, http, sockets) with arbitrary arguments from a real instance, the way
// runtime.FuzzHostABI does for the core module: regions past memory, overflowing
// ptr+len, negative and huge values, bad handles, any order. The host must never
// panic, never allocate by a guest length, and only trap the guest or answer with a
// status code the SPEC or plugins/README.md define. The http plugin may reach one
// loopback server, and sockets another that sends a greeting and hangs up soon
// (so a read never waits long); pubsub waits are capped at maxFuzzWait.
//
//	go test -run '^$' -fuzz '^FuzzPluginABI$' -fuzztime 30s ./plugins/
func FuzzPluginABI(f *testing.F) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Up", "1")
		_, _ = io.WriteString(w, "upstream body")
	}))
	f.Cleanup(up.Close)
	chatter := chatterServer(f)
	reg := testRegistry(f, "", "")
	f.Cleanup(func() { _ = reg.Close() })
	grants := registry.Grants{
		"kv": plugins.Section{"max_value": 4096, "max_bytes": 1 << 20}, "pubsub": nil,
		"config":  plugins.Section{"vars": map[string]string{"greeting": "hi"}},
		"http":    plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}, "timeout": "2s", "max_response": 4096},
		"sockets": plugins.Section{"allow": []string{chatter}, "connect_timeout": "2s", "max_instance_conns": 4},
	}
	opened, err := reg.Open(context.Background(), "fuzz", grants, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = opened.Close(context.Background()) })
	var funcs []testkit.ABIFunc
	for _, m := range opened.HostModules() {
		for _, fn := range m.Funcs {
			funcs = append(funcs, testkit.ABIFunc{Module: m.Name, Name: fn.Name, Params: fn.Params, Results: fn.Results})
		}
	}
	names := make([]string, len(funcs))
	for i := range names {
		names[i] = "call" + strconv.Itoa(i)
	}
	run := runtime.HostModule{Name: "fuzz", Funcs: []runtime.HostFunc{{Name: "run",
		Params: []api.ValueType{api.ValueTypeI32}, Results: []api.ValueType{api.ValueTypeI32}, Fn: pluginFuzzRun}}}
	app, err := engine(f).Load(context.Background(), runtime.AppConfig{
		Name: "fuzz", Wasm: testkit.FuzzGuest(funcs, false), MemoryLimit: 1 << 20,
		HostModules: append(opened.HostModules(), run), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = app.Close(context.Background()) })
	pluginSeeds(f, funcs, up.URL, chatter)

	f.Fuzz(func(t *testing.T, program []byte) {
		p := testkit.DecodeFuzzProgram(program, len(funcs))
		st := &pluginFuzz{memory: p.Memory, calls: p.Calls, names: names, funcs: funcs}
		ex := &pluginExchange{st: st}
		ctx := context.Background()
		pool, err := runtime.NewSyncPool(ctx, app, runtime.PoolConfig{Workers: 1, RequestTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close(ctx)
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		_, err = pool.Serve(ctx, ex)
		goruntime.ReadMemStats(&after)
		st.mu.Lock()
		defer st.mu.Unlock()
		var rte goruntime.Error
		if errors.As(err, &rte) || errors.As(st.trap, &rte) {
			t.Fatalf("a host function panicked: %v", err)
		}
		var ae *runtime.ABIError
		if st.trap != nil && !errors.As(st.trap, &ae) {
			t.Fatalf("the guest trapped other than by the ABI's checks: %v", st.trap)
		}
		if err != nil {
			var ge *runtime.GuestError
			if !errors.As(err, &ge) || ge.Kind != runtime.FailABI || !errors.As(err, &ae) {
				t.Fatalf("the request failed other than by an ABI trap: %v", err)
			}
		}
		for _, b := range st.bad {
			t.Errorf("result outside the status codes: %s", b)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
			t.Errorf("the host allocated %d bytes for one request of a guest with %d KiB of memory", n, testkit.FuzzGuestPages*64)
		}
	})
}

// pluginFuzz is one program run and what the checks found.
type pluginFuzz struct {
	memory []byte
	calls  []testkit.FuzzCall
	names  []string
	funcs  []testkit.ABIFunc

	mu   sync.Mutex
	trap error
	bad  []string
}

// maxFuzzWait caps the wait of a pubsub receive (milliseconds).
const maxFuzzWait = 20

func pluginFuzzRun(ctx context.Context, mod api.Module, stack []uint64) {
	handle := stack[0] & 0xffffffff
	st := runtime.InstanceFrom(ctx).Request().(*pluginExchange).st
	mod.Memory().Write(0, st.memory)
	args := make([]uint64, testkit.FuzzArgs)
	for _, c := range st.calls {
		for j := range args {
			if c.HandleMask&(1<<j) != 0 {
				args[j] = handle
			} else {
				args[j] = c.Args[j]
			}
		}
		f := st.funcs[c.Func]
		if f.Module == "wasmsrv_pubsub" && f.Name == "receive" && uint32(args[3]) > maxFuzzWait {
			// A sync receive waits as long as the guest asks (up to the
			// request deadline): capped, so a run stays short.
			args[3] = args[3]&^0xffffffff | maxFuzzWait
		}
		res, err := mod.ExportedFunction(st.names[c.Func]).Call(ctx, args...)
		st.mu.Lock()
		if err != nil {
			st.trap = err
			st.mu.Unlock()
			panic(err)
		}
		if !testkit.FuzzStatusOK(int64(res[0]), true) {
			st.bad = append(st.bad, fmt.Sprintf("%s.%s%v = %d", f.Module, f.Name, args[:len(f.Params)], int64(res[0])))
		}
		st.mu.Unlock()
	}
	stack[0] = 0
}

// pluginExchange is an empty GET; plugins read only its id and whether the client
// is gone.
type pluginExchange struct {
	st   *pluginFuzz
	head []byte
}

func (x *pluginExchange) Head() []byte {
	if x.head == nil {
		var enc abi.HeadEncoder
		enc.Reset(abi.KindHTTP, 1, 1, 0, 0)
		for _, f := range []string{"GET", "http", "/", "", "", "fuzz.local", "127.0.0.1:1", "127.0.0.1:2", "fuzz-1"} {
			enc.Field(f)
		}
		x.head = append([]byte(nil), enc.Bytes()...)
	}
	return x.head
}

func (x *pluginExchange) ReadBody([]byte) (int, bool, int32) { return 0, true, abi.OK }
func (x *pluginExchange) Start(int32, []byte) int32          { return abi.OK }
func (x *pluginExchange) Write([]byte, int32) int32          { return abi.OK }
func (x *pluginExchange) Disconnected() bool                 { return false }
func (x *pluginExchange) Abort()                             {}

// pluginSeeds adds programs that reach each plugin's checks: edge values for every
// argument, and the calls a real guest makes (a kv round trip, a subscription, an
// outbound request).
func pluginSeeds(f *testing.F, funcs []testkit.ABIFunc, upURL, chatter string) {
	const mem = testkit.FuzzGuestPages * 65536
	add := func(memory []byte, calls ...testkit.FuzzCall) {
		f.Add(testkit.FuzzProgram{Memory: memory, Calls: calls}.Encode())
	}
	edges := []uint64{0, 1, mem - 1, mem, mem + 1, 1<<31 - 1, 1 << 31, 1<<32 - 1, 1 << 32, 1<<64 - 1}
	for i := range funcs {
		for _, e := range edges {
			c := testkit.FuzzCall{Func: i}
			for j := range c.Args {
				c.Args[j] = e
			}
			add(nil, c)
			c.Args = [testkit.FuzzArgs]uint64{0, 16, 32, e, 64, e, 0, e}
			add(nil, c)
		}
	}
	idx := func(module, name string) int { return testkit.FuzzFuncIndex(funcs, module, name) }
	a := func(v ...uint64) (out [testkit.FuzzArgs]uint64) {
		copy(out[:], v)
		return out
	}
	// kv: key "k1" at 0, value at 100, old value at 300.
	kvMem := make([]byte, 320)
	copy(kvMem, "k1")
	copy(kvMem[100:], "value one")
	copy(kvMem[300:], "value one")
	add(kvMem,
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "set"), Args: a(0, 2, 100, 9, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "get"), Args: a(0, 2, 200, 4)},
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "get"), Args: a(0, 2, 200, 64)},
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "cas"), Args: a(0, 2, 300, 9, 100, 3, 0, 1000)},
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "list"), Args: a(0, 1, 0, 0, 400, 64)},
		testkit.FuzzCall{Func: idx("wasmsrv_kv", "delete"), Args: a(0, 2)},
	)
	// pubsub: topic "t" at 0, message at 100.
	psMem := make([]byte, 120)
	copy(psMem, "t")
	copy(psMem[100:], "a message")
	add(psMem,
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "subscribe"), Args: a(0, 1)},
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "publish"), Args: a(0, 1, 100, 9)},
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "receive"), Args: a(1, 200, 2, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "receive"), Args: a(1, 200, 64, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "notify"), Args: a(1, 0, 7)},
		testkit.FuzzCall{Func: idx("wasmsrv_pubsub", "unsubscribe"), Args: a(1)},
	)
	// config and log: key "greeting", a message and one attribute.
	var attrs []byte
	attrs = pluginabi.AppendItem(pluginabi.AppendItem(attrs, "k"), "v")
	clMem := make([]byte, 200)
	copy(clMem, "greeting")
	copy(clMem[50:], "a log line")
	copy(clMem[100:], attrs)
	add(clMem,
		testkit.FuzzCall{Func: idx("wasmsrv_config", "get"), Args: a(0, 8, 150, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_config", "get"), Args: a(0, 8, 150, 40)},
		testkit.FuzzCall{Func: idx("wasmsrv_config", "keys"), Args: a(150, 40)},
		testkit.FuzzCall{Func: idx("wasmsrv_log", "write"), Args: a(0, 50, 10, 100, uint64(len(attrs)))},
		testkit.FuzzCall{Func: idx("wasmsrv_log", "write"), Args: a(8, 50, 10, 100, uint64(len(attrs))-1)},
		testkit.FuzzCall{Func: idx("wasmsrv_log", "enabled"), Args: a(1<<32 - 4)},
	)
	// http: a GET of the loopback server with one header, then its response.
	var req []byte
	for _, it := range []string{"GET", upURL + "/x", "x-a", "b"} {
		req = pluginabi.AppendItem(req, it)
	}
	add(req,
		testkit.FuzzCall{Func: idx("wasmsrv_http", "send"), Args: a(0, uint64(len(req)), 0, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_http", "response"), Args: a(1, 1024, 8)},
		testkit.FuzzCall{Func: idx("wasmsrv_http", "response"), Args: a(1, 1024, 512)},
		testkit.FuzzCall{Func: idx("wasmsrv_http", "notify"), Args: a(1, 0, 3)},
		testkit.FuzzCall{Func: idx("wasmsrv_http", "close"), Args: a(1)},
		testkit.FuzzCall{Func: idx("wasmsrv_http", "close"), Args: a(1)},
	)
	// sockets: connect to the chatter server, read, write, half-close, close.
	sockMem := make([]byte, 200)
	copy(sockMem, chatter)
	copy(sockMem[100:], "hello\n")
	add(sockMem,
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "connect"), Args: a(0, uint64(len(chatter)), 0, 0, 0, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "set_deadline"), Args: a(1, 3, 100e6)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "read"), Args: a(1, 120, 64)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "write"), Args: a(1, 100, 6)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "addr"), Args: a(1, 1, 150, 40)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "notify"), Args: a(1, 1, 0, 3)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "wait"), Args: a(1, 2)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "starttls"), Args: a(1, 0, 0)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "shutdown"), Args: a(1)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "close"), Args: a(1)},
		testkit.FuzzCall{Func: idx("wasmsrv_sockets", "close"), Args: a(1)},
	)
}

// chatterServer accepts loopback connections, sends a line, reads for 100 ms and
// hangs up: a peer for the sockets plugin under the fuzzer that never makes a read
// wait long.
func chatterServer(f *testing.F) string {
	ln := testkit.Listen(f)
	testkit.ServeConns(f, ln, func(c net.Conn) {
		_, _ = io.WriteString(c, "hello from the chatter server\n")
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = io.Copy(io.Discard, c)
	})
	return ln.Addr().String()
}
