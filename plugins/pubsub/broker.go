package pubsub

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Broker moves messages between subscribers of one app's topics. Deliver must not
// block: it runs on the broker's goroutine (or the publisher's).
type Broker interface {
	Publish(ctx context.Context, app, topic string, msg []byte) error
	Subscribe(app, topic string, deliver func(msg []byte)) (unsubscribe func(), err error)
	Close() error
}

// channelName is the broker-wide name of an app's topic. The app part is encoded
// so no app name or topic can reach into another app's channels.
func channelName(app, topic string) string {
	return "wasmsrv:ps:{" + hex.EncodeToString([]byte(app)) + "}:" + topic
}

// fanout is the set of local subscribers per channel, shared by both brokers.
type fanout struct {
	mu   sync.RWMutex
	subs map[string]map[*func([]byte)]struct{}
}

func (f *fanout) add(ch string, d *func([]byte)) (first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[string]map[*func([]byte)]struct{}{}
	}
	m := f.subs[ch]
	if m == nil {
		m = map[*func([]byte)]struct{}{}
		f.subs[ch] = m
		first = true
	}
	m[d] = struct{}{}
	return first
}

func (f *fanout) remove(ch string, d *func([]byte)) (last bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.subs[ch]
	delete(m, d)
	if len(m) == 0 {
		delete(f.subs, ch)
		return true
	}
	return false
}

func (f *fanout) deliver(ch string, msg []byte) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for d := range f.subs[ch] {
		(*d)(msg)
	}
}

// Local is the in-process broker: instances of an app in this process see each
// other's messages.
type Local struct{ f fanout }

// NewLocal returns an in-process broker.
func NewLocal() *Local { return &Local{} }

// Publish implements Broker. msg is copied once and shared by all subscribers
// (read-only from here on).
func (l *Local) Publish(_ context.Context, app, topic string, msg []byte) error {
	l.f.deliver(channelName(app, topic), append([]byte(nil), msg...))
	return nil
}

// Subscribe implements Broker.
func (l *Local) Subscribe(app, topic string, deliver func([]byte)) (func(), error) {
	ch := channelName(app, topic)
	d := &deliver
	l.f.add(ch, d)
	return func() { l.f.remove(ch, d) }, nil
}

// Close implements Broker.
func (l *Local) Close() error { return nil }

// Redis is the broker for several nodes: messages go through Redis PUBLISH, and
// each process holds one subscriber connection for all its local subscribers.
type Redis struct {
	c      *redis.Client
	ps     *redis.PubSub
	f      fanout
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	// confirm holds the waiters for Redis's subscribe confirmation per channel.
	mu      sync.Mutex
	confirm map[string][]chan struct{}
}

// OpenRedis connects to url and starts the receiving goroutine.
func OpenRedis(ctx context.Context, url string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("pubsub: redis url: %w", err)
	}
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pubsub: redis %s: %w", opt.Addr, err)
	}
	r := &Redis{c: c, done: make(chan struct{}), confirm: map[string][]chan struct{}{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.ps = c.Subscribe(r.ctx)
	go r.receive()
	return r, nil
}

func (r *Redis) receive() {
	defer close(r.done)
	// go-redis re-subscribes after reconnecting; the channel closes with ps.Close.
	for m := range r.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024)) {
		switch m := m.(type) {
		case *redis.Message:
			r.f.deliver(m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				r.mu.Lock()
				for _, w := range r.confirm[m.Channel] {
					close(w)
				}
				delete(r.confirm, m.Channel)
				r.mu.Unlock()
			}
		}
	}
}

// Publish implements Broker.
func (r *Redis) Publish(ctx context.Context, app, topic string, msg []byte) error {
	if err := r.c.Publish(ctx, channelName(app, topic), msg).Err(); err != nil {
		return fmt.Errorf("pubsub: redis publish: %w", err)
	}
	return nil
}

// Subscribe implements Broker. The first local subscriber of a channel subscribes
// the shared connection; it waits for Redis to confirm, so a message published right
// after Subscribe returns is not missed.
func (r *Redis) Subscribe(app, topic string, deliver func([]byte)) (func(), error) {
	ch := channelName(app, topic)
	d := &deliver
	if r.f.add(ch, d) {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		defer cancel()
		w := make(chan struct{})
		r.mu.Lock()
		r.confirm[ch] = append(r.confirm[ch], w)
		r.mu.Unlock()
		err := r.ps.Subscribe(ctx, ch)
		if err == nil {
			select {
			case <-w:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		if err != nil {
			r.f.remove(ch, d)
			return nil, fmt.Errorf("pubsub: redis subscribe: %w", err)
		}
	}
	return func() {
		if r.f.remove(ch, d) {
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			defer cancel()
			_ = r.ps.Unsubscribe(ctx, ch)
		}
	}, nil
}

// Close implements Broker.
func (r *Redis) Close() error {
	r.cancel()
	err := r.ps.Close()
	<-r.done
	return fin(err, r.c.Close())
}

func fin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
