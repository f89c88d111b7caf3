// Package kv is the guest binding of the wasmsrv `kv` plugin (plugins/kv/ABI.md): a
// key-value store private to the app, shared by all its instances (and, with the
// Redis backend, by all wasmsrv nodes). The app must be granted kv
// (`wasmsrv run --grant kv`), or it fails to load.
//
//	n, err := kv.Get("hits")
//	err = kv.CompareAndSwap("hits", old, next)
package kv

import (
	"time"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Error is a status returned by the host.
type Error int32

func (e Error) Error() string { return "kv: " + pluginabi.StatusText(int32(e)) }

// Errors the host returns.
const (
	// ErrNotFound: no such key (Get, Delete).
	ErrNotFound = Error(pluginabi.ErrNotFound)
	// ErrConflict: CompareAndSwap found another value.
	ErrConflict = Error(pluginabi.ErrConflict)
	// ErrTooLarge: the value is over the app's value limit.
	ErrTooLarge = Error(pluginabi.ErrTooLarge)
	// ErrQuota: the app's storage limit is reached.
	ErrQuota = Error(pluginabi.ErrQuota)
	// ErrBadArgument: empty or over-long key, negative TTL.
	ErrBadArgument = Error(pluginabi.ErrBadArgument)
	// ErrUnavailable: the backend failed; try again later.
	ErrUnavailable = Error(pluginabi.ErrUnavailable)
	// ErrTimeout: the request deadline passed.
	ErrTimeout = Error(pluginabi.ErrTimeout)
)

const (
	casOldAbsent = 1 << 0
	casDelete    = 1 << 1
)

// buf is reused between calls: an instance runs one call at a time.
var buf = make([]byte, 4096)

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func status(r int32) error {
	if r == 0 {
		return nil
	}
	return Error(r)
}

// Get returns a copy of key's value, or ErrNotFound.
func Get(key string) ([]byte, error) {
	for {
		r := get(sptr(key), uint32(len(key)), ptr(buf), uint32(len(buf)))
		if r < 0 {
			return nil, Error(r)
		}
		if int(r) <= len(buf) {
			return append([]byte(nil), buf[:r]...), nil
		}
		// Too small: grow and ask again (the value may have changed meanwhile;
		// the loop just follows it).
		buf = make([]byte, r)
	}
}

// Set stores val under key with no expiry.
func Set(key string, val []byte) error { return SetTTL(key, val, 0) }

// SetTTL stores val under key; it expires after ttl (0 = never; rounded to ms).
func SetTTL(key string, val []byte, ttl time.Duration) error {
	return status(set(sptr(key), uint32(len(key)), ptr(val), uint32(len(val)), ttl.Milliseconds()))
}

// Delete removes key; ErrNotFound if it did not exist.
func Delete(key string) error { return status(del(sptr(key), uint32(len(key)))) }

// CompareAndSwap sets key to next only if its value is old; old == nil means "only
// if key does not exist". ErrConflict otherwise: read again and retry.
func CompareAndSwap(key string, old, next []byte) error {
	return CompareAndSwapTTL(key, old, next, 0)
}

// CompareAndSwapTTL is CompareAndSwap with an expiry for the new value.
func CompareAndSwapTTL(key string, old, next []byte, ttl time.Duration) error {
	var flags int32
	if old == nil {
		flags |= casOldAbsent
	}
	return status(cas(sptr(key), uint32(len(key)), ptr(old), uint32(len(old)), ptr(next), uint32(len(next)), flags, ttl.Milliseconds()))
}

// CompareAndDelete deletes key only if its value is old; ErrConflict otherwise.
func CompareAndDelete(key string, old []byte) error {
	return status(cas(sptr(key), uint32(len(key)), ptr(old), uint32(len(old)), nil, 0, casDelete, 0))
}

// ListPage returns keys starting with prefix that sort after after (exclusive), in
// byte order, as many as fit in one host call, and whether more follow: pass the
// last key back as after for the next page.
func ListPage(prefix, after string) (keys []string, more bool, err error) {
	r := list(sptr(prefix), uint32(len(prefix)), sptr(after), uint32(len(after)), ptr(buf), uint32(len(buf)))
	if r < 0 {
		return nil, false, Error(r)
	}
	m, n := pluginabi.Unpack2(r)
	b := buf[:n]
	for len(b) > 0 {
		item, rest, ok := pluginabi.NextItem(b)
		if !ok {
			return keys, false, ErrBadArgument
		}
		keys = append(keys, string(item))
		b = rest
	}
	return keys, m == 1, nil
}

// List returns every key starting with prefix, in byte order.
func List(prefix string) ([]string, error) {
	var all []string
	after := ""
	for {
		keys, more, err := ListPage(prefix, after)
		all = append(all, keys...)
		if err != nil || !more || len(keys) == 0 {
			return all, err
		}
		after = keys[len(keys)-1]
	}
}
