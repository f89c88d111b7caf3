package abi

import "errors"

// Mode is the shape of a guest: how its instances take requests (SPEC §2: the
// mode marker export; a WASI command without markers is served CGI-style). It is
// the one type for a mode from the host's config (a file's mode key, run's --mode)
// through the build to the pools (runtime.Mode is this type); the zero value,
// ModeAuto, asks for what the guest declares.
type Mode int

// Modes.
const (
	// ModeAuto is no wish: what the guest declares (a Go package by its
	// //wasmsrv:mode directive, else sync; a module by its marker export).
	ModeAuto Mode = iota
	// ModeSync runs one request per instance at a time (MarkerModeSync).
	ModeSync
	// ModeAsync multiplexes many requests on one instance through events
	// (MarkerModeAsync).
	ModeAsync
	// ModeCGI runs a plain WASI command (exports _start, no wasmsrv markers) in a
	// fresh instance per request, as WAGI does.
	ModeCGI
	// ModeHTTPWasm is an http-wasm handler (http-wasm.io, not this ABI): imports
	// module http_handler, exports handle_request and handle_response; one
	// request per instance at a time, like sync (docs/http-wasm.md).
	ModeHTTPWasm
)

// String is the mode's name in configs and logs: auto, sync, async, cgi or
// http-wasm.
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeSync:
		return "sync"
	case ModeAsync:
		return "async"
	case ModeCGI:
		return "cgi"
	case ModeHTTPWasm:
		return "http-wasm"
	}
	return "unknown"
}

// ParseMode reads a mode's name; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "sync":
		return ModeSync, nil
	case "async":
		return ModeAsync, nil
	case "cgi":
		return ModeCGI, nil
	case "http-wasm":
		return ModeHTTPWasm, nil
	}
	return ModeAuto, errors.New(`unknown mode "` + s + `": want sync, async, cgi or http-wasm (or auto: what the app declares)`)
}

// UnmarshalText implements encoding.TextUnmarshaler (config files, flags and
// environment variables).
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
