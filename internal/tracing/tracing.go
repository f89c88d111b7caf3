// Package tracing is wasmsrv's OpenTelemetry traces: the tracer provider the
// standard OTEL_* variables configure (off unless an OTLP endpoint is set), the
// server span of a request (the client's W3C traceparent honoured), the spans of
// its way through a pool (queue wait, guest call), client spans for outbound
// calls (upstreams, the http plugin) with traceparent written into their
// headers, and spans around plugin host calls.
//
// Off, nothing here runs on a request: the server middleware is not installed,
// so no request context carries a span and every helper returns at its first
// test (a context lookup). Spans reach the helpers through contexts only (a
// span knows its provider): there is no global provider.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmsrv/wasmsrv/internal/statuswriter"
)

// ScopeName is the instrumentation scope of wasmsrv's spans.
const ScopeName = "github.com/wasmsrv/wasmsrv"

// MaxTraceState bounds the tracestate wasmsrv accepts and passes on, in bytes:
// list members beyond it are dropped from the end, as W3C Trace Context
// (§3.3.1.5) allows; 512 is what it asks every vendor to propagate at least.
const MaxTraceState = 512

// maxAttr bounds a span attribute taken from a request (a path, a host) unless
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT or OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT says otherwise.
const maxAttr = 1024

// Enabled reports whether the environment (getenv) turns traces on: an OTLP
// endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, as with Spin), OTEL_SDK_DISABLED is not
// "true" and OTEL_TRACES_EXPORTER is not "none". A setting wasmsrv cannot
// honour is an error naming the variable.
func Enabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "", "otlp":
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", v)
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			if v != "http/protobuf" {
				return false, fmt.Errorf("%s: %q is not supported: wasmsrv exports OTLP over HTTP (http/protobuf)", k, v)
			}
			break
		}
	}
	return true, nil
}

// New returns the tracer provider the environment configures, or nil when
// traces are off (Enabled). The exporter, the sampler (OTEL_TRACES_SAMPLER,
// default parentbased_always_on), the batch processor (OTEL_BSP_*) and the
// resource (OTEL_SERVICE_NAME, default "wasmsrv"; OTEL_RESOURCE_ATTRIBUTES)
// read their standard variables from the process environment. Shut it down
// (Shutdown) to flush the last spans.
func New(ctx context.Context, getenv func(string) string, version string) (*sdktrace.TracerProvider, error) {
	on, err := Enabled(getenv)
	if err != nil || !on {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later detectors win: the environment's service name over the default.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "wasmsrv"), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	limits := sdktrace.NewSpanLimits() // OTEL_SPAN_* variables
	if limits.AttributeValueLengthLimit < 0 {
		limits.AttributeValueLengthLimit = maxAttr
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(limits)), nil
}

// Shutdown flushes and stops tp (nil: nothing to do), bounded by timeout.
func Shutdown(tp *sdktrace.TracerProvider, timeout time.Duration, log *slog.Logger) {
	if tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		log.Warn("flushing traces", "err", err)
	}
}

// propagator is W3C Trace Context: traceparent and tracestate.
var propagator propagation.TraceContext

// inbound reads a request's trace headers for the propagator: tracestate bounded
// to MaxTraceState.
type inbound http.Header

func (h inbound) Get(key string) string {
	if key == "tracestate" {
		return BoundTraceState(http.Header(h).Values("Tracestate"))
	}
	return http.Header(h).Get(key)
}
func (h inbound) Set(string, string) {}
func (h inbound) Keys() []string     { return nil }

// BoundTraceState joins tracestate field lines (RFC 9110 §5.3) and drops list
// members from the end until the list fits in MaxTraceState bytes.
func BoundTraceState(lines []string) string {
	var s string
	if len(lines) == 1 {
		s = lines[0]
	} else {
		var b strings.Builder
		for i, l := range lines {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l)
			if b.Len() > MaxTraceState {
				break
			}
		}
		s = b.String()
	}
	if len(s) <= MaxTraceState {
		return s
	}
	s = s[:MaxTraceState+1]
	if i := strings.LastIndexByte(s, ','); i >= 0 {
		return s[:i]
	}
	return ""
}

// Server returns h with a server span around every request, a child of the
// client's traceparent when it sent a valid one (a malformed one is ignored: the
// request starts a trace). The request's traceparent and tracestate are
// replaced by the server span's, so what runs below (a guest, an upstream)
// sees the span it runs in.
func Server(tp trace.TracerProvider, h http.Handler) http.Handler {
	tr := tp.Tracer(ScopeName)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), inbound(r.Header))
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		ctx, span := tr.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
				attribute.String("url.scheme", scheme),
				attribute.String("server.address", r.Host),
				attribute.String("network.protocol.version", protoVersion(r)),
				attribute.String("client.address", r.RemoteAddr),
			))
		defer span.End()
		r.Header.Del("Traceparent")
		r.Header.Del("Tracestate")
		propagator.Inject(ctx, propagation.HeaderCarrier(r.Header))
		sw := &statuswriter.Writer{ResponseWriter: w}
		defer func() {
			code := sw.Status()
			if code == 0 {
				code = http.StatusOK
			}
			span.SetAttributes(attribute.Int("http.response.status_code", code))
			if code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(code))
			}
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

func protoVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	return "1." + string(rune('0'+r.ProtoMinor%10))
}

// Client starts a client span for an outbound HTTP request made on behalf of the
// request whose span ctx carries, and writes its traceparent (and tracestate)
// into hdr, replacing what was there. Without a span in ctx (traces off) it
// returns a no-op span and leaves hdr alone. The caller ends the span (End).
func Client(ctx context.Context, name string, hdr http.Header, attrs ...attribute.KeyValue) trace.Span {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return parent
	}
	ctx, span := parent.TracerProvider().Tracer(ScopeName).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	hdr.Del("Traceparent")
	hdr.Del("Tracestate")
	propagator.Inject(ctx, propagation.HeaderCarrier(hdr))
	return span
}

// End ends span with the outcome of an outbound HTTP call: the status code
// (0: none came) and the error, if any.
func End(span trace.Span, code int, err error) {
	if !span.IsRecording() {
		return
	}
	if code != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", code))
	}
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case code >= 500:
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}

// Start starts an internal span as a child of ctx's span, or returns ctx and a
// no-op span when ctx carries none.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(ScopeName).Start(ctx, name, trace.WithAttributes(attrs...))
}
