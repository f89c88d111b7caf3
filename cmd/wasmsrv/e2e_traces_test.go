package main

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes every
// ExportTraceServiceRequest posted to /v1/traces and keeps the spans.
type otlpReceiver struct {
	URL      string
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	errs     []string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &otlpReceiver{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				rc.fail("gzip: %v", err)
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		var req coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
			rc.fail("%s %s (%s): %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err)
			http.Error(w, "bad export", 400)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					rc.services = append(rc.services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rc
}

func (rc *otlpReceiver) fail(format string, args ...any) {
	rc.mu.Lock()
	rc.errs = append(rc.errs, fmt.Sprintf(format, args...))
	rc.mu.Unlock()
}

// trace returns the received spans of trace id (hex).
func (rc *otlpReceiver) trace(t *testing.T, id string) []*tracepb.Span {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.errs) > 0 {
		t.Errorf("the receiver got bad exports: %q", rc.errs)
	}
	var out []*tracepb.Span
	for _, s := range rc.spans {
		if hex.EncodeToString(s.TraceId) == id {
			out = append(out, s)
		}
	}
	return out
}

func spanID(s *tracepb.Span) string   { return hex.EncodeToString(s.SpanId) }
func parentID(s *tracepb.Span) string { return hex.EncodeToString(s.ParentSpanId) }

// only returns the one span of spans named name with the given parent ("":
// any), failing the test unless there is exactly one.
func only(t *testing.T, spans []*tracepb.Span, name, parent string) *tracepb.Span {
	t.Helper()
	var found []*tracepb.Span
	for _, s := range spans {
		if s.Name == name && (parent == "" || parentID(s) == parent) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one span %q with parent %q, found %d among:\n%s", name, parent, len(found), dumpSpans(spans))
	}
	return found[0]
}

func dumpSpans(spans []*tracepb.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %q kind=%v parent=%s\n", spanID(s), s.Name, s.Kind, parentID(s))
	}
	return b.String()
}

// traceBackend is a plain HTTP server that records the traceparent and
// tracestate of each request it gets.
type traceBackend struct {
	URL string
	mu  sync.Mutex
	got []http.Header
}

func startTraceBackend(t *testing.T) *traceBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &traceBackend{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.got = append(b.got, r.Header.Clone())
		b.mu.Unlock()
		_, _ = io.WriteString(w, "backend says hi\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func (b *traceBackend) headers() []http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]http.Header(nil), b.got...)
}

// traceEnv turns traces on towards rc.
func traceEnv(rc *otlpReceiver) []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.URL, "OTEL_SERVICE_NAME=e2e-traces"}
}

