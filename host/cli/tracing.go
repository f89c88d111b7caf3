package cli

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/plugins"
)

// traceFlushTimeout bounds the export of the last spans at exit.
const traceFlushTimeout = 5 * time.Second

// startTracing builds the tracer provider the OTEL_* variables configure (nil
// when traces are off) and the registry of ps, whose host calls are traced
// when traces are on.
func startTracing(ctx context.Context, opts *Options, log *slog.Logger, ps []plugins.Plugin) (*sdktrace.TracerProvider, *registry.Registry, error) {
	tp, err := tracing.New(ctx, os.Getenv, versionString(opts.Version))
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	reg, err := registry.New(ps...)
	if err != nil {
		tracing.Shutdown(tp, traceFlushTimeout, log)
		return nil, nil, err
	}
	if tp != nil {
		// The SDK reports export failures through its own process-wide logger,
		// raw lines on stderr by default: route them into the process's log, as
		// logs.go does for the standard library's.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("traces", "err", err) }))
		otel.SetLogger(logr.FromSlogHandler(log.Handler()))
		reg = reg.Traced()
		log.Info("traces on: exporting OTLP over HTTP", "endpoint", traceEndpoint())
	}
	return tp, reg, nil
}

func traceEndpoint() string {
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		return v
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
}

// tracerOf is tp as a trace.TracerProvider, nil when traces are off (never a
// typed nil in an interface).
func tracerOf(tp *sdktrace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return nil
	}
	return tp
}
