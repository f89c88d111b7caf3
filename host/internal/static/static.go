// Package static serves files from a directory: ETag/Last-Modified with
// 304s, byte ranges, precompressed .br/.zst/.gz siblings chosen by
// Accept-Encoding, index files, an optional fallback handler for paths that
// match no file (single-page apps), and no way out of the root: paths are
// cleaned and opened through os.Root, which refuses ".." and symlinks that
// leave the directory.
package static

import (
	"bytes"
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
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/route"
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
	// Revalidate is how long what was learnt about a path (existence,
	// size, mtime, and the contents of small files) is trusted before the
	// file system is asked again, like nginx's open_file_cache valid=.
	// 0 means 1s; negative means ask on every request.
	Revalidate time.Duration
}

// Handler serves one directory.
type Handler struct {
	cfg  Config
	root *os.Root
	fc   fileCache
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
	if cfg.Revalidate == 0 {
		cfg.Revalidate = time.Second
	}
	return &Handler{cfg: cfg, root: root, fc: fileCache{m: map[string]*fileInfo{}}}, nil
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
	now := time.Now()
	fi := h.stat(rel, now)
	if fi.err != nil {
		h.openError(w, r, fi.err)
		return
	}
	if fi.dir {
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
			if ifi := h.stat(p, now); ifi.err == nil && ifi.regular {
				h.serveFile(w, r, p, ifi, now)
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
	if !fi.regular {
		h.notFound(w, r)
		return
	}
	h.serveFile(w, r, rel, fi, now)
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

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, rel string, fi *fileInfo, now time.Time) {
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
			// A sibling older than the original is stale: skip it.
			if sfi := h.stat(rel+e.ext, now); sfi.err == nil && sfi.regular && !sfi.mod.Before(fi.mod) {
				open, enc, fi = rel+e.ext, e.name, sfi
				break
			}
		}
	}
	if enc != "" {
		hdr.Set("Content-Encoding", enc)
		hdr.Set("ETag", fi.etag[:len(fi.etag)-1]+"-"+enc+`"`)
	} else {
		hdr.Set("ETag", fi.etag)
	}
	// ServeContent handles If-None-Match/If-Modified-Since (304), ranges
	// (206/416) and HEAD.
	if fi.data != nil {
		http.ServeContent(w, r, "", fi.mod, bytes.NewReader(fi.data))
		return
	}
	f, err := h.root.Open(open)
	if err != nil {
		h.openError(w, r, err)
		return
	}
	defer f.Close()
	// Copying from an *os.File lets net/http use sendfile(2).
	http.ServeContent(w, r, "", fi.mod, f)
}

func etag(size int64, mod time.Time) string {
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, size, 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, mod.UnixNano(), 36)
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
