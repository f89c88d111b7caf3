package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// inbox collects what one subscription receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string
	got  chan struct{}
}

func newInbox() *inbox { return &inbox{got: make(chan struct{}, 1024)} }

func (b *inbox) deliver(m []byte) {
	b.mu.Lock()
	b.msgs = append(b.msgs, string(m))
	b.mu.Unlock()
	select {
	case b.got <- struct{}{}:
	default:
	}
}

func (b *inbox) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

// waitFor waits (bounded) until the inbox holds want.
func (b *inbox) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, m := range b.all() {
			if m == want {
				return
			}
		}
		select {
		case <-b.got:
		case <-deadline:
			t.Fatalf("%q never arrived; got %q", want, b.all())
		}
	}
}

// brokers runs fn against the in-process broker and against two Redis brokers on
// one real Redis (two nodes: what one publishes, the other's subscribers get).
func brokers(t *testing.T, fn func(t *testing.T, pub, sub Broker)) {
	t.Run("local", func(t *testing.T) {
		l := NewLocal()
		fn(t, l, l)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testkit.StartRedis(t)
		var nodes [2]Broker
		for i := range nodes {
			r, err := OpenRedis(context.Background(), rs.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			nodes[i] = r
		}
		fn(t, nodes[0], nodes[1])
	})
}

// hostileTopics are topics a guest may pick to reach another tenant's channel:
// pieces of the channel syntax, glob patterns, the hex of another app's name.
var hostileTopics = []string{"t", "}:t", "{62}:t", "wasmsrv:ps:{62}:t", "*", "t*", "?", "[a-z]", "../t", "t\x00", ""}

// TestTenantsCannotReceiveEachOthersMessages: app A, subscribed to every hostile
// topic (a Redis pattern among them), receives nothing that app B publishes on
// any topic, and B's subscribers get only B's; each sees its own at once. With
// Redis, publisher and subscriber are different nodes.
func TestTenantsCannotReceiveEachOthersMessages(t *testing.T) {
	brokers(t, func(t *testing.T, pub, sub Broker) {
		apps := []string{"a", "b", "ab", "A", "a-b", "61"} // "61" is the hex of "a"
		boxes := map[string]*inbox{}
		for _, app := range apps {
			for _, topic := range hostileTopics {
				box := newInbox()
				boxes[app+"|"+topic] = box
				unsub, err := sub.Subscribe(app, topic, box.deliver)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(unsub)
			}
		}
		ctx := context.Background()
		for _, app := range apps {
			for _, topic := range hostileTopics {
				if err := pub.Publish(ctx, app, topic, []byte(app+"|"+topic)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Every subscription gets its own message; a fence published after them
		// all arrives after any stray delivery would have (Redis keeps the order
		// of one publisher's messages to one subscriber connection).
		for key, box := range boxes {
			box.waitFor(t, key)
		}
		marker := newInbox()
		if unsub, err := sub.Subscribe("zz-last", "t2", marker.deliver); err == nil {
			defer unsub()
			_ = pub.Publish(ctx, "zz-last", "t2", []byte("fence"))
			marker.waitFor(t, "fence")
		}
		for key, box := range boxes {
			if got := box.all(); len(got) != 1 || got[0] != key {
				t.Errorf("subscription %s received %q, want only its own message", key, got)
			}
		}
	})
}

// TestChannelNamesAreOneToOne: no two (app, topic) pairs share a broker channel,
// and the app is recoverable from the channel, whatever the topic holds.
func TestChannelNamesAreOneToOne(t *testing.T) {
	apps := []string{"a", "b", "ab", "a-b", "a_b", "A", "61", "x61", strings.Repeat("z", 64)}
	seen := map[string]string{}
	for _, app := range apps {
		for _, topic := range append(hostileTopics, "{"+app+"}", "}", "}}", ":", strings.Repeat("t", MaxTopic)) {
			ch := channelName(app, topic)
			pair := fmt.Sprintf("%q/%q", app, topic)
			if other, dup := seen[ch]; dup {
				t.Errorf("%s and %s share channel %q", pair, other, ch)
			}
			seen[ch] = pair
			rest, ok := strings.CutPrefix(ch, "wasmsrv:ps:{")
			hexApp, gotTopic, ok2 := strings.Cut(rest, "}:")
			if !ok || !ok2 || gotTopic != topic || hexApp != fmt.Sprintf("%x", app) {
				t.Errorf("channel %q does not decode to %s", ch, pair)
			}
		}
	}
}

// TestRedisChannelsOnTheWire: what reaches Redis is the namespaced channel, so a
// client of the same Redis sees tenant B's topic "t" only on B's channel.
func TestRedisChannelsOnTheWire(t *testing.T) {
	rs := testkit.StartRedis(t)
	r, err := OpenRedis(context.Background(), rs.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opt, _ := redis.ParseURL(rs.URL)
	raw := redis.NewClient(opt)
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps := raw.PSubscribe(ctx, "*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the psubscribe confirmation
		t.Fatal(err)
	}
	if err := r.Publish(ctx, "b", "t", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Channel != "wasmsrv:ps:{62}:t" || m.Payload != "hi" {
		t.Fatalf("on the wire: channel %q payload %q", m.Channel, m.Payload)
	}
}

// TestUnsubscribeAndConcurrentUse: many subscribers of one topic come and go while
// another goroutine publishes; each gets messages only while subscribed, and the
// broker survives it under the race detector.
func TestUnsubscribeAndConcurrentUse(t *testing.T) {
	brokers(t, func(t *testing.T, pub, sub Broker) {
		ctx := context.Background()
		stop := make(chan struct{})
		var pubs sync.WaitGroup
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := pub.Publish(ctx, "app", "t", []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 5 {
					box := newInbox()
					unsub, err := sub.Subscribe("app", "t", box.deliver)
					if err != nil {
						t.Error(err)
						return
					}
					select {
					case <-box.got:
					case <-time.After(10 * time.Second):
						t.Error("a subscriber got nothing in 10 s")
					}
					unsub()
					// After unsubscribe returns, nothing more is delivered
					// beyond what was already in flight to this subscriber.
					n := len(box.all())
					time.Sleep(20 * time.Millisecond)
					if extra := len(box.all()) - n; extra > 1 {
						t.Errorf("%d messages after unsubscribe", extra)
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		pubs.Wait()
	})
}

// TestRedisResubscribesAfterRestart: when Redis restarts, the broker's
// subscriptions come back (go-redis resubscribes) and messages flow again.
func TestRedisResubscribesAfterRestart(t *testing.T) {
	rs := testkit.StartRedis(t)
	var nodes [2]*Redis
	for i := range nodes {
		r, err := OpenRedis(context.Background(), rs.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		nodes[i] = r
	}
	box := newInbox()
	unsub, err := nodes[1].Subscribe("app", "t", box.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	rs.Stop(t)
	rs.Start(t)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = nodes[0].Publish(ctx, "app", "t", []byte(fmt.Sprint("after-", i)))
		cancel()
		select {
		case <-box.got:
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message reached the subscriber within 30 s of the restart")
		}
	}
}

// TestPublishArguments: publish checks what a guest passes before anything reaches
// the broker: topic length, message size, and regions inside guest memory.
func TestPublishArguments(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, 1}))...)
	bin = append(bin, testkit.Section(7, testkit.Vec(testkit.Export("memory", 2, 0)))...)
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLocal()
	box := newInbox()
	for _, topic := range []string{strings.Repeat("t", MaxTopic), strings.Repeat("t", MaxTopic+1)} {
		unsub, _ := l.Subscribe("app", topic, box.deliver)
		defer unsub()
	}
	b, err := New(Options{Broker: l}).Open(ctx, plugins.AppInfo{Name: "app", Config: plugins.Section{"max_message": 100}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var publish api.GoModuleFunc
	for _, f := range b.Funcs {
		if f.Name == "publish" {
			publish = f.Fn
		}
	}
	call := func(topic, msg string) int32 {
		mod.Memory().Write(0, []byte(topic))
		mod.Memory().Write(1024, []byte(msg))
		stack := []uint64{0, uint64(len(topic)), 1024, uint64(len(msg))}
		publish(ctx, mod, stack)
		return int32(stack[0])
	}
	for _, c := range []struct {
		topic, msg string
		want       int32
	}{
		{strings.Repeat("t", MaxTopic), strings.Repeat("m", 100), pluginabi.OK},
		{strings.Repeat("t", MaxTopic+1), "m", pluginabi.ErrBadArgument},
		{"", "m", pluginabi.ErrBadArgument},
		{strings.Repeat("t", MaxTopic), strings.Repeat("m", 101), pluginabi.ErrTooLarge},
	} {
		if got := call(c.topic, c.msg); got != c.want {
			t.Errorf("publish(%d-byte topic, %d-byte message) = %s, want %s", len(c.topic), len(c.msg), pluginabi.StatusText(got), pluginabi.StatusText(c.want))
		}
	}
	if got := box.all(); len(got) != 1 {
		t.Errorf("the broker got %d messages, want the one accepted", len(got))
	}
	for _, r := range [][4]uint64{{65536, 1, 0, 1}, {0, 1, 65535, 2}, {0, 65537, 0, 1}} {
		func() {
			defer func() {
				var abiErr *plugins.ABIError
				if err, ok := recover().(error); !ok || !errors.As(err, &abiErr) {
					t.Errorf("publish%v did not trap", r)
				}
			}()
			stack := r[:]
			publish(ctx, mod, stack)
		}()
	}
}
