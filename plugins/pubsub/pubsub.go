// Package pubsub is the `pubsub` plugin (import module wasmsrv_pubsub, ABI.md):
// publish/subscribe between the instances of one app — in-process by default, through
// Redis when configured so every node sees every message. Topics are namespaced per
// app. In sync mode receive blocks up to a guest-given timeout, never past the
// request deadline, and gives up when the client goes away. In async mode it never
// blocks: notify arms a completion event (core EventPlugin) for the next message.
package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md). 1.1 added notify.
const Version = "1.1"

// Limits.
const (
	MaxTopic = 256
	// DefaultMaxMessage bounds a message in bytes.
	DefaultMaxMessage = 64 << 10
	// DefaultQueue is how many messages a subscription buffers before it drops
	// the oldest: a slow reader loses messages, it never slows the publisher.
	DefaultQueue = 256
	// DefaultMaxSubscriptions is per instance. An async instance carries many
	// connections, each usually with its own subscription.
	DefaultMaxSubscriptions = 1024
	// pollDisconnect is how often a blocked receive checks for a gone client.
	pollDisconnect = 250 * time.Millisecond
)

// Options configure the plugin for the whole process.
type Options struct {
	// RedisURL selects the Redis broker; empty means in-process.
	RedisURL string
	// Broker, if set, is used instead (tests, embedders).
	Broker Broker
}

// Config is the per-app section.
type Config struct {
	MaxMessage       int `json:"max_message"`
	Queue            int `json:"queue"`
	MaxSubscriptions int `json:"max_subscriptions"`
}

// Plugin is the pubsub plugin.
type Plugin struct {
	opts   Options
	mu     sync.Mutex
	broker Broker
}

// New returns the pubsub plugin; the broker is opened with the first app granted it.
func New(opts Options) *Plugin { return &Plugin{opts: opts, broker: opts.Broker} }

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "pubsub" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

// Close closes the broker.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broker == nil {
		return nil
	}
	err := p.broker.Close()
	p.broker = nil
	return err
}

func (p *Plugin) getBroker(ctx context.Context) (Broker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broker != nil {
		return p.broker, nil
	}
	if p.opts.RedisURL == "" {
		p.broker = NewLocal()
		return p.broker, nil
	}
	b, err := OpenRedis(ctx, p.opts.RedisURL)
	if err != nil {
		return nil, err
	}
	p.broker = b
	return b, nil
}

// Open implements plugins.Plugin.
func (p *Plugin) Open(ctx context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg Config
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	b, err := p.getBroker(ctx)
	if err != nil {
		return nil, err
	}
	a := &appPS{app: app.Name, broker: b, cfg: cfg, log: app.Logger.With("plugin", "pubsub")}
	s := plugins.Sig
	i32, i64 := plugins.I32, plugins.I64
	return &plugins.Binding{Funcs: []plugins.HostFunc{
		{Name: "publish", Params: s(i32, i32, i32, i32), Results: s(i32), Fn: a.publish},
		{Name: "subscribe", Params: s(i32, i32), Results: s(i32), Fn: a.subscribe},
		{Name: "receive", Params: s(i32, i32, i32, i32), Results: s(i64), Fn: a.receive},
		{Name: "unsubscribe", Params: s(i32), Results: s(i32), Fn: a.unsubscribe},
		{Name: "notify", Params: s(i32, i32, i32), Results: s(i32), Fn: a.notify},
	}}, nil
}

type appPS struct {
	app    string
	broker Broker
	cfg    Config
	log    *slog.Logger
}

// sub is one subscription. The broker goroutine fills q; the instance drains it.
type sub struct {
	q       chan []byte
	pending []byte // a message too big for the guest's last buffer, kept for retry
	unsub   func()
	dropped atomic.Uint64

	// armed is the notification an async guest armed with notify: fired (and
	// disarmed) by the first message that arrives after it was armed.
	armed plugins.Notification
}

func (s *sub) deliver(msg []byte) {
	for {
		select {
		case s.q <- msg:
			s.wake()
			return
		default:
		}
		// Full: drop the oldest so the newest gets in.
		select {
		case <-s.q:
			s.dropped.Add(1)
		default:
		}
	}
}

// wake fires the armed notification, if any: it is one-shot.
func (s *sub) wake() { s.armed.Fire() }

// arm sets the notification (replacing an earlier one, which then never fires)
// and fires it at once if a message is already waiting.
func (s *sub) arm(w plugins.Waker) {
	s.armed.Arm(w)
	// Checked after arming: a message delivered in between wakes it either way.
	if s.pending != nil || len(s.q) > 0 {
		s.wake()
	}
}

func (s *sub) disarm() { s.armed.Disarm() }

type subs struct {
	next uint32
	m    map[uint32]*sub
}

type subsKey struct{}

func instSubs(ctx context.Context, fn string) *subs {
	in := plugins.InstanceFrom(ctx)
	if in == nil {
		plugins.Trap(fn, "called outside an instance")
	}
	ss, _ := in.Value(subsKey{}).(*subs)
	if ss == nil {
		ss = &subs{m: map[uint32]*sub{}}
		in.SetValue(subsKey{}, ss)
		// A guest that forgets to unsubscribe (or dies) must not leave a
		// subscription filling up forever.
		in.OnClose(func() {
			for _, s := range ss.m {
				s.unsub()
				s.disarm()
			}
		})
	}
	return ss
}

