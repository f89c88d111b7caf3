// Package bodybuf reads request bodies ahead of the handler that serves
// them, as nginx's request buffering does.
package bodybuf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A sync instance (or a gunicorn worker behind the proxy) serves one request
// at a time, so a client that uploads slowly holds it for as long as it
// likes: a handful of such clients stop the app, which is why gunicorn's
// sync workers are run behind nginx. The gateways of sync apps and CGI
// commands, and proxied routes, therefore read a request body before the
// request goes on: the first Config.Memory bytes in memory, the rest in an
// unlinked temporary file, within the body limit. A slow upload then costs
// a goroutine and its bytes, not a worker.

// Config configures request-body buffering.
type Config struct {
	// Memory is how much of a body is kept in memory; beyond it the body goes
	// to a temporary file. 0 turns buffering off: the instance reads the
	// body from the client as it arrives (for apps that answer while the
	// upload runs).
	Memory int64
	// Timeout is the longest silence while reading a body (408 beyond it);
	// 0 means 60 s, nginx's client_body_timeout.
	Timeout time.Duration
}

const defaultBodyTimeout = 60 * time.Second

// maxReadAhead bounds what is read ahead when there is no body limit: the
// rest of a larger body streams to the instance, so an unlimited route
// cannot be made to fill the disk.
const maxReadAhead = 16 << 20

// bufChunk is the read size, and the largest buffer kept in the pool.
const bufChunk = 32 << 10

var (
	errBodyTimeout  = errors.New("request body timeout")
	errBodyTooLarge = errors.New("request body too large")
)

// Pool recycles read-ahead buffers; the memory part of bodies up to
// bufChunk stays with them. The zero value is ready to use.
type Pool struct{ pool sync.Pool }

func (p *Pool) get() *Body {
	if b, ok := p.pool.Get().(*Body); ok {
		return b
	}
	return &Body{mem: make([]byte, 0, bufChunk)}
}

// Release closes b's file and recycles it; b may be nil (nothing was read
// ahead). The request's Body must not be read after it.
func (p *Pool) Release(b *Body) {
	if b == nil {
		return
	}
	if b.file != nil {
		b.file.Close()
	}
	mem := b.mem[:0]
	if cap(mem) > bufChunk {
		return // a large body's buffer goes to the collector
	}
	*b = Body{mem: mem}
	p.pool.Put(b)
}

// Body is a request body read ahead: memory first, then the file, then
// (past maxReadAhead) the rest of the client's body.
type Body struct {
	mem     []byte
	r       bytes.Reader
	file    *os.File // nil when the body fit in memory
	memDone bool     // the memory part has been read
	fileEOF bool
	rest    io.Reader // the unread rest of a body larger than maxReadAhead
}

func (b *Body) Read(p []byte) (int, error) {
	if !b.memDone {
		n, err := b.r.Read(p)
		if err != io.EOF {
			return n, err
		}
		b.memDone = true
		if n > 0 {
			return n, nil
		}
	}
	if b.file != nil && !b.fileEOF {
		n, err := b.file.Read(p)
		if err != io.EOF {
			return n, err
		}
		b.fileEOF = true
		if n > 0 {
			return n, nil
		}
	}
	if b.rest != nil {
		return b.rest.Read(p)
	}
	return 0, io.EOF
}

func (b *Body) Close() error { return nil } // Pool.Release frees it

// ReadAhead reads r's body per cfg, within limit (0: none), and replaces
// r.Body with it; with nothing to buffer it returns nil, true. When the body
// is too large (413), too slow (408) or broken it answers the client itself
// and returns false. The caller hands the Body to Release once the request
// is done.
func (p *Pool) ReadAhead(w http.ResponseWriter, r *http.Request, cfg Config, limit int64, log *slog.Logger) (*Body, bool) {
	if cfg.Memory <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true
	}
	return p.bufferBody(w, r, cfg, limit, log)
}

// Handler reads request bodies ahead per cfg before next serves them.
func Handler(cfg Config, limit int64, log *slog.Logger, next http.Handler) http.Handler {
	if cfg.Memory <= 0 {
		return next
	}
	p := &Pool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := p.ReadAhead(w, r, cfg, limit, log)
		if !ok {
			return
		}
		defer p.Release(b)
		next.ServeHTTP(w, r)
	})
}

