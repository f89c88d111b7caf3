package wasmsrv

import (
	"unsafe"

	"github.com/wasmsrv/wasmsrv/abi"
)

// bufSize matches net/http's response buffer: small writes coalesce, a handler that
// writes less than this in total is sent in one piece with a Content-Length.
const bufSize = 4096

// ResponseWriter builds the response. Like net/http's, it buffers: bytes go to the
// host when the buffer fills, and reach the client on Flush or when the handler
// returns (the host may send them earlier). Headers may be
// changed until the first byte is sent.
type ResponseWriter struct {
	ctx      uint32
	status   int
	header   Header
	headSent bool // the host has sent the head to the client
	closed   bool
	buf      []byte
	hdrBuf   []byte
}

func (w *ResponseWriter) reset(ctx uint32) {
	w.ctx, w.status, w.headSent, w.closed = ctx, 0, false, false
	w.header.list = w.header.list[:0]
	w.buf = w.buf[:0] // allocated at the first Write: an idle WebSocket costs no buffer
}

// touched reports whether the handler set a status or wrote anything.
func (w *ResponseWriter) touched() bool {
	return w.status != 0 || w.headSent || w.closed || len(w.buf) > 0
}

// Header returns the response headers, to be changed before the first write.
func (w *ResponseWriter) Header() *Header { return &w.header }

// WriteHeader sets the status code. It has no effect once bytes were sent, nor
// for an informational (1xx) code: ABI v1 sends final responses only.
func (w *ResponseWriter) WriteHeader(status int) {
	if !w.headSent && (status < 100 || status >= 200) {
		w.status = status
	}
}

// Status returns the status code set so far (200 when none was set).
func (w *ResponseWriter) Status() int {
	if w.status == 0 {
		return 200
	}
	return w.status
}

// Write buffers p; it returns ErrClosed once the client is gone.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.buf == nil {
		w.buf = make([]byte, 0, bufSize)
	}
	if len(w.buf)+len(p) <= cap(w.buf) {
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	// A full buffer is passed on without a flush (as net/http's bufio
	// does), so the host may hold the response until the handler returns;
	// Flush is what asks for bytes to reach the client now.
	if err := w.send(w.buf, abi.WriteNoFlush); err != nil {
		return 0, err
	}
	w.buf = w.buf[:0]
	if len(p) >= cap(w.buf) {
		if err := w.send(p, abi.WriteNoFlush); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// WriteString is Write for strings, without a copy to []byte.
func (w *ResponseWriter) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Flush sends the head and everything buffered to the client now (for streaming and
// Server-Sent Events).
func (w *ResponseWriter) Flush() error {
	if w.closed {
		return ErrClosed
	}
	err := w.send(w.buf, 0)
	w.buf = w.buf[:0]
	return err
}

func (w *ResponseWriter) finish() {
	if !w.closed {
		_ = w.send(w.buf, abi.WriteEnd)
		w.closed = true
	}
}

// send passes the head (once) and p to the host.
func (w *ResponseWriter) send(p []byte, flags int32) error {
	if !w.headSent {
		w.hdrBuf = abi.AppendHeaderBlock(w.hdrBuf[:0], w.header.list)
		if rc := respStart(w.ctx, int32(w.Status()), unsafe.Pointer(&w.hdrBuf[0]), uint32(len(w.hdrBuf))); rc != abi.OK {
			if rc == abi.ErrBadArgument {
				panic("wasmsrv: invalid response status or headers")
			}
			w.closed = true
			return statusErr(rc)
		}
		w.headSent = true
	}
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		rc := respWrite(w.ctx, ptr, uint32(len(p)), flags)
		if rc == abi.ErrWouldBlock {
			// async shape: the host's buffer for this client is full; WRITABLE follows
			waitCtx(w.ctx)
			continue
		}
		if rc != abi.OK {
			w.closed = true
			return statusErr(rc)
		}
		return nil
	}
}
