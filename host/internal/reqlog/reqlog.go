// Package reqlog lets the handlers behind the access log (host.Observe) say
// what served a request: the site's router names the route and its app or
// upstream group, the upstream group the server it picked. The access log's
// ResponseWriter carries the fields; handlers find it through the Unwrap chain
// of the writer they were given, without allocating or touching the request's
// context.
package reqlog

import "net/http"

// Fields are what the access log records besides the request itself.
type Fields struct {
	// App is the app that served the request.
	App string
	// Route is the route that matched (its path prefix, with its host when it
	// names one).
	Route string
	// Upstream is the upstream group, Server the member that answered last.
	Upstream, Server string
}

// carrier is the access log's ResponseWriter.
type carrier interface{ LogFields() *Fields }

// Of returns the fields of the request w answers, nil when no access log is
// in front (an embedder's own handler tree).
func Of(w http.ResponseWriter) *Fields {
	for range 16 { // writers wrap a few times; a cycle must not hang a request
		if c, ok := w.(carrier); ok {
			return c.LogFields()
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}
