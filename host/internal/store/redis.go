package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the store of several nodes: the metadata and the modules live in
// Redis, each node keeps the modules it runs under its own directory, and a
// change is published so every node applies it at once.
//
// An Update holds a lock (SET NX with an expiry) while its function runs,
// reads through Redis and its own writes, and commits every write in one
// MULTI/EXEC: updates of all nodes are serialised and none is seen half done.
// A View reads Redis as it is (no snapshot).
type Redis struct {
	c       *redis.Client
	prefix  string
	mod     modules
	sub     *redis.PubSub
	changes chan struct{}
	self    string // this node's id, to skip its own notices
	stop    context.CancelFunc
}

const (
	redisLockTTL = 30 * time.Second
	redisPrefix  = "wasmsrv:hosting:"
)

// OpenRedis connects to url and keeps module copies under dir.
func OpenRedis(ctx context.Context, url, dir string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("store: redis_url: %w", err)
	}
	mdir := filepath.Join(dir, "modules")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("store: redis %s: %w", opt.Addr, err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	bctx, stop := context.WithCancel(context.Background())
	s := &Redis{c: c, prefix: redisPrefix, mod: modules{dir: mdir}, changes: make(chan struct{}, 1), self: hex.EncodeToString(id[:]), stop: stop}
	s.mod.cleanTemp()
	if err := c.SetNX(pctx, s.prefix+"kv:"+EpochKey, NewEpoch(), 0).Err(); err != nil {
		c.Close()
		stop()
		return nil, fmt.Errorf("store: redis %s: %w", opt.Addr, err)
	}
	s.sub = c.Subscribe(pctx, s.prefix+"changes")
	if _, err := s.sub.Receive(pctx); err != nil {
		s.sub.Close()
		c.Close()
		stop()
		return nil, fmt.Errorf("store: redis subscribe: %w", err)
	}
	go s.listen(bctx)
	return s, nil
}

// listen turns other nodes' change notices into Changes.
func (s *Redis) listen(ctx context.Context) {
	ch := s.sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			if msg.Payload == s.self {
				continue
			}
			select {
			case s.changes <- struct{}{}:
			default: // one pending notice covers this one
			}
		}
	}
}

// redisKV reads Redis through a transaction's own writes and buffers them.
type redisKV struct {
	ctx    context.Context
	s      *Redis
	writes map[string][]byte // nil value: deleted
	ro     bool
}

func (k *redisKV) Get(key string) ([]byte, error) {
	if v, ok := k.writes[key]; ok {
		return v, nil
	}
	b, err := k.s.c.Get(k.ctx, k.s.prefix+"kv:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

func (k *redisKV) Put(key string, val []byte) error {
	if k.ro {
		return errors.New("store: write in a read-only transaction")
	}
	k.writes[key] = val
	return nil
}

func (k *redisKV) Delete(key string) error {
	if k.ro {
		return errors.New("store: write in a read-only transaction")
	}
	k.writes[key] = nil
	return nil
}

func (k *redisKV) NextSeq() (uint64, error) {
	n, err := k.s.c.Incr(k.ctx, k.s.prefix+"seq").Result()
	return uint64(n), err
}

func (k *redisKV) Scan(prefix string, fn func(string, []byte) error) error {
	full := k.s.prefix + "kv:"
	vals := map[string][]byte{}
	iter := k.s.c.Scan(k.ctx, 0, full+escapeGlob(prefix)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(k.ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	for i := 0; i < len(keys); i += 500 {
		batch := keys[i:min(i+500, len(keys))]
		got, err := k.s.c.MGet(k.ctx, batch...).Result()
		if err != nil {
			return err
		}
		for j, v := range got {
			if s, ok := v.(string); ok {
				vals[strings.TrimPrefix(batch[j], full)] = []byte(s)
			}
		}
	}
	for key, v := range k.writes {
		if strings.HasPrefix(key, prefix) {
			if v == nil {
				delete(vals, key)
			} else {
				vals[key] = v
			}
		}
	}
	sorted := make([]string, 0, len(vals))
	for key := range vals {
		sorted = append(sorted, key)
	}
	sort.Strings(sorted)
	for _, key := range sorted {
		if err := fn(key, vals[key]); err != nil {
			return err
		}
	}
	return nil
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
	return r.Replace(s)
}

// View implements Store.
func (s *Redis) View(ctx context.Context, fn func(*Tx) error) error {
	return fn(NewTx(&redisKV{ctx: ctx, s: s, ro: true}))
}

// Update implements Store.
func (s *Redis) Update(ctx context.Context, fn func(*Tx) error) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	kv := &redisKV{ctx: ctx, s: s, writes: map[string][]byte{}}
	if err := fn(NewTx(kv)); err != nil {
		return err
	}
	if len(kv.writes) == 0 {
		return nil
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		// A store that lost everything gets a new identity with its first
		// change (Manager.Sync follows it from then on).
		p.SetNX(ctx, s.prefix+"kv:"+EpochKey, NewEpoch(), 0)
		for key, v := range kv.writes {
			if v == nil {
				p.Del(ctx, s.prefix+"kv:"+key)
			} else {
				p.Set(ctx, s.prefix+"kv:"+key, v, 0)
			}
		}
		p.Publish(ctx, s.prefix+"changes", s.self)
		return nil
	})
	return err
}

// lock takes the store's write lock, waiting for another node's to end.
func (s *Redis) lock(ctx context.Context) (func(), error) {
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	val := hex.EncodeToString(tok[:])
	key := s.prefix + "lock"
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 200*time.Millisecond) {
		ok, err := s.c.SetNX(ctx, key, val, redisLockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("store: redis lock: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for the redis lock: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
	return func() {
		// Release only our own lock (it may have expired and been taken).
		const script = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`
		s.c.Eval(context.WithoutCancel(ctx), script, []string{key}, val)
	}, nil
}

// PutModule implements Store: the module goes to Redis (once per id) and to
// this node's directory.
func (s *Redis) PutModule(ctx context.Context, wasm []byte) (string, error) {
	id, err := s.mod.put(wasm)
	if err != nil {
		return "", err
	}
	if err := s.c.SetNX(ctx, s.prefix+"module:"+id, wasm, 0).Err(); err != nil {
		return "", fmt.Errorf("store: redis: %w", err)
	}
	return id, nil
}

// ModulePath implements Store: this node's copy, fetched from Redis first when
// it has none (checked against its id).
func (s *Redis) ModulePath(ctx context.Context, id string) (string, error) {
	p, err := s.mod.path(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	b, err := s.c.Get(ctx, s.prefix+"module:"+id).Bytes()
	if err != nil {
		return "", fmt.Errorf("module %s: redis: %w", id, err)
	}
	if ModuleID(b) != id {
		return "", fmt.Errorf("module %s: the bytes in redis do not have that hash", id)
	}
	if _, err := s.mod.put(b); err != nil {
		return "", err
	}
	return p, nil
}

// Changes implements Store.
func (s *Redis) Changes() <-chan struct{} { return s.changes }

// Close implements Store.
func (s *Redis) Close() error {
	s.stop()
	return errors.Join(s.sub.Close(), s.c.Close())
}

var _ Store = (*Redis)(nil)
