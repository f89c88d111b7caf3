package limit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Buckets are request-rate buckets several nodes share: a rate limit with a
// shared store holds across the cluster, not per node.
type Buckets interface {
	// Take takes one request from the bucket named key, which refills at rate
	// per second and holds burst. When ok is false the request is over the
	// limit and wait is how long until the next one fits. An error means
	// the store could not answer: the caller decides alone.
	Take(ctx context.Context, key string, rate float64, burst int) (ok bool, wait time.Duration, err error)
}

// gcra is the generic cell rate algorithm (a token bucket kept as one number,
// the theoretical arrival time TAT of the next request, in microseconds of the
// Redis server's clock, so the nodes' clocks do not matter): a request at now
// fits if TAT + interval - burst×interval <= now, and then moves TAT on by one
// interval from max(TAT, now). The key expires when the bucket would be full
// again. Numbers are formatted with %.0f: Lua's tostring would cut a
// microsecond timestamp to 14 digits.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, string.format('%.0f', allow_at - now)}
end
local ttl = math.ceil((new_tat - now) / 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {1, '0'}
`)

// RedisBuckets keeps the buckets in Redis, one key each (prefix + key) that
// expires once its bucket is full again. After a failure Redis is left alone
// for Backoff, so an unreachable Redis costs each request nothing more than a
// look at the clock; the limiters decide alone meanwhile.
type RedisBuckets struct {
	c      *redis.Client
	prefix string
	log    *slog.Logger
	// Backoff is how long Redis is skipped after it failed (default 1s).
	Backoff time.Duration

	skipUntil atomic.Int64 // unix nanoseconds
	down      atomic.Bool
}

// ErrSkipped is Take's error while Redis is in its back-off after a failure.
var ErrSkipped = errors.New("rate limit store: skipped after a failure")

// KeyPrefix starts every bucket's key in Redis.
const KeyPrefix = "wasmsrv:ratelimit:"

// NewRedisBuckets connects to the Redis at url (redis://host:port/db; the
// connection is made by the first Take). Its timeouts are short: a limit
// check must not hold a request long when Redis is slow.
func NewRedisBuckets(url string, log *slog.Logger) (*RedisBuckets, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("rate limit store: %w", err)
	}
	opt.DialTimeout = 250 * time.Millisecond
	opt.ReadTimeout = 250 * time.Millisecond
	opt.WriteTimeout = 250 * time.Millisecond
	opt.PoolTimeout = 250 * time.Millisecond
	opt.MaxRetries = 0
	opt.DialerRetries = 1
	return &RedisBuckets{c: redis.NewClient(opt), prefix: KeyPrefix, log: log, Backoff: time.Second}, nil
}

// Take implements Buckets.
func (b *RedisBuckets) Take(ctx context.Context, key string, rate float64, burst int) (bool, time.Duration, error) {
	now := time.Now().UnixNano()
	if now < b.skipUntil.Load() {
		return false, 0, ErrSkipped
	}
	interval := int64(math.Max(1, math.Round(1e6/rate)))
	res, err := gcra.Run(ctx, b.c, []string{b.prefix + key}, interval, max(burst, 1)).Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected answer %v", res)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, 0, ctx.Err() // the client left; Redis is not to blame
		}
		b.skipUntil.Store(time.Now().Add(b.Backoff).UnixNano())
		if !b.down.Swap(true) {
			b.log.Warn("rate limit store unreachable: each node applies its own limit until it is back", "err", err, "retry_in", b.Backoff)
		}
		return false, 0, fmt.Errorf("rate limit store: %w", err)
	}
	if b.down.Swap(false) {
		b.log.Info("rate limit store reachable again: limits are shared")
	}
	ok, _ := res[0].(int64)
	var waitUS int64
	if s, _ := res[1].(string); s != "" {
		_, _ = fmt.Sscan(s, &waitUS)
	}
	return ok == 1, time.Duration(waitUS) * time.Microsecond, nil
}

// Close closes the connections.
func (b *RedisBuckets) Close() error { return b.c.Close() }