// One request, one trace: the client's traceparent → the site's server span →
// queue wait and guest call of the fetch app → the guest's outbound call
// through the http plugin (a client span) → back into the site (its server
// span, a child of that client span) → the upstream route's client span → the
// backend, which receives a traceparent naming that client span. The spans
// are flushed at shutdown.
func TestE2ETracesOneRequestAcrossGuestPluginAndUpstream(t *testing.T) {
	rc := startOTLPReceiver(t)
	backend := startTraceBackend(t)
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[apps.fetch]
package = %q
grants = ["http", "config"]
[apps.fetch.plugins.http]
allow = ["127.0.0.1"]
[apps.fetch.plugins.config]
vars = { UPSTREAM = "unused" }

[apps.echo]
package = %q

[upstreams.backend]
servers = [{ url = %q }]

[[routes]]
path = "/fetch"
app = "fetch"

[[routes]]
path = "/echo"
app = "echo"

[[routes]]
path = "/proxy"
upstream = "backend"
`, sample("fetch"), sample("echo"), backend.URL))
	s := startWasmsrv(t, traceEnv(rc), cfg, "serve", "-c", cfg, "--cache-dir", e2eCache)
	c := httpClient(t)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const clientSpan = "00f067aa0ba902b7"
	req := mustRequest(t, http.MethodGet, s.URL+"/fetch/?url="+url.QueryEscape(s.URL+"/proxy/x"), nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	req.Header.Set("Tracestate", "vendor=abc")
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || body != "backend says hi\n" {
		t.Fatalf("GET /fetch via /proxy: %d %q\n%s", resp.StatusCode, body, s.logs())
	}

	// The guest sees the traceparent of the request span it runs in.
	const echoClientSpan = "00f067aa0ba902b8"
	req = mustRequest(t, http.MethodGet, s.URL+"/echo/", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+echoClientSpan+"-01")
	resp, body = do(t, c, req)
	var echo struct{ Headers [][2]string }
	if err := json.Unmarshal([]byte(body), &echo); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /echo/: %d %q %v", resp.StatusCode, body, err)
	}
	var guestSaw string
	for _, h := range echo.Headers {
		if h[0] == "traceparent" {
			guestSaw = h[1]
		}
	}

	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs())
	}
	spans := rc.trace(t, traceID)

	// The first request: the site's server span continues the client's trace.
	root := only(t, spans, "GET", clientSpan)
	if root.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("request span kind %v, want server", root.Kind)
	}
	only(t, spans, "queue wait", spanID(root))
	guest := only(t, spans, "guest call", spanID(root))
	only(t, spans, "wasmsrv_http.send", spanID(guest))
	out := only(t, spans, "GET", spanID(guest)) // the plugin's client span
	if out.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("outbound span kind %v, want client", out.Kind)
	}
	// The outbound request came back into the site: its server span is a child
	// of the plugin's client span, and the proxy's client span a child of it.
	inner := only(t, spans, "GET", spanID(out))
	up := only(t, spans, "upstream backend", spanID(inner))
	if up.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("upstream span kind %v, want client", up.Kind)
	}
	got := backend.headers()
	if len(got) != 1 {
		t.Fatalf("backend got %d requests, want 1", len(got))
	}
	if want := "00-" + traceID + "-" + spanID(up) + "-01"; got[0].Get("Traceparent") != want {
		t.Errorf("backend got traceparent %q, want %q (the upstream client span)", got[0].Get("Traceparent"), want)
	}
	if ts := got[0].Get("Tracestate"); ts != "vendor=abc" {
		t.Errorf("backend got tracestate %q, want the client's vendor=abc", ts)
	}

	// The echo request: its own server span, which the guest saw.
	echoRoot := only(t, spans, "GET", echoClientSpan)
	if want := "00-" + traceID + "-" + spanID(echoRoot) + "-01"; guestSaw != want {
		t.Errorf("the guest saw traceparent %q, want %q (its request span)", guestSaw, want)
	}
	rc.mu.Lock()
	services := rc.services
	rc.mu.Unlock()
	for _, name := range services {
		if name != "e2e-traces" {
			t.Errorf("service.name %q, want OTEL_SERVICE_NAME's e2e-traces", name)
		}
	}
}

// wasmsrv run, an async app: the request span continues the client's trace,
// with the queue wait and the guest call as its children; a hostile client's
// malformed traceparent and huge tracestate cost it nothing but its own trace.
func TestE2ETracesRunAsyncAndHostileHeaders(t *testing.T) {
	rc := startOTLPReceiver(t)
	s := startServerEnv(t, traceEnv(rc), sample("c-async-hello/main.wasm"))
	c := httpClient(t)
	if !strings.Contains(s.logs(), "traces on") || !strings.Contains(s.logs(), rc.URL) {
		t.Errorf("the start log does not say traces are on, and where to:\n%s", s.logs())
	}

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	const clientSpan = "b7ad6b7169203331"
	req := mustRequest(t, http.MethodGet, s.URL+"/", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	if resp, body := do(t, c, req); resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	for _, tp := range []string{"00-zz-yy-01", "00-" + traceID + "-" + clientSpan, strings.Repeat("0", 4000)} {
		req := mustRequest(t, http.MethodGet, s.URL+"/", nil)
		req.Header.Set("Traceparent", tp)
		req.Header.Set("Tracestate", strings.Repeat("k=v,", 12000))
		if resp, body := do(t, c, req); resp.StatusCode != 200 {
			t.Fatalf("GET / with traceparent %.40q: %d %q", tp, resp.StatusCode, body)
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs())
	}
	spans := rc.trace(t, traceID)
	root := only(t, spans, "GET", clientSpan)
	only(t, spans, "queue wait", spanID(root))
	only(t, spans, "guest call", spanID(root))
	if len(spans) != 3 {
		t.Errorf("trace %s has %d spans, want 3 (the hostile requests are traces of their own):\n%s", traceID, len(spans), dumpSpans(spans))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	roots := 0
	for _, sp := range rc.spans {
		if len(sp.ParentSpanId) == 0 {
			roots++
			if len(sp.TraceState) > 512 {
				t.Errorf("a span kept a tracestate of %d bytes", len(sp.TraceState))
			}
		}
	}
	if roots != 3 {
		t.Errorf("%d root spans, want 3 (one per hostile request)", roots)
	}
}

// A trace setting wasmsrv cannot honour stops it before it serves, naming the
// variable; OTEL_SDK_DISABLED wins over an endpoint.
func TestE2ETracesBadSettings(t *testing.T) {
	app := sample("c-hello/main.wasm")
	for _, tc := range []struct{ env, want string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"OTEL_TRACES_EXPORTER=jaeger", "OTEL_TRACES_EXPORTER"},
	} {
		r := runWasmsrv(t, time.Minute, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9", tc.env}, "run", "--listen", "127.0.0.1:0", app)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming %s", tc.env, r.code, r.stderr, tc.want)
		}
	}
	s := startServerEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9", "OTEL_SDK_DISABLED=true"}, app)
	if strings.Contains(s.logs(), "traces on") {
		t.Errorf("OTEL_SDK_DISABLED=true, yet traces are on:\n%s", s.logs())
	}
}

// An OTLP endpoint that refuses connections: requests are served as ever, and
// the exporter's failures (reported by the SDK while serving, through its
// process-wide error handler) arrive in the process's log as JSON records like
// every other line — the SDK's own logger would write raw text to stderr.
func TestE2ETracesExportFailureIsLogged(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	s := startServerEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + dead, "OTEL_EXPORTER_OTLP_TIMEOUT=1000",
		"OTEL_BSP_SCHEDULE_DELAY=50"}, sample("c-hello/main.wasm"), "--log-format", "json")
	if resp, body := get(t, httpClient(t), s.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	// The batch goes out 50 ms later and fails; the record follows.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(s.logs(), `"msg":"traces"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no record of the failed export while serving:\n%s", s.logs())
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs())
	}
	for _, line := range strings.Split(strings.TrimSpace(s.logs()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON record: %q", line)
		}
	}
}

