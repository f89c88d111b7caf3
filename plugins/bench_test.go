package plugins_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins/kv"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
)

// BenchmarkHostCall is the cost of one guest→host call from a Go guest: a no-op
// core call (wasmsrv.disconnected) against plugin calls (log.enabled: no work;
// config.get: a map lookup and a copy), and "alloc", the guest-side string the SDK's
// config.Lookup allocates per call, to tell guest cost from host cost. b.N calls run
// inside one request, so the request itself is amortised away. Run with
// -benchtime=2000000x.
func BenchmarkHostCall(b *testing.B) {
	reg := testRegistry(b, "", "")
	defer reg.Close()
	s := serve(b, reg, "bench", guest, allGrants(), 1)
	for _, what := range []string{"core", "log", "config", "alloc"} {
		b.Run(what, func(b *testing.B) {
			want(b, s.url+"/loop?what="+what+"&n=1000", "ok") // warm up
			b.ResetTimer()
			want(b, s.url+"/loop?what="+what+"&n="+strconv.Itoa(b.N), "ok")
		})
	}
}

// BenchmarkKVStore is get/set throughput of the backends from concurrent callers
// (host side, as the host functions call them).
func BenchmarkKVStore(b *testing.B) {
	ctx := context.Background()
	bolt, err := kv.OpenBolt(filepath.Join(b.TempDir(), "kv.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer bolt.Close()
	stores := map[string]kv.Store{"bolt": bolt}
	if url := startRedisOrEmpty(b); url != "" {
		r, err := kv.OpenRedis(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		stores["redis"] = r
	}
	val := make([]byte, 100)
	for _, name := range []string{"bolt", "redis"} {
		s := stores[name]
		if s == nil {
			continue
		}
		for i := 0; i < 1000; i++ {
			_ = s.Set(ctx, "bench", "k"+strconv.Itoa(i), val, 0, kv.Quota{})
		}
		b.Run(name+"/get", func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok, err := s.Get(ctx, "bench", "k"+strconv.Itoa(int(n.Add(1)%1000))); err != nil || !ok {
						b.Error("get failed", err)
						return
					}
				}
			})
		})
		b.Run(name+"/set-serial", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := s.Set(ctx, "bench", "k"+strconv.Itoa(i%1000), val, 0, kv.Quota{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/set", func(b *testing.B) {
			var n atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Set(ctx, "bench", "k"+strconv.Itoa(int(n.Add(1)%1000)), val, 0, kv.Quota{}); err != nil {
						b.Error("set failed", err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkFanout is chat fan-out: one op is one message published to a room of 100
// subscribers and delivered to all of them; msgs/s counts deliveries.
func BenchmarkFanout(b *testing.B) {
	brokers := map[string]pubsub.Broker{"local": pubsub.NewLocal()}
	if url := startRedisOrEmpty(b); url != "" {
		r, err := pubsub.OpenRedis(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		brokers["redis"] = r
	}
	const subs = 100
	for _, name := range []string{"local", "redis"} {
		br := brokers[name]
		if br == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			var got atomic.Int64
			var wg sync.WaitGroup
			want := int64(b.N) * subs
			done := make(chan struct{})
			var unsubs []func()
			for i := 0; i < subs; i++ {
				u, err := br.Subscribe("chat", "room", func([]byte) {
					if got.Add(1) == want {
						close(done)
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				unsubs = append(unsubs, u)
			}
			msg := []byte("alice: hello everyone")
			b.ResetTimer()
			start := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < b.N; i++ {
					_ = br.Publish(context.Background(), "chat", "room", msg)
				}
			}()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				b.Fatalf("delivered %d of %d", got.Load(), want)
			}
			wg.Wait()
			b.ReportMetric(float64(want)/time.Since(start).Seconds(), "msgs/s")
			for _, u := range unsubs {
				u()
			}
		})
	}
}

// startRedisOrEmpty starts a redis-server for a benchmark, or returns "" (the Redis
// cases are then left out) when it is not installed.
func startRedisOrEmpty(b *testing.B) string {
	if !redisInstalled() {
		return ""
	}
	return startRedis(b)
}
