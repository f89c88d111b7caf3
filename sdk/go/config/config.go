// Package config is the guest binding of the wasmsrv `config` plugin
// (plugins/config/ABI.md): the app's variables and secrets, set by the operator,
// read-only. The app must be granted config.
//
//	dsn, err := config.Get("DATABASE_URL")
package config

import (
	"unsafe"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Error is a status returned by the host.
type Error int32

func (e Error) Error() string { return "config: " + pluginabi.StatusText(int32(e)) }

// ErrNotFound: no such variable.
const ErrNotFound = Error(pluginabi.ErrNotFound)

var buf = make([]byte, 1024)

func bp() unsafe.Pointer { return unsafe.Pointer(&buf[0]) }

// Get returns the variable or secret called key, or ErrNotFound.
func Get(key string) (string, error) {
	for {
		r := get(unsafe.Pointer(unsafe.StringData(key)), uint32(len(key)), bp(), uint32(len(buf)))
		if r < 0 {
			return "", Error(r)
		}
		if int(r) <= len(buf) {
			return string(buf[:r]), nil
		}
		buf = make([]byte, r)
	}
}

// Lookup is Get with a found flag instead of an error.
func Lookup(key string) (string, bool) {
	v, err := Get(key)
	return v, err == nil
}

// Keys lists the names of the app's variables and secrets, sorted.
func Keys() []string {
	for {
		r := keys(bp(), uint32(len(buf)))
		if r < 0 {
			return nil
		}
		if int(r) > len(buf) {
			buf = make([]byte, r)
			continue
		}
		var out []string
		b := buf[:r]
		for len(b) > 0 {
			item, rest, ok := pluginabi.NextItem(b)
			if !ok {
				break
			}
			out = append(out, string(item))
			b = rest
		}
		return out
	}
}
