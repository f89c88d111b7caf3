package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestEnabled(t *testing.T) {
	const ep = "OTEL_EXPORTER_OTLP_ENDPOINT"
	for _, tc := range []struct {
		name    string
		env     func(string) string
		on      bool
		errWith string
	}{
		{"nothing set", env(), false, ""},
		{"endpoint", env(ep, "http://127.0.0.1:4318"), true, ""},
		{"traces endpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"), true, ""},
		{"sdk disabled", env(ep, "http://c", "OTEL_SDK_DISABLED", "true"), false, ""},
		{"exporter none", env(ep, "http://c", "OTEL_TRACES_EXPORTER", "none"), false, ""},
		{"exporter otlp", env(ep, "http://c", "OTEL_TRACES_EXPORTER", "otlp"), true, ""},
		{"exporter unknown", env(ep, "http://c", "OTEL_TRACES_EXPORTER", "zipkin"), false, "OTEL_TRACES_EXPORTER"},
		{"exporter set, no endpoint", env("OTEL_TRACES_EXPORTER", "otlp"), false, ""},
		{"grpc", env(ep, "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"traces protocol wins", env(ep, "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"), true, ""},
		{"traces grpc", env(ep, "http://c", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"), false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on, err := Enabled(tc.env)
			if on != tc.on || (err == nil) != (tc.errWith == "") || (err != nil && !strings.Contains(err.Error(), tc.errWith)) {
				t.Errorf("Enabled = %v, %v; want %v and an error naming %q", on, err, tc.on, tc.errWith)
			}
		})
	}
}

func TestNewOffIsNil(t *testing.T) {
	tp, err := New(context.Background(), env(), "v")
	if tp != nil || err != nil {
		t.Fatalf("New with nothing set = %v, %v; want nil, nil", tp, err)
	}
}

func recorder() (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
}

// A hostile client's trace headers: a malformed traceparent starts a trace of
// its own (never a crash, never its bytes passed on); a huge tracestate is
// cut to MaxTraceState at a member boundary before anything sees it.
func TestServerHostileTraceHeaders(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	bad := []string{
		"",
		"garbage",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",       // no flags
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero parent id
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // version ff is invalid
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",    // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx", // version 00 with extra
		"00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // not hex
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" + strings.Repeat("x", 1<<16),
		"00-4bf92f3577b34da6a3ce929d0e0e4736\x00-00f067aa0ba902b7-01",
	}
	for _, tp := range bad {
		rec, prov := recorder()
		var seen string
		h := Server(prov, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Get("Traceparent")
			w.WriteHeader(204)
		}))
		req := httptest.NewRequest("GET", "/x", nil)
		if tp != "" {
			req.Header.Set("Traceparent", tp)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		spans := rec.Ended()
		if w.Code != 204 || len(spans) != 1 {
			t.Fatalf("traceparent %.80q: status %d, %d spans", tp, w.Code, len(spans))
		}
		sp := spans[0]
		if sp.Parent().IsValid() {
			t.Errorf("traceparent %.80q was taken as a parent: %v", tp, sp.Parent())
		}
		if want := "00-" + sp.SpanContext().TraceID().String() + "-" + sp.SpanContext().SpanID().String() + "-01"; seen != want {
			t.Errorf("traceparent %.80q: the handler saw %.80q, want the server span's %q", tp, seen, want)
		}
	}

	// Two traceparent fields: the first is taken (W3C: a receiver picks one),
	// the request does not fail.
	rec, prov := recorder()
	h := Server(prov, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Add("Traceparent", good)
	req.Header.Add("Traceparent", "00-11111111111111111111111111111111-2222222222222222-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if sp := rec.Ended(); len(sp) != 1 || sp[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("two traceparents: spans %v", sp)
	}

	// A huge tracestate, in one field and in many.
	member := "vendor0=" + strings.Repeat("v", 200)
	huge := []string{strings.Repeat(member+",", 300), member}
	many := make([]string, 2000)
	for i := range many {
		many[i] = member
	}
	for _, states := range [][]string{huge, many, {strings.Repeat("k", 100000)}} {
		rec, prov := recorder()
		var seen []string
		h := Server(prov, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Values("Tracestate")
		}))
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Traceparent", good)
		for _, s := range states {
			req.Header.Add("Tracestate", s)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		sp := rec.Ended()
		if len(sp) != 1 || sp[0].Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Fatalf("a huge tracestate lost the parent: %v", sp)
		}
		if ts := sp[0].SpanContext().TraceState().String(); len(ts) > MaxTraceState {
			t.Errorf("span tracestate is %d bytes, want ≤ %d", len(ts), MaxTraceState)
		}
		if len(seen) > 1 || (len(seen) == 1 && len(seen[0]) > MaxTraceState) {
			t.Errorf("the handler saw a tracestate of %d fields, %d bytes", len(seen), len(strings.Join(seen, ",")))
		}
	}
}

