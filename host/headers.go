package host

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/framing"
)

var (
	errBadHeader      = errors.New("invalid header field")
	errLengthOn101    = errors.New("Content-Length on a WebSocket accept")
	errConnectionList = errors.New("invalid Connection field")
)

// commonHeader maps lower-case names apps commonly send to canonical keys, so the
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

// guestHeaders adds the fields of a guest's header block (SPEC §2.1) for a
// response with status to h, under the host's framing rules, and returns the
// body length the guest declared (-1 for none):
//
//   - a name that is not a token, or a value with a control byte (CR, LF,
//     NUL, any but HTAB) or DEL, is an error;
//   - hop-by-hop fields (package framing), and the fields a Connection field
//     names, are dropped: the host alone runs the connection;
//   - Content-Length fields must all carry the same number (else an error);
//     it is kept as one field, and the host holds the body to it. A 204 gets
//     none (RFC 9110 §8.6); on a 101 (ws_accept) one is an error.
//
// An empty block is a block with no fields.
func guestHeaders(h http.Header, block []byte, status int32) (int64, error) {
	if len(block) == 0 {
		return -1, nil
	}
	length := framing.NoLength()
	var conn []string
	err := abi.WalkHeaderBlock(block, func(name, value []byte) error {
		if len(name) == 0 {
			return errBadHeader
		}
		var lower [64]byte
		l := lower[:0]
		for _, c := range name {
			if !framing.IsTokenByte(c) {
				return fmt.Errorf("%w: name %q", errBadHeader, name)
			}
			if len(l) < cap(l) {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				l = append(l, c)
			}
		}
		if !framing.ValidValue(value) {
			return fmt.Errorf("%w: value of %s", errBadHeader, name)
		}
		if framing.IsHopByHopBytes(name) {
			if string(l) == "connection" {
				conn = append(conn, string(value))
			}
			return nil
		}
		key := commonHeader(l)
		if key == "Content-Length" {
			return length.Add(string(value))
		}
		if key == "" {
			key = textproto.CanonicalMIMEHeaderKey(string(name))
		}
		h[key] = append(h[key], string(value))
		return nil
	})
	if err != nil {
		return -1, err
	}
	if conn != nil {
		if framing.Listed(conn, "Content-Length") {
			return -1, fmt.Errorf("%w: it names Content-Length", errConnectionList)
		}
		h["Connection"] = conn
		framing.RemoveHopByHop(h) // the fields it names, then Connection itself
	}
	switch {
	case length.N < 0:
	case status == http.StatusSwitchingProtocols:
		return -1, errLengthOn101
	case status == http.StatusNoContent:
		return -1, nil
	default:
		h["Content-Length"] = []string{length.Value()}
	}
	return length.N, nil
}
