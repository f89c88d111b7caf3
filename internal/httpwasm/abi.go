// Package httpwasm runs http-wasm handler modules (http-wasm.io, the handler ABI
// of Traefik's Wasm plugins and Dapr's middleware.http.wasm) unchanged: the host
// side of the ABI (module http_handler, written from the specification), and the
// http.Handler that runs a guest as a whole app or as middleware in front of
// another handler. Instances come from a runtime.SyncPool (deadlines, memory
// limits, recycling and crash isolation as for sync apps): one instance is held
// for a request from handle_request through the next handler to
// handle_response.
package httpwasm

import (
	"context"
	"log/slog"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Feature flags (enable_features).
const (
	FeatureBufferRequest  uint32 = 1
	FeatureBufferResponse uint32 = 2
	FeatureTrailers       uint32 = 4
	// supported is every feature this host has.
	supported = FeatureBufferRequest | FeatureBufferResponse | FeatureTrailers
)

// Header kinds and body kinds.
const (
	kindRequest          = 0
	kindResponse         = 1
	kindRequestTrailers  = 2
	kindResponseTrailers = 3
)

// Log levels of the ABI.
const (
	levelDebug = -1
	levelInfo  = 0
	levelWarn  = 1
	levelError = 2
	levelNone  = 3
)

// Host function names (module http_handler).
const (
	fnEnableFeatures     = "enable_features"
	fnGetConfig          = "get_config"
	fnLog                = "log"
	fnLogEnabled         = "log_enabled"
	fnGetHeaderNames     = "get_header_names"
	fnGetHeaderValues    = "get_header_values"
	fnSetHeaderValue     = "set_header_value"
	fnAddHeaderValue     = "add_header_value"
	fnRemoveHeader       = "remove_header"
	fnReadBody           = "read_body"
	fnWriteBody          = "write_body"
	fnGetMethod          = "get_method"
	fnSetMethod          = "set_method"
	fnGetURI             = "get_uri"
	fnSetURI             = "set_uri"
	fnGetProtocolVersion = "get_protocol_version"
	fnGetSourceAddr      = "get_source_addr"
	fnGetStatusCode      = "get_status_code"
	fnSetStatusCode      = "set_status_code"
)

// ModuleOptions configure the host module of one app.
type ModuleOptions struct {
	// Config is what get_config returns (the guest's, often JSON).
	Config []byte
	// Log receives the guest's log calls (nil: discarded). Give it the app's
	// guest-output budget's logger so a chatty guest is rate-limited.
	Log *slog.Logger
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Module returns the http_handler host module for one app.
func Module(opt ModuleOptions) runtime.HostModule {
	config := append([]byte(nil), opt.Config...)
	log := opt.Log
	f := func(name string, params, results []api.ValueType, fn api.GoModuleFunc) runtime.HostFunc {
		return runtime.HostFunc{Name: name, Params: params, Results: results, Fn: fn}
	}
	p := func(ts ...api.ValueType) []api.ValueType { return ts }
	return runtime.HostModule{Name: runtime.HTTPWasmModule, Funcs: []runtime.HostFunc{
		f(fnEnableFeatures, p(i32), p(i32), hostEnableFeatures),
		f(fnGetConfig, p(i32, i32), p(i32), func(ctx context.Context, mod api.Module, stack []uint64) {
			stack[0] = uint64(writeIfFits(fnGetConfig, mod, stack[0], stack[1], config))
		}),
		f(fnLog, p(i32, i32, i32), nil, func(ctx context.Context, mod api.Module, stack []uint64) {
			msg := region(fnLog, mod, stack[1], stack[2])
			lv, ok := slogLevel(int32(stack[0]))
			if !ok || log == nil || !log.Enabled(ctx, lv) {
				return
			}
			// A record keeps at most guestlog.MaxLine of it: copy no more.
			msg = msg[:min(len(msg), guestlog.MaxLine)]
			log.Log(ctx, lv, string(msg), "source", "http-wasm guest")
		}),
		f(fnLogEnabled, p(i32), p(i32), func(ctx context.Context, _ api.Module, stack []uint64) {
			lv, ok := slogLevel(int32(stack[0]))
			stack[0] = 0
			if ok && log != nil && log.Enabled(ctx, lv) {
				stack[0] = 1
			}
		}),
		f(fnGetHeaderNames, p(i32, i32, i32), p(i64), hostGetHeaderNames),
		f(fnGetHeaderValues, p(i32, i32, i32, i32, i32), p(i64), hostGetHeaderValues),
		f(fnSetHeaderValue, p(i32, i32, i32, i32, i32), nil, hostSetHeaderValue),
		f(fnAddHeaderValue, p(i32, i32, i32, i32, i32), nil, hostAddHeaderValue),
		f(fnRemoveHeader, p(i32, i32, i32), nil, hostRemoveHeader),
		f(fnReadBody, p(i32, i32, i32), p(i64), hostReadBody),
		f(fnWriteBody, p(i32, i32, i32), nil, hostWriteBody),
		f(fnGetMethod, p(i32, i32), p(i32), hostGetMethod),
		f(fnSetMethod, p(i32, i32), nil, hostSetMethod),
		f(fnGetURI, p(i32, i32), p(i32), hostGetURI),
		f(fnSetURI, p(i32, i32), nil, hostSetURI),
		f(fnGetProtocolVersion, p(i32, i32), p(i32), hostGetProtocolVersion),
		f(fnGetSourceAddr, p(i32, i32), p(i32), hostGetSourceAddr),
		f(fnGetStatusCode, nil, p(i32), hostGetStatusCode),
		f(fnSetStatusCode, p(i32), nil, hostSetStatusCode),
	}}
}

// slogLevel maps an ABI log level; none (3) and unknown levels log nothing.
func slogLevel(l int32) (slog.Level, bool) {
	switch l {
	case levelDebug:
		return slog.LevelDebug, true
	case levelInfo:
		return slog.LevelInfo, true
	case levelWarn:
		return slog.LevelWarn, true
	case levelError:
		return slog.LevelError, true
	}
	return 0, false
}

// trap aborts the calling guest: its request fails (500) and the instance is
// discarded. The host is never affected.
func trap(fn, msg string) { panic(&runtime.ABIError{Func: fn, Msg: msg}) }

// region returns the guest memory [ptr, ptr+n) or traps.
func region(fn string, mod api.Module, ptr, n uint64) []byte {
	b, ok := mod.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		trap(fn, "region outside guest memory")
	}
	return b
}

// writeIfFits writes v to the guest buffer [buf, buf+limit) when it fits and
// returns its length either way (the ABI's buf_limit contract). The whole
// buffer must lie in guest memory.
func writeIfFits(fn string, mod api.Module, buf, limit uint64, v []byte) uint32 {
	dst := region(fn, mod, buf, limit)
	if len(v) <= len(dst) {
		copy(dst, v)
	}
	return uint32(len(v))
}

func writeStringIfFits(fn string, mod api.Module, buf, limit uint64, v string) uint32 {
	dst := region(fn, mod, buf, limit)
	if len(v) <= len(dst) {
		copy(dst, v)
	}
	return uint32(len(v))
}
