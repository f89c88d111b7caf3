// Package framing is what the host alone decides about an HTTP message: the
// connection-specific (hop-by-hop) fields, how a body is delimited
// (Content-Length), and which request lines are well formed (methods and
// request targets). Apps, CGI commands, upstream servers and header rules
// never choose these: every part of wasmsrv that takes fields from one of
// them asks this package, so there is one list and one set of rules.
package framing

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"unsafe"
)

// IsHopByHop reports whether name (any case) is a hop-by-hop field: one that
// describes a connection, not the message (RFC 9110 §7.6.1; also the fields
// RFC 2616 §13.5.1 listed, which proxies still drop, and HTTP2-Settings, RFC
// 7540 §3.2.1). A field a Connection field names is hop-by-hop too (see
// RemoveHopByHop). This function is wasmsrv's one list of them.
func IsHopByHop(name string) bool {
	switch name { // canonical and lower case: the spellings of header maps and guests
	case "Connection", "connection", "Keep-Alive", "keep-alive", "Proxy-Connection", "proxy-connection",
		"Proxy-Authenticate", "proxy-authenticate", "Proxy-Authorization", "proxy-authorization",
		"Te", "te", "Trailer", "trailer", "Transfer-Encoding", "transfer-encoding", "Upgrade", "upgrade",
		"Http2-Settings", "http2-settings":
		return true
	}
	switch len(name) { // any other spelling
	case 2:
		return foldEq("te", name)
	case 7:
		return foldEq("trailer", name) || foldEq("upgrade", name)
	case 10:
		return foldEq("connection", name) || foldEq("keep-alive", name)
	case 14:
		return foldEq("http2-settings", name)
	case 16:
		return foldEq("proxy-connection", name)
	case 17:
		return foldEq("transfer-encoding", name)
	case 18:
		return foldEq("proxy-authenticate", name)
	case 19:
		return foldEq("proxy-authorization", name)
	}
	return false
}

// foldEq reports whether name equals lower, which is in lower case, ignoring
// ASCII case; len(name) == len(lower).
func foldEq(lower, name string) bool {
	for i := 0; i < len(lower); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// IsHopByHopBytes is IsHopByHop for a name held in bytes.
func IsHopByHopBytes(name []byte) bool {
	return IsHopByHop(unsafe.String(unsafe.SliceData(name), len(name)))
}

// Listed reports whether a Connection field's values (conn) name the field k.
func Listed(conn []string, k string) bool {
	for _, v := range conn {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), k) {
				return true
			}
		}
	}
	return false
}

// RemoveHopByHop deletes from h (canonical keys) the fields its Connection
// fields name, then every hop-by-hop field.
func RemoveHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(f))
			}
		}
	}
	for k := range h {
		if IsHopByHop(k) {
			delete(h, k)
		}
	}
}

// maxLengthDigits bounds a Content-Length: 18 digits never overflow an int64.
const maxLengthDigits = 18

var (
	errInvalidLength     = errors.New("invalid Content-Length")
	errConflictingLength = errors.New("conflicting Content-Length values")
)

// ParseLength parses one Content-Length field value: 1*DIGIT (RFC 9110
// §8.6) with optional whitespace around it, at most 18 digits. A list
// ("5, 5"), which RFC 9110 lets a recipient either take or refuse, is
// refused, as net/http and nginx do.
func ParseLength[T ~string | ~[]byte](v T) (int64, error) {
	n, ok := parseDigits(v)
	if !ok {
		return -1, fmt.Errorf("%w %q", errInvalidLength, string(v))
	}
	return n, nil
}

func parseDigits[T ~string | ~[]byte](v T) (int64, bool) {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if len(v) == 0 || len(v) > maxLengthDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Length is a body length declared by several Content-Length fields: it
// collects them and keeps the one number they must all agree on.
type Length struct {
	N   int64 // -1 until a field is added
	Raw string
}

// NoLength is a Length with no field yet.
func NoLength() Length { return Length{N: -1} }

// Add takes one more Content-Length field value. A value that is malformed,
// or a number other than the earlier fields', is an error: the message then
// cannot be framed (RFC 9112 §6.3).
func (l *Length) Add(v string) error {
	n, err := ParseLength(v)
	if err != nil {
		return err
	}
	if l.N >= 0 && n != l.N {
		return fmt.Errorf("%w %d and %d", errConflictingLength, l.N, n)
	}
	if l.N < 0 {
		l.N, l.Raw = n, v
	}
	return nil
}

// Value is the single field value to send for l: the guest's own bytes when
// they are already the plain number, the number otherwise.
func (l *Length) Value() string {
	if canonical(l.Raw) {
		return l.Raw
	}
	return strconv.FormatInt(l.N, 10)
}

func canonical(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// BodyAllowed reports whether a response with status carries a body
// (RFC 9110 §6.4.1: not 1xx, 204 or 304).
func BodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// IsToken reports whether s is a token (RFC 9110 §5.6.2), as a method must be.
func IsToken[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsTokenByte(s[i]) {
			return false
		}
	}
	return true
}

// IsTokenByte reports whether c may appear in a token.
func IsTokenByte(c byte) bool {
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

// ValidValue reports whether a field value may be sent as is: no control
// bytes but HTAB, no DEL (RFC 9110 §5.5; bytes above 0x7f are obs-text).
func ValidValue[T ~string | ~[]byte](v T) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidTarget reports whether a request target (path and query as sent) can
// be written into an HTTP/1.1 request line unchanged: no whitespace, control
// bytes or DEL. Bytes above 0x7f are let through, as net/http's HTTP/1
// parser and nginx do.
func ValidTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