func TestBoundTraceState(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"a=1"}, "a=1"},
		{[]string{"a=1", "b=2"}, "a=1,b=2"},
		{[]string{"a=" + strings.Repeat("x", 300), "b=" + strings.Repeat("y", 300)}, "a=" + strings.Repeat("x", 300)},
		{[]string{strings.Repeat("x", 600)}, ""},
	} {
		if got := BoundTraceState(tc.in); got != tc.want {
			t.Errorf("BoundTraceState(%.40q) = %.40q, want %.40q", tc.in, got, tc.want)
		}
	}
}

func TestServerRecordsStatus(t *testing.T) {
	rec, prov := recorder()
	h := Server(prov, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", nil))
	sp := rec.Ended()
	if len(sp) != 1 || sp[0].Name() != "POST" || sp[0].SpanKind() != trace.SpanKindServer || sp[0].Status().Code.String() != "Error" {
		t.Fatalf("spans %v", sp)
	}
	var code int64
	for _, a := range sp[0].Attributes() {
		if a.Key == "http.response.status_code" {
			code = a.Value.AsInt64()
		}
	}
	if code != 503 {
		t.Errorf("status attribute %d, want 503", code)
	}
}

// Client without a span in the context (traces off) touches nothing; with one
// it replaces a guest's own traceparent with its span's.
func TestClient(t *testing.T) {
	hdr := http.Header{"Traceparent": {"guest's own"}}
	span := Client(context.Background(), "GET", hdr)
	if span.IsRecording() || hdr.Get("Traceparent") != "guest's own" {
		t.Errorf("off: span recording %v, header %q", span.IsRecording(), hdr.Get("Traceparent"))
	}
	rec, prov := recorder()
	ctx, parent := prov.Tracer("t").Start(context.Background(), "parent")
	span = Client(ctx, "GET", hdr)
	End(span, 502, nil)
	parent.End()
	sp := rec.Ended()
	if len(sp) != 2 || sp[0].Parent().SpanID() != parent.SpanContext().SpanID() || sp[0].SpanKind() != trace.SpanKindClient {
		t.Fatalf("spans %v", sp)
	}
	if want := "00-" + sp[0].SpanContext().TraceID().String() + "-" + sp[0].SpanContext().SpanID().String() + "-01"; hdr.Get("Traceparent") != want {
		t.Errorf("outbound traceparent %q, want %q", hdr.Get("Traceparent"), want)
	}
}

func TestCall(t *testing.T) {
	c := Begin(context.Background(), "a")
	if c != nil {
		t.Fatal("Begin without a span is on")
	}
	c.Acquired(1) // nil: off
	c.End(errors.New("x"))
	if c.Context() != nil {
		t.Error("an off Call has a context")
	}

	rec, prov := recorder()
	ctx, req := prov.Tracer("t").Start(context.Background(), "request")
	if c = Begin(ctx, "app"); c == nil {
		t.Fatal("Begin with a recording span is off")
	}
	c.Acquired(7)
	if trace.SpanFromContext(c.Context()).SpanContext().SpanID() == req.SpanContext().SpanID() {
		t.Error("plugin context is not the guest call's")
	}
	c.Acquired(8) // a second event of the same connection changes nothing
	c.End(errors.New("trap"))
	c.End(nil)
	req.End()
	names := map[string]int{}
	for _, s := range rec.Ended() {
		names[s.Name()]++
		if s.Name() != "request" && s.Parent().SpanID() != req.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the request", s.Name())
		}
	}
	if names["queue wait"] != 1 || names["guest call"] != 1 {
		t.Errorf("spans %v", names)
	}

	// Never acquired (queue full): one queue wait span, with the error.
	rec, prov = recorder()
	ctx, req = prov.Tracer("t").Start(context.Background(), "request")
	c = Begin(ctx, "app")
	c.End(errors.New("queue full"))
	c.Acquired(1) // late: ignored
	req.End()
	if sp := rec.Ended(); len(sp) != 2 || sp[0].Name() != "queue wait" || sp[0].Status().Description != "queue full" {
		t.Errorf("spans %v", sp)
	}
}

type ctxKey int

// BenchmarkCallOff is what a request of a traced process pays when its context
// carries no span: the gateway's Begin (one context lookup through a request
// context of a few values, as net/http's and the router's) and the pool's
// Acquired. With traces off the gateway does not call Begin at all
// (GatewayConfig.Traced).
func BenchmarkCallOff(b *testing.B) {
	ctx := context.Background()
	for i := range 6 {
		ctx = context.WithValue(ctx, ctxKey(i), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := Begin(ctx, "app")
		if c != nil {
			b.Fatal("on")
		}
		c.Acquired(1)
		c.End(nil)
	}
}
