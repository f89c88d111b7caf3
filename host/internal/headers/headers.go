// Package headers edits a route's request and response header fields: what
// nginx does with proxy_set_header, add_header and proxy_hide_header, and
// Caddy with its header directive. Values are templates over the request
// (package reqtmpl: "{client_ip}", "{scheme}", "{header:NAME}"…; "{{" and
// "}}" for literal braces). Response edits apply to every answer of the
// route (errors, cache HITs and 429s included), just before its head is
// written.
package headers

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/textproto"
	"sort"

	"golang.org/x/net/http/httpguts"

	"github.com/wasmsrv/wasmsrv/host/internal/reqtmpl"
	"github.com/wasmsrv/wasmsrv/internal/framing"
)

// Rules are one direction's edits, applied in this order: remove, set, add.
type Rules struct {
	// Set replaces a field's values with one value.
	Set map[string]string
	// Add appends a value to a field.
	Add map[string]string
	// Remove drops a field.
	Remove []string
}

// Config holds both directions.
type Config struct {
	Request  Rules
	Response Rules
	// Trusted are the proxies whose X-Forwarded-For {client_ip} believes.
	Trusted []netip.Prefix
}

// CheckName reports why a field name cannot be edited, or nil: the fields
// that describe the message itself or the connection (package framing) are
// the server's to compute, and an edit would corrupt the exchange.
func CheckName(name string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("%q is not a valid header field name", name)
	}
	if framing.IsHopByHop(name) || textproto.CanonicalMIMEHeaderKey(name) == "Content-Length" {
		return fmt.Errorf("%s describes the message or connection and is set by the server, not by a rule", textproto.CanonicalMIMEHeaderKey(name))
	}
	return nil
}

// CheckValue reports why a field value template cannot be used, or nil.
func CheckValue(value string) error {
	_, err := parseValue(value)
	return err
}

func parseValue(value string) (*reqtmpl.Template, error) {
	if !httpguts.ValidHeaderFieldValue(value) {
		return nil, fmt.Errorf("value %q has control characters", value)
	}
	t, err := reqtmpl.Compile(value)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return t, nil
}

// edit is one compiled operation.
type edit struct {
	op    byte // 'r' remove, 's' set, 'a' add
	key   string
	value *reqtmpl.Template
}

func compile(r Rules) ([]edit, error) {
	var out []edit
	for _, name := range r.Remove {
		if err := CheckName(name); err != nil {
			return nil, err
		}
		out = append(out, edit{op: 'r', key: textproto.CanonicalMIMEHeaderKey(name)})
	}
	for _, m := range []struct {
		op byte
		kv map[string]string
	}{{'s', r.Set}, {'a', r.Add}} {
		names := make([]string, 0, len(m.kv))
		for name := range m.kv {
			names = append(names, name)
		}
		sort.Strings(names) // a stable order for several adds to one field
		for _, name := range names {
			if err := CheckName(name); err != nil {
				return nil, err
			}
			t, err := parseValue(m.kv[name])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, edit{op: m.op, key: textproto.CanonicalMIMEHeaderKey(name), value: t})
		}
	}
	return out, nil
}

func apply(h http.Header, edits []edit, r *http.Request, v reqtmpl.Vars) {
	for _, e := range edits {
		switch e.op {
		case 'r':
			delete(h, e.key)
		case 's':
			h[e.key] = []string{e.value.String(r, v)}
		case 'a':
			h[e.key] = append(h[e.key], e.value.String(r, v))
		}
	}
}

// New wraps next with cfg's edits; a config without edits returns next.
func New(cfg Config, next http.Handler) (http.Handler, error) {
	req, err := compile(cfg.Request)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	resp, err := compile(cfg.Response)
	if err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	if len(req) == 0 && len(resp) == 0 {
		return next, nil
	}
	vars := reqtmpl.Vars{Trusted: cfg.Trusted}
	var host *reqtmpl.Template
	for _, e := range req {
		if e.key == "Host" && e.op == 's' {
			host = e.value // Go keeps the request's Host in r.Host, not in the map
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(req) > 0 {
			var newHost string
			if host != nil {
				newHost = host.String(r, vars) // from the request as it came
			}
			apply(r.Header, req, r, vars)
			if host != nil {
				r.Host = newHost
				delete(r.Header, "Host")
			}
		}
		if len(resp) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		// Rendered against the request with its edits.
		ew := &editor{ResponseWriter: w, edits: resp, r: r, vars: vars}
		next.ServeHTTP(ew, r)
		// A handler that wrote nothing gets net/http's implicit 200 after
		// it returns: it carries the edits too.
		ew.head()
	}), nil
}

// editor applies the response edits once, when the final head goes out.
type editor struct {
	http.ResponseWriter
	edits []edit
	r     *http.Request
	vars  reqtmpl.Vars
	done  bool
}

func (e *editor) head() {
	if !e.done {
		e.done = true
		apply(e.ResponseWriter.Header(), e.edits, e.r, e.vars)
	}
}

func (e *editor) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		e.head()
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *editor) Write(p []byte) (int, error) {
	e.head()
	return e.ResponseWriter.Write(p)
}

// ReadFrom keeps net/http's sendfile path for static files.
func (e *editor) ReadFrom(src io.Reader) (int64, error) {
	e.head()
	if rf, ok := e.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{e.ResponseWriter}, src)
}

// Flush lets handlers that type-assert http.Flusher stream through it.
func (e *editor) Flush() {
	e.head()
	_ = http.NewResponseController(e.ResponseWriter).Flush()
}

// Unwrap keeps http.ResponseController (deadlines, Flush, Hijack) working.
// A hijacked connection (a WebSocket handshake) writes its own head: the
// edits do not reach it.
func (e *editor) Unwrap() http.ResponseWriter { return e.ResponseWriter }

type writerOnly struct{ io.Writer }
