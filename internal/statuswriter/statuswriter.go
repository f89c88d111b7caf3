// Package statuswriter is the one ResponseWriter wrapper that notes the status
// a handler answered with, for the metrics, the trace spans and the http-wasm
// handler. It keeps what a handler may reach through the writer: Flush,
// Hijack (a WebSocket handshake), ReadFrom (net/http's sendfile path) and,
// through Unwrap, http.ResponseController's deadlines.
package statuswriter

import (
	"bufio"
	"io"
	"net"
	"net/http"
)

// Writer wraps a ResponseWriter and notes the final status written: the first
// non-interim one (100 Continue and 103 Early Hints are not the answer; 101
// is), 200 when the handler writes a body first, 101 when it hijacks the
// connection. The zero value with ResponseWriter set is ready; Reset readies
// one for reuse.
type Writer struct {
	http.ResponseWriter
	status int
}

// Reset points w at rw with no status, for a writer taken from a pool.
func (w *Writer) Reset(rw http.ResponseWriter) { w.ResponseWriter, w.status = rw, 0 }

// Status is the status written, 0 before one.
func (w *Writer) Status() int { return w.status }

// WriteHeader implements http.ResponseWriter.
func (w *Writer) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps net/http's sendfile path: io.Copy finds no ReaderFrom on an
// embedded interface.
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

// Hijack hands the connection over (a WebSocket handshake): the request
// counts as a 101, which the handshake writes on the connection itself.
func (w *Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

// Flush lets handlers that type-assert http.Flusher stream through it.
func (w *Writer) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap returns the wrapped writer (http.ResponseController).
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
