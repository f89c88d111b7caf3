package statuspage

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var files embed.FS

// securityHeaders keep the page to its own origin: scripts and styles from the
// listener only (no inline code, nothing from elsewhere), not framed by other
// pages, never cached.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func serveFile(w http.ResponseWriter, name, contentType string) {
	b, err := fs.ReadFile(files, "ui/"+name)
	if err != nil {
		http.NotFound(w, nil)
		return
	}
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(b)
}

// Page writes the status page (for an authorized request).
func Page(w http.ResponseWriter) { serveFile(w, "status.html", "text/html; charset=utf-8") }

// Login writes the login form (for a request without the admin token).
func Login(w http.ResponseWriter) { serveFile(w, "login.html", "text/html; charset=utf-8") }

// Assets serves the page's scripts and style under /ui/assets/NAME; they hold
// no data, so they need no token.
func Assets(w http.ResponseWriter, r *http.Request) {
	switch name := r.PathValue("name"); name {
	case "status.js", "login.js":
		serveFile(w, name, "text/javascript; charset=utf-8")
	case "style.css":
		serveFile(w, name, "text/css; charset=utf-8")
	default:
		http.NotFound(w, r)
	}
}
