// Package reqtmpl renders small templates over a request, such as
// "{scheme}://{host}{uri}": the site's cache keys and header edit values.
//
// Variables: {method} {scheme} {host} {path} {query} {uri} {client_ip}
// {header:NAME} {cookie:NAME}. {path} and {uri} are the request's as the
// client sent it, before a route stripped its prefix. {client_ip} is the
// client behind trusted proxies (forwarded.ClientIP).
package reqtmpl

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
)

// Vars is what a rendering needs beyond the request.
type Vars struct {
	// Trusted are the proxies whose X-Forwarded-For {client_ip} believes.
	Trusted []netip.Prefix
	// HeadAsGet renders {method} of a HEAD request as GET (a cache answers
	// HEAD from the GET entry).
	HeadAsGet bool
}

// Template is a compiled template; the zero value renders "".
type Template struct{ parts []part }

type part struct {
	lit  string
	kind string // "" for a literal, else the variable
	name string // of header: and cookie:
}

// Names lists the variables, for error messages.
const Names = "method, scheme, host, path, query, uri, client_ip, header:NAME, cookie:NAME"

var errUnclosed = errors.New("unclosed {")

// Compile parses t. "{{" and "}}" stand for literal braces (a JSON
// header value: "{{\"group\":\"x\"}}").
func Compile(t string) (*Template, error) {
	var ps []part
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			ps = append(ps, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '{' && i+1 < len(t) && t[i+1] == '{', c == '}' && i+1 < len(t) && t[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '}':
			return nil, fmt.Errorf("unbalanced } in %q (write }} for a literal one)", t)
		case c == '{':
			j := strings.IndexByte(t[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("%w in %q (write {{ for a literal one)", errUnclosed, t)
			}
			v := t[i+1 : i+j]
			kind, name, _ := strings.Cut(v, ":")
			switch kind {
			case "method", "scheme", "host", "path", "query", "uri", "client_ip":
				if name != "" {
					return nil, fmt.Errorf("unknown variable {%s} (%s)", v, Names)
				}
			case "header", "cookie":
				if name == "" {
					return nil, fmt.Errorf("{%s} needs a name, as in {%s:NAME}", kind, kind)
				}
			default:
				return nil, fmt.Errorf("unknown variable {%s} (%s)", v, Names)
			}
			flush()
			ps = append(ps, part{kind: kind, name: name})
			i += j
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return &Template{parts: ps}, nil
}

// Literal returns the text of a template without variables.
func (t *Template) Literal() (string, bool) {
	switch {
	case len(t.parts) == 0:
		return "", true
	case len(t.parts) == 1 && t.parts[0].kind == "":
		return t.parts[0].lit, true
	}
	return "", false
}

// String renders t for r.
func (t *Template) String(r *http.Request, v Vars) string {
	if s, ok := t.Literal(); ok {
		return s
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch p.kind {
		case "":
			b.WriteString(p.lit)
		case "method":
			if v.HeadAsGet && r.Method == http.MethodHead {
				b.WriteString(http.MethodGet)
			} else {
				b.WriteString(r.Method)
			}
		case "scheme":
			if r.TLS != nil {
				b.WriteString("https")
			} else {
				b.WriteString("http")
			}
		case "host":
			b.WriteString(strings.ToLower(r.Host))
		case "path":
			// The full path: /a/x and /b/x routed by prefix are different.
			b.WriteString(route.RootPath(r.Context()))
			b.WriteString(r.URL.EscapedPath())
		case "query":
			b.WriteString(r.URL.RawQuery)
		case "uri":
			if strings.HasPrefix(r.RequestURI, "/") {
				b.WriteString(r.RequestURI) // as received, before prefix stripping
			} else {
				b.WriteString(route.RootPath(r.Context()))
				b.WriteString(r.URL.RequestURI())
			}
		case "client_ip":
			if a := forwarded.ClientIP(r, v.Trusted); a.IsValid() {
				b.WriteString(a.String())
			}
		case "header":
			b.WriteString(r.Header.Get(p.name))
		case "cookie":
			if c, err := r.Cookie(p.name); err == nil {
				b.WriteString(c.Value)
			}
		}
	}
	return b.String()
}
