// Package static serves files from a directory: ETag/Last-Modified with
// 304s, byte ranges, precompressed .br/.zst/.gz siblings chosen by
// Accept-Encoding, index files, an optional fallback handler for paths that
// match no file (single-page apps), and no way out of the root: paths are
// cleaned and opened through os.Root, which refuses ".." and symlinks that
// leave the directory.
package static

import (
	"errors"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/wasmsrv/wasmsrv/host/route"
)

// Config configures a Handler.
type Config struct {
	Root  string
	Index []string // default ["index.html"]
	// Fallback serves requests that match no file (SPA "try files, then
	// the app"). Nil answers 404.
	Fallback http.Handler
	// CacheControl is sent with every file; empty picks "no-cache" for
	// HTML (always revalidate) and "public, max-age=3600" otherwise.
	CacheControl string
	// Listing enables directory listings when no index file exists.
	Listing bool
}

// Handler serves one directory.
type Handler struct {
	cfg  Config
	root *os.Root
}

// New opens the root directory.
func New(cfg Config) (*Handler, error) {
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("static root: %w", err)
	}
	if len(cfg.Index) == 0 {
		cfg.Index = []string{"index.html"}
	}
	return &Handler{cfg: cfg, root: root}, nil
}

// Close releases the root directory handle.
func (h *Handler) Close() error { return h.root.Close() }

// encodings in server preference order, with the sibling suffix.
var encodings = [...]struct{ name, ext string }{{"br", ".br"}, {"zstd", ".zst"}, {"gzip", ".gz"}}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if h.cfg.Fallback != nil {
			h.cfg.Fallback.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if strings.ContainsAny(r.URL.Path, "\x00\\") {
		http.Error(w, "400 bad path", http.StatusBadRequest)
		return
	}
	name := path.Clean("/" + r.URL.Path)
	if hidden(name) {
		h.notFound(w, r)
		return
	}
	rel := strings.TrimPrefix(name, "/")
	if rel == "" {
		rel = "."
	}
	f, err := h.root.Open(rel)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		h.openError(w, r, err)
		return
	}
	if st.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			// Relative links in the index need the trailing slash.
			target := route.RootPath(r.Context()) + r.URL.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		for _, idx := range h.cfg.Index {
			p := path.Join(rel, idx)
			if fi, err := h.root.Stat(p); err == nil && fi.Mode().IsRegular() {
				h.serveFile(w, r, p, fi)
				return
			}
		}
		if h.cfg.Listing {
			h.list(w, r, rel)
			return
		}
		h.notFound(w, r)
		return
	}
	f.Close()
	if !st.Mode().IsRegular() {
		h.notFound(w, r)
		return
	}
	h.serveFile(w, r, rel, st)
}

// hidden refuses dot-files (.git, .env) except /.well-known.
func hidden(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return true
		}
	}
	return false
}

func (h *Handler) openError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
		h.notFound(w, r)
		return
	}
	// os.Root reports escapes (".." or symlinks leaving the root) and
	// permission problems: both are refusals, not absences.
	http.Error(w, "403 forbidden", http.StatusForbidden)
}

func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Fallback != nil {
		h.cfg.Fallback.ServeHTTP(w, r)
		return
	}
	http.Error(w, "404 not found", http.StatusNotFound)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, rel string, st fs.FileInfo) {
	hdr := w.Header()
	ctype := mime.TypeByExtension(filepath.Ext(rel))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	hdr.Set("Content-Type", ctype)
	cc := h.cfg.CacheControl
	if cc == "" {
		if strings.HasPrefix(ctype, "text/html") {
			cc = "no-cache"
		} else {
			cc = "public, max-age=3600"
		}
	}
	hdr.Set("Cache-Control", cc)

	open, enc := rel, ""
	if ae := r.Header.Get("Accept-Encoding"); ae != "" && compressible(ctype) {
		hdr.Add("Vary", "Accept-Encoding")
		for _, e := range encodings {
			if !accepts(ae, e.name) {
				continue
			}
			if fi, err := h.root.Stat(rel + e.ext); err == nil && fi.Mode().IsRegular() && !fi.ModTime().Before(st.ModTime()) {
				open, enc, st = rel+e.ext, e.name, fi
				break
			}
		}
	}
	f, err := h.root.Open(open)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	defer f.Close()
	if enc != "" {
		hdr.Set("Content-Encoding", enc)
	}
	hdr.Set("ETag", etag(st, enc))
	// ServeContent handles If-None-Match/If-Modified-Since (304), ranges
	// (206/416) and HEAD; copying from an *os.File lets net/http use
	// sendfile(2).
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func etag(st fs.FileInfo, enc string) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendInt(b, st.Size(), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, st.ModTime().UnixNano(), 36)
	if enc != "" {
		b = append(b, '-')
		b = append(b, enc...)
	}
	return string(append(b, '"'))
}

// compressible reports whether precompressed siblings are worth looking
// for (images and archives are already compressed).
func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "javascript") ||
		strings.Contains(ctype, "json") || strings.Contains(ctype, "xml") ||
		strings.Contains(ctype, "svg") || strings.Contains(ctype, "wasm")
}

// accepts reports whether an Accept-Encoding value allows coding (q > 0).
func accepts(ae, coding string) bool {
	for part := range strings.SplitSeq(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), coding) && strings.TrimSpace(name) != "*" {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, rel string) {
	d, err := h.root.Open(rel)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		http.Error(w, "500 cannot list directory", http.StatusInternalServerError)
		return
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, "<!doctype html><title>%s</title><pre>\n", html.EscapeString(r.URL.Path))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		if e.IsDir() {
			n += "/"
		}
		fmt.Fprintf(w, "<a href=\"%s\">%s</a>\n", (&url.URL{Path: n}).EscapedPath(), html.EscapeString(n))
	}
	fmt.Fprint(w, "</pre>\n")
}