func (p *Pool) bufferBody(w http.ResponseWriter, r *http.Request, cfg Config, limit int64, log *slog.Logger) (*Body, bool) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultBodyTimeout
	}
	rc := http.NewResponseController(w)
	b := p.get()
	ahead := limit
	if ahead <= 0 {
		ahead = maxReadAhead
	}
	n, eof, err := b.fill(r.Body, rc, cfg.Memory, ahead, limit > 0, timeout)
	if err != nil {
		// net/http reads what is left of a small unread body once the
		// handler returns: cut that read short, the connection closes.
		defer rc.SetReadDeadline(time.Now())
		p.Release(b)
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errBodyTooLarge), errors.As(err, &mbe):
			w.Header().Set("Connection", "close")
			http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
		case errors.Is(err, errBodyTimeout):
			w.Header().Set("Connection", "close")
			http.Error(w, "408 request timeout: the request body stopped arriving", http.StatusRequestTimeout)
		case errors.Is(err, errSpill):
			log.Error("cannot buffer a request body", "err", err)
			http.Error(w, "500 internal server error", http.StatusInternalServerError)
		default:
			// The client sent a broken body or went away: nobody to answer.
			w.Header().Set("Connection", "close")
			http.Error(w, "400 bad request: "+err.Error(), http.StatusBadRequest)
		}
		return nil, false
	}
	// Later reads (net/http's own, after the handler) must not inherit the
	// body's deadline.
	_ = rc.SetReadDeadline(time.Time{})
	b.r.Reset(b.mem)
	if b.file != nil {
		if _, err := b.file.Seek(0, io.SeekStart); err != nil {
			p.Release(b)
			log.Error("cannot buffer a request body", "err", err)
			http.Error(w, "500 internal server error", http.StatusInternalServerError)
			return nil, false
		}
	}
	if !eof {
		b.rest = r.Body
	}
	r.Body = b
	if eof && r.ContentLength < 0 {
		// A chunked upload now has a known length: tell the app, as nginx
		// tells its upstreams.
		r.ContentLength = n
		r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		r.TransferEncoding = nil
	}
	return b, true
}

var errSpill = errors.New("request body buffer file")

// fill reads src: the first mem bytes into b.mem, the rest into a
// temporary file, re-arming the read deadline before every read. It stops
// at the end (eof), or after ahead bytes: an error when ahead is the body
// limit, else the rest is left in src.
func (b *Body) fill(src io.Reader, rc *http.ResponseController, mem, ahead int64, isLimit bool, timeout time.Duration) (total int64, eof bool, err error) {
	var chunk []byte
	for {
		if total >= ahead && !isLimit {
			return total, false, nil
		}
		if derr := rc.SetReadDeadline(time.Now().Add(timeout)); derr != nil && !errors.Is(derr, http.ErrNotSupported) {
			return total, false, derr
		}
		var dst []byte
		toMem := int64(len(b.mem)) < mem
		if toMem {
			room := mem - int64(len(b.mem))
			if len(b.mem) == cap(b.mem) {
				b.mem = slices.Grow(b.mem, int(min(int64(max(cap(b.mem), bufChunk)), room)))
			}
			dst = b.mem[len(b.mem):cap(b.mem)]
			if int64(len(dst)) > room {
				dst = dst[:room]
			}
		} else {
			if chunk == nil {
				chunk = make([]byte, bufChunk)
			}
			dst = chunk
		}
		if !isLimit && int64(len(dst)) > ahead-total {
			dst = dst[:ahead-total]
		}
		n, rerr := src.Read(dst)
		total += int64(n)
		if isLimit && total > ahead {
			return total, false, errBodyTooLarge
		}
		if n > 0 {
			if toMem {
				b.mem = b.mem[:len(b.mem)+n]
			} else if werr := b.spill(dst[:n]); werr != nil {
				return total, false, werr
			}
		}
		if rerr == io.EOF {
			return total, true, nil
		}
		if rerr != nil {
			if isTimeout(rerr) {
				return total, false, errBodyTimeout
			}
			return total, false, rerr
		}
	}
}

func (b *Body) spill(p []byte) error {
	if b.file == nil {
		f, err := os.CreateTemp("", "wasmsrv-body-*")
		if err != nil {
			return fmt.Errorf("%w: %w", errSpill, err)
		}
		// Unlinked at once: the space goes back when the file is closed, even
		// if the process dies.
		os.Remove(f.Name())
		b.file = f
	}
	if _, err := b.file.Write(p); err != nil {
		return fmt.Errorf("%w: %w", errSpill, err)
	}
	return nil
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
