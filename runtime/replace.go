package runtime

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/time/rate"
)

// replacer paces the background building of replacement instances, for both pool
// kinds: at most max(workers, 4) builds a second with a burst of workers, and an
// exponential backoff (100 ms up to 10 s) while builds fail, never shorter than
// the failed build took (an instance whose start function spins until the start
// timeout keeps a core busy for that long: the pause after it keeps a module
// that can never start to half a core at most). A module that crashes on every
// request, or cannot start at all, therefore never turns a pool into a busy
// instantiation loop.
type replacer struct {
	limiter *rate.Limiter
	log     *slog.Logger
	backoff time.Duration
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

func newReplacer(workers int, log *slog.Logger) *replacer {
	return &replacer{
		limiter: rate.NewLimiter(rate.Limit(max(workers, 4)), workers),
		log:     log,
		backoff: minBackoff,
	}
}

// nextInstance builds one instance at the paced rate. ok is false once ctx ends
// (the pool is closing). A build error is returned after its backoff has been
// waited out, so the caller records it and simply tries again.
func nextInstance[T any](ctx context.Context, r *replacer, build func(context.Context) (T, error)) (inst T, ok bool, err error) {
	if r.limiter.Wait(ctx) != nil {
		return inst, false, nil
	}
	start := time.Now()
	inst, err = build(ctx)
	if err == nil {
		r.backoff = minBackoff
		return inst, true, nil
	}
	wait := max(r.backoff, time.Since(start))
	r.log.Error("cannot start replacement instance", append(errAttrs(err), "retry_in", wait.Round(time.Millisecond))...)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return inst, false, err
	case <-t.C:
	}
	r.backoff = min(r.backoff*2, maxBackoff)
	return inst, true, err
}
