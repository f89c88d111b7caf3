package host

import (
	"errors"
	"net/http"
	"net/textproto"
)

var errBadHeader = errors.New("invalid header")

// hopByHop fields belong to the connection, not the app (SPEC §2.1).
func isHopByHop(lower []byte) bool {
	switch string(lower) {
	case "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection":
		return true
	}
	return false
}

// commonHeaders maps lower-case names apps commonly send to canonical keys, so the
// response path does not allocate a key string for them.
func commonHeader(lower []byte) string {
	switch string(lower) { // no allocation: the compiler optimizes switch on string(b)
	case "content-type":
		return "Content-Type"
	case "content-length":
		return "Content-Length"
	case "cache-control":
		return "Cache-Control"
	case "location":
		return "Location"
	case "set-cookie":
		return "Set-Cookie"
	case "etag":
		return "Etag"
	case "last-modified":
		return "Last-Modified"
	case "content-encoding":
		return "Content-Encoding"
	case "x-content-type-options":
		return "X-Content-Type-Options"
	case "vary":
		return "Vary"
	}
	return ""
}

// addHeader validates one guest header and adds it to h.
func addHeader(h http.Header, name, value []byte) error {
	if len(name) == 0 {
		return errBadHeader
	}
	var lower [64]byte
	l := lower[:0]
	for _, c := range name {
		if !isTokenChar(c) {
			return errBadHeader
		}
		if len(l) < cap(l) {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			l = append(l, c)
		}
	}
	for _, c := range value {
		if c == '\r' || c == '\n' || c == 0 {
			return errBadHeader
		}
	}
	if len(name) <= len(lower) && isHopByHop(l) {
		return nil
	}
	key := commonHeader(l)
	if key == "" {
		key = textproto.CanonicalMIMEHeaderKey(string(name))
	}
	h[key] = append(h[key], string(value))
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
