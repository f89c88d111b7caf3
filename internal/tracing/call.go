package tracing

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Call traces one request's way through a runtime pool: "queue wait" from Begin
// until an instance takes the request (Acquired), then "guest call" until End.
// Plugin calls the guest makes meanwhile are children of the guest call
// (Context). A nil *Call is off: every method returns at once, so a gateway's
// pooled exchange holds one pointer, nil unless the request is traced.
// Acquired may run on another goroutine than Begin and End (an async
// instance's owner).
type Call struct {
	app   string
	mu    sync.Mutex
	ctx   context.Context // the guest call's, once acquired; the request's before
	wait  time.Time
	guest trace.Span
	done  bool
}

// Begin starts tracing the request whose context is ctx, for app, if ctx
// carries a recording span; nil otherwise.
func Begin(ctx context.Context, app string) *Call {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return nil
	}
	return &Call{app: app, ctx: ctx, wait: time.Now()}
}

// Acquired ends the queue wait: instance took the request (0: a CGI run's
// fresh one) and the guest call starts.
func (c *Call) Acquired(instance uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.guest != nil {
		return
	}
	now := time.Now()
	tr := trace.SpanFromContext(c.ctx).TracerProvider().Tracer(ScopeName)
	app := attribute.String("wasmsrv.app", c.app)
	_, q := tr.Start(c.ctx, "queue wait", trace.WithTimestamp(c.wait), trace.WithAttributes(app))
	q.End(trace.WithTimestamp(now))
	attrs := []attribute.KeyValue{app}
	if instance != 0 { // 0: a CGI run, a fresh instance each time
		attrs = append(attrs, attribute.String("wasmsrv.instance", strconv.FormatUint(instance, 10)))
	}
	c.ctx, c.guest = tr.Start(c.ctx, "guest call", trace.WithTimestamp(now), trace.WithAttributes(attrs...))
}

// Context returns the context plugin calls of the request run in: the guest
// call's span once acquired; nil when c is nil.
func (c *Call) Context() context.Context {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

// End ends the guest call (or, when no instance took the request, the queue
// wait) with err, the pool's error if any.
func (c *Call) End(err error) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	c.done = true
	span := c.guest
	if span == nil {
		_, span = trace.SpanFromContext(c.ctx).TracerProvider().Tracer(ScopeName).Start(c.ctx, "queue wait",
			trace.WithTimestamp(c.wait), trace.WithAttributes(attribute.String("wasmsrv.app", c.app)))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