// An async guest's outbound call: the http plugin's request runs on its own
// goroutine while the instance serves other events, and still continues the
// trace of the connection that made it (the instance's current event's
// request): its client span is a child of that request's guest call, and the
// backend receives its traceparent.
func TestE2ETracesAsyncOutboundCall(t *testing.T) {
	rc := startOTLPReceiver(t)
	backend := startTraceBackend(t)
	s := startServerEnv(t, traceEnv(rc), sample("fetch"), "--mode", "async", "--grant", "http,config",
		"--var", "UPSTREAM="+backend.URL+"/data", "--http-allow", strings.TrimPrefix(backend.URL, "http://"))
	const traceID = "5bf92f3577b34da6a3ce929d0e0e4736"
	const clientSpan = "10f067aa0ba902b7"
	req := mustRequest(t, http.MethodGet, s.URL+"/", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	if resp, body := do(t, httpClient(t), req); resp.StatusCode != 200 || body != "backend says hi\n" {
		t.Fatalf("GET /: %d %q\n%s", resp.StatusCode, body, s.logs())
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs())
	}
	spans := rc.trace(t, traceID)
	root := only(t, spans, "GET", clientSpan)
	guest := only(t, spans, "guest call", spanID(root))
	only(t, spans, "wasmsrv_http.send", spanID(guest))
	out := only(t, spans, "GET", spanID(guest))
	got := backend.headers()
	if len(got) != 1 {
		t.Fatalf("backend got %d requests, want 1", len(got))
	}
	if want := "00-" + traceID + "-" + spanID(out) + "-01"; got[0].Get("Traceparent") != want {
		t.Errorf("backend got traceparent %q, want %q (the plugin's client span)", got[0].Get("Traceparent"), want)
	}
}

// A CGI app: the run's wait for a slot and the command's run are the queue
// wait and the guest call of the request's trace.
func TestE2ETracesCGI(t *testing.T) {
	rc := startOTLPReceiver(t)
	s := startServerEnv(t, traceEnv(rc), sample("c-cgi/main.wasm"))
	const traceID = "6bf92f3577b34da6a3ce929d0e0e4736"
	const clientSpan = "20f067aa0ba902b7"
	req := mustRequest(t, http.MethodGet, s.URL+"/", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	if resp, body := do(t, httpClient(t), req); resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs())
	}
	spans := rc.trace(t, traceID)
	root := only(t, spans, "GET", clientSpan)
	only(t, spans, "queue wait", spanID(root))
	only(t, spans, "guest call", spanID(root))
}
