// Package requestid is the one place that knows the request id: the header it
// travels in (X-Request-ID, as nginx's $request_id, Heroku and Envoy use it),
// which values a client may send (Valid), and how a fresh one is made (New). The
// server takes a valid id from the client or makes one, and sends it on in that
// header: to the guest, to upstream servers, on the guest's outbound http plugin
// requests, and back to the client. Other propagated headers (traceparent)
// follow the same places.
package requestid

import (
	"math/rand/v2"
	"net/http"
)

// Header is the header that carries the id, in canonical form (a direct map
// index, no canonicalisation per request).
const Header = "X-Request-Id"

// MaxLen bounds an id a client sends: nginx's and Envoy's are 32 and 36
// characters, Heroku accepts 20 to 200. Longer ids are replaced, so a client
// cannot make every log record carry kilobytes.
const MaxLen = 128

// Valid reports whether s may be used as an id: 1 to MaxLen characters, each
// a letter, a digit or one of - _ . : / + = @ ~. No spaces, quotes, backslashes,
// control bytes or non-ASCII: an id goes unescaped into combined-format log
// lines and header values, and must not be able to end a line or a field.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !safe(s[i]) {
			return false
		}
	}
	return true
}

func safe(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '/', '+', '=', '@', '~':
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"

// New returns a fresh id: 128 random bits as 32 lower-case hex digits (the
// form of nginx's $request_id and of a W3C trace id). math/rand/v2's generator
// is per-thread and lock-free: one small string allocation per id.
func New() string {
	var b [32]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[hi&0xf]
		hi >>= 4
		b[16+i] = hexDigits[lo&0xf]
		lo >>= 4
	}
	return string(b[:])
}

// Of returns the id of an inbound request: its X-Request-ID when Valid, else a
// new one. Only the first value counts; a request with several is given a new id.
func Of(h http.Header) string {
	if v := h[Header]; len(v) == 1 && Valid(v[0]) {
		return v[0]
	}
	return New()
}

// Set writes id on an outbound request's (or a response's) header, replacing
// whatever was there; an empty id removes the header.
func Set(h http.Header, id string) {
	if id == "" {
		delete(h, Header)
		return
	}
	h[Header] = []string{id}
}