func (a *appPS) topicOK(t []byte) bool { return len(t) > 0 && len(t) <= MaxTopic }

// publish(topic, topic_len, msg, msg_len) -> i32
func (a *appPS) publish(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_pubsub.publish"
	topic := plugins.Region(fn, mod, stack[0], stack[1])
	msg := plugins.Region(fn, mod, stack[2], stack[3])
	switch {
	case !a.topicOK(topic):
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
	case len(msg) > a.cfg.MaxMessage:
		stack[0] = plugins.Status(pluginabi.ErrTooLarge)
	default:
		if err := a.broker.Publish(ctx, a.app, string(topic), msg); err != nil {
			a.log.Warn("publish failed", "err", err)
			stack[0] = plugins.Status(pluginabi.ErrUnavailable)
			return
		}
		stack[0] = 0
	}
}

// subscribe(topic, topic_len) -> i32
func (a *appPS) subscribe(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_pubsub.subscribe"
	topic := plugins.Region(fn, mod, stack[0], stack[1])
	if !a.topicOK(topic) {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	ss := instSubs(ctx, fn)
	if len(ss.m) >= a.cfg.MaxSubscriptions {
		stack[0] = plugins.Status(pluginabi.ErrQuota)
		return
	}
	s := &sub{q: make(chan []byte, a.cfg.Queue)}
	unsub, err := a.broker.Subscribe(a.app, string(topic), s.deliver)
	if err != nil {
		a.log.Warn("subscribe failed", "err", err)
		stack[0] = plugins.Status(pluginabi.ErrUnavailable)
		return
	}
	s.unsub = unsub
	for {
		ss.next++
		if _, used := ss.m[ss.next]; ss.next != 0 && !used {
			break
		}
	}
	ss.m[ss.next] = s
	stack[0] = uint64(ss.next)
}

func lookup(ctx context.Context, fn string, h uint64) (*subs, *sub) {
	ss := instSubs(ctx, fn)
	s, ok := ss.m[uint32(h)]
	if !ok {
		plugins.Trap(fn, fmt.Sprintf("unknown subscription %d", uint32(h)))
	}
	return ss, s
}

// receive(sub, buf, limit, timeout_ms) -> i64
func (a *appPS) receive(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_pubsub.receive"
	_, s := lookup(ctx, fn, stack[0])
	buf, limit := stack[1], stack[2]
	plugins.Region(fn, mod, buf, limit)
	timeout := time.Duration(uint32(stack[3])) * time.Millisecond
	msg := s.pending
	if msg == nil {
		var status int32
		msg, status = a.wait(ctx, s, timeout)
		if status != 0 {
			stack[0] = plugins.Status(status)
			return
		}
	}
	n := plugins.Out(fn, mod, buf, limit, msg)
	if n > limit {
		s.pending = msg
	} else {
		s.pending = nil
	}
	stack[0] = n
}

// wait takes the next message, blocking up to timeout (sync mode).
func (a *appPS) wait(ctx context.Context, s *sub, timeout time.Duration) ([]byte, int32) {
	select {
	case m := <-s.q:
		return m, 0
	default:
	}
	in := plugins.InstanceFrom(ctx)
	if in.Async() {
		// An async instance's host calls run on the goroutine that serves all its
		// connections: never block it. The guest arms notify and waits for the
		// event (ABI.md, "Async mode").
		return nil, pluginabi.ErrWouldBlock
	}
	if timeout == 0 {
		return nil, pluginabi.ErrTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	poll := time.NewTicker(pollDisconnect)
	defer poll.Stop()
	for {
		select {
		case m := <-s.q:
			return m, 0
		case <-t.C:
			return nil, pluginabi.ErrTimeout
		case <-ctx.Done():
			// The instance's request deadline: the guest is about to be stopped.
			return nil, pluginabi.ErrClosed
		case <-poll.C:
			if in.Disconnected() {
				return nil, pluginabi.ErrClosed
			}
		}
	}
}

// unsubscribe(sub) -> i32
func (a *appPS) unsubscribe(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_pubsub.unsubscribe"
	ss, s := lookup(ctx, fn, stack[0])
	s.unsub()
	s.disarm()
	delete(ss.m, uint32(stack[0]))
	if d := s.dropped.Load(); d > 0 {
		a.log.Debug("subscription dropped messages (slow reader)", "dropped", d)
	}
	stack[0] = 0
}

// notify(sub, ctx, token) -> i32 (1.1): in async mode, arms a one-shot
// notification: EventPlugin with a = token is posted to connection ctx (0: to the
// instance) as soon as sub has a message to receive, at once if it already has.
func (a *appPS) notify(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_pubsub.notify"
	_, s := lookup(ctx, fn, stack[0])
	w, ok := plugins.InstanceFrom(ctx).Waker(fn, stack[1], uint32(stack[2]))
	if !ok {
		stack[0] = plugins.Status(pluginabi.ErrUnsupported) // sync mode (receive blocks) or a hook
		return
	}
	s.arm(w)
	stack[0] = 0
}
