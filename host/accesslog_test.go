package host

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readFromRecorder is a ResponseWriter with net/http's ReadFrom (sendfile).
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom int
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom++
	return io.Copy(r.ResponseRecorder, src)
}

func TestAccessLogKeepsReadFrom(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	h := AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(w, strings.NewReader("twelve bytes"), 12) // what http.ServeContent does with a file
	}), log)
	w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(w, httptest.NewRequest("GET", "/f.txt", nil))
	if w.readFrom != 1 {
		t.Errorf("the underlying ReadFrom ran %d times: static files would lose sendfile", w.readFrom)
	}
	if w.Body.String() != "twelve bytes" {
		t.Errorf("body %q", w.Body.String())
	}
	if s := logged.String(); !strings.Contains(s, "status=200") || !strings.Contains(s, "bytes_out=12") {
		t.Errorf("log record %q", s)
	}
}
