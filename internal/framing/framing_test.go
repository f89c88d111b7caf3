package framing

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestIsHopByHop(t *testing.T) {
	for _, name := range []string{"Connection", "connection", "CONNECTION", "Keep-Alive", "keep-alive", "Proxy-Connection",
		"Proxy-Authenticate", "proxy-authorization", "TE", "te", "Trailer", "Transfer-Encoding", "transfer-encoding", "Upgrade", "HTTP2-Settings"} {
		if !IsHopByHop(name) || !IsHopByHopBytes([]byte(name)) {
			t.Errorf("%q is not hop-by-hop", name)
		}
	}
	for _, name := range []string{"", "Content-Length", "Content-Type", "Trailers", "Tee", "T", "Connections", "Upgrade-Insecure-Requests",
		"Proxy", "X-Connection", "Keep-Alive ", " Upgrade", "Transfer-Encodinh"} {
		if IsHopByHop(name) || IsHopByHopBytes([]byte(name)) {
			t.Errorf("%q is hop-by-hop", name)
		}
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":        {"close, X-Private", " x-other "},
		"X-Private":         {"1"},
		"X-Other":           {"2"},
		"Keep-Alive":        {"timeout=5"},
		"Transfer-Encoding": {"chunked"},
		"Proxy-Authorize":   {"kept: not a hop-by-hop name"},
		"Content-Type":      {"text/plain"},
	}
	RemoveHopByHop(h)
	if len(h) != 2 || h.Get("Content-Type") == "" || h.Get("Proxy-Authorize") == "" {
		t.Errorf("left %v", h)
	}
}

func TestListed(t *testing.T) {
	conn := []string{"keep-alive, X-A", "x-b"}
	for k, want := range map[string]bool{"X-A": true, "x-a": true, "X-B": true, "Keep-Alive": true, "X-C": false, "X": false} {
		if Listed(conn, k) != want {
			t.Errorf("Listed(%q) = %v", k, !want)
		}
	}
}

func TestParseLength(t *testing.T) {
	good := map[string]int64{"0": 0, "5": 5, "007": 7, " 5\t": 5, "123456789012345678": 123456789012345678}
	for v, want := range good {
		n, err := ParseLength(v)
		if err != nil || n != want {
			t.Errorf("ParseLength(%q) = %d, %v; want %d", v, n, err, want)
		}
		if m, err := ParseLength([]byte(v)); err != nil || m != want {
			t.Errorf("ParseLength([]byte %q) = %d, %v", v, m, err)
		}
	}
	for _, v := range []string{"", " ", "-1", "+5", "5 5", "0x5", "5,", ",5", "5,6", "5, 5", "5,5", "1e3", "5.0", "１", "1234567890123456789", "99999999999999999999", "5\x00", "5\r\n"} {
		if n, err := ParseLength(v); err == nil {
			t.Errorf("ParseLength(%q) = %d, want an error", v, n)
		}
	}
}

func TestLength(t *testing.T) {
	l := NoLength()
	if l.N != -1 {
		t.Fatal("NoLength has a length")
	}
	for _, v := range []string{"5", "5", " 5"} {
		if err := l.Add(v); err != nil {
			t.Fatalf("Add(%q): %v", v, err)
		}
	}
	if l.N != 5 || l.Value() != "5" {
		t.Errorf("N %d, Value %q", l.N, l.Value())
	}
	if err := l.Add("6"); err == nil || !strings.Contains(err.Error(), "conflicting Content-Length") {
		t.Errorf("Add(6) after 5: %v", err)
	}
	for raw, want := range map[string]string{"007": "7", " 7": "7", "0": "0", "70": "70"} {
		l := NoLength()
		if err := l.Add(raw); err != nil || l.Value() != want {
			t.Errorf("Add(%q): Value %q, %v; want %q", raw, l.Value(), err, want)
		}
	}
	bad := NoLength()
	if err := bad.Add("x"); err == nil || !strings.Contains(err.Error(), "invalid Content-Length") {
		t.Errorf("Add(x): %v", err)
	}
}

func TestIsToken(t *testing.T) {
	for _, m := range []string{"GET", "get", "M-SEARCH", "PROPFIND", "X!#$%&'*+-.^_`|~9"} {
		if !IsToken(m) {
			t.Errorf("%q is not a token", m)
		}
	}
	for _, m := range []string{"", "GET /evil", "GET\r\n", "G\x00T", "G(ET", "GET\t", "Ǵ", "G\"T", "G:T", "G/T"} {
		if IsToken(m) {
			t.Errorf("%q is a token", m)
		}
	}
	for c := range 256 {
		if IsTokenByte(byte(c)) != httpguts.IsTokenRune(rune(c)) && c < 0x80 {
			t.Errorf("byte %#x: IsTokenByte %v, httpguts %v", c, IsTokenByte(byte(c)), httpguts.IsTokenRune(rune(c)))
		}
		if c >= 0x80 && IsTokenByte(byte(c)) {
			t.Errorf("byte %#x is a token byte", c)
		}
	}
}

func TestValidTarget(t *testing.T) {
	for _, s := range []string{"/", "/a?b=c", "*", "/%20", "/é", "http://x/y"} {
		if !ValidTarget(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "/a b", "/a?x y", "/a\r\nHost: evil", "/\x00", "/\t", "/\x7f", "/a\n"} {
		if ValidTarget(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestBodyAllowed(t *testing.T) {
	for code, want := range map[int]bool{100: false, 101: false, 199: false, 200: true, 204: false, 205: true, 304: false, 404: true, 999: true} {
		if BodyAllowed(code) != want {
			t.Errorf("BodyAllowed(%d) = %v", code, !want)
		}
	}
}

func BenchmarkIsHopByHop(b *testing.B) {
	names := []string{"Accept", "User-Agent", "Accept-Encoding", "Cookie", "X-Request-Id", "Connection", "Te"}
	n := 0
	for b.Loop() {
		for _, k := range names {
			if IsHopByHop(k) {
				n++
			}
		}
	}
	_ = n
}

func TestValidValue(t *testing.T) {
	for c := range 256 {
		v := "a" + string(rune(c)) + "b"
		if c >= 0x80 {
			v = "a" + string([]byte{byte(c)}) + "b"
		}
		if ValidValue(v) != httpguts.ValidHeaderFieldValue(v) {
			t.Errorf("byte %#x: ValidValue %v, httpguts %v", c, ValidValue(v), httpguts.ValidHeaderFieldValue(v))
		}
	}
}
