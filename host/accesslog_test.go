package host

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

func TestObserveCombinedEscapes(t *testing.T) {
	var out bytes.Buffer
	h := Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "tea")
	}), AccessLogConfig{Format: AccessLogCombined, Out: &out, Query: true})
	req := httptest.NewRequest("GET", "/p%22?q=\"x\"", nil)
	req.Header.Set("User-Agent", "a\"b\\c\x01d\xc3\xa9")
	req.Header.Set("Referer", "r\nX")
	h.ServeHTTP(httptest.NewRecorder(), req)
	want := `192.0.2.1 - - [` // then the time
	line := out.String()
	if !strings.HasPrefix(line, want) || strings.Count(line, "\n") != 1 {
		t.Fatalf("line %q", line)
	}
	if _, rest, _ := strings.Cut(line, "] "); rest != `"GET /p%22?q=\x22x\x22 HTTP/1.1" 418 3 "r\x0AX" "a\x22b\x5Cc\x01d\xC3\xA9"`+"\n" {
		t.Errorf("combined line %q", rest)
	}
}

// The response carries the request's id whatever the handler set there; a
// client's id with several values is replaced.
func TestObserveResponseID(t *testing.T) {
	var seen []string
	h := Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Values("X-Request-Id")
		w.Header().Set("X-Request-Id", "the-handler's")
		w.Header().Add("X-Request-Id", "and-another")
		io.WriteString(w, "x")
	}), AccessLogConfig{Off: true})
	for _, tt := range []struct {
		sent []string
		keep bool
	}{{[]string{"abc"}, true}, {[]string{"a", "b"}, false}, {nil, false}, {[]string{"has space"}, false}} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["X-Request-Id"] = tt.sent
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		got := w.Result().Header.Values("X-Request-Id")
		if len(got) != 1 || len(seen) != 1 || got[0] != seen[0] {
			t.Errorf("sent %q: the handler saw %q, the client got %q", tt.sent, seen, got)
			continue
		}
		if tt.keep != (got[0] == "abc") {
			t.Errorf("sent %q: id %q", tt.sent, got[0])
		}
	}
}

// A connection taken over after a 101 is logged at the 101 and at its close,
// with the bytes it carried; one refused on the raw connection is logged once,
// with the status it answered.
func TestObserveHijackedConnection(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logged, mu: &mu}, nil))
	srv := httptest.NewServer(Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		if r.URL.Path == "/refuse" {
			brw.WriteString("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
			brw.Flush()
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(brw, buf); err != nil {
			t.Error(err)
			return
		}
		conn.Write([]byte("0123456789"))
	}), AccessLogConfig{Logger: log}))
	defer srv.Close()
	for _, path := range []string{"/up", "/refuse"} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\nX-Request-ID: id%s\r\n\r\nhello", path, strings.ReplaceAll(path, "/", "-"))
		io.ReadAll(c) // until the server closes
		c.Close()
	}
	srv.Close() // every handler has returned
	mu.Lock()
	defer mu.Unlock()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3:\n%s", len(recs), logged.String())
	}
	if r := recs[0]; r["msg"] != "request" || r["status"] != 101.0 || r["request_id"] != "id-up" {
		t.Errorf("first record %v", r)
	}
	if r := recs[1]; r["msg"] != "websocket closed" || r["status"] != 101.0 || r["bytes_in"] != 5.0 || r["request_id"] != "id-up" {
		t.Errorf("close record %v", r)
	}
	if out, _ := recs[1]["bytes_out"].(float64); out < 10 {
		t.Errorf("bytes_out %v, want the head and 10 bytes", recs[1]["bytes_out"])
	}
	if r := recs[2]; r["msg"] != "request" || r["status"] != 403.0 || r["request_id"] != "id-refuse" {
		t.Errorf("refused record %v", r)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
