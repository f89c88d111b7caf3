package kv

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared backend: every wasmsrv node pointing at the same Redis sees the
// same keys.
//
// Layout per app (the {tag} keeps one app's keys in one cluster slot):
//
//	wasmsrv:kv:{app}:d:<key>  the value (a string, with PX for a TTL)
//	wasmsrv:kv:{app}:i        sorted set of keys (score 0) for ordered listing
//	wasmsrv:kv:{app}:s        hash key → size, for the usage count
//	wasmsrv:kv:{app}:u        the app's byte usage
//
// Writes are Lua scripts, so the value, the index and the usage change atomically and
// a compare-and-swap is one round trip. Keys that expire leave the index (and the
// usage) when a list walks past them.
type Redis struct {
	c                       redis.UniversalClient
	setS, casS, delS, listS *redis.Script
	ownClient               bool
}

// put's group check: KEYS[5] is the group's set of its apps' key prefixes
// (this app's is ARGV[#ARGV], the group bound ARGV[#ARGV-1]); the usages are
// summed inside the script, so two apps of a group writing at once cannot pass
// its bound together. (A group spans cluster slots: it needs one Redis, not a
// cluster.)
const luaPut = `
local function put(member, val, ttl, maxb)
  local old = tonumber(redis.call('HGET', KEYS[3], member) or '0')
  local size = #member + #val
  local used = tonumber(redis.call('GET', KEYS[4]) or '0')
  maxb = tonumber(maxb)
  if maxb > 0 and used - old + size > maxb then return -1 end
  local gmax = tonumber(ARGV[#ARGV-1])
  if gmax > 0 and size > old then
    redis.call('SADD', KEYS[5], ARGV[#ARGV])
    local g = 0
    for _, p in ipairs(redis.call('SMEMBERS', KEYS[5])) do
      g = g + tonumber(redis.call('GET', p .. 'u') or '0')
    end
    if g - old + size > gmax then return -1 end
  end
  if tonumber(ttl) > 0 then
    redis.call('SET', KEYS[1], val, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], val)
  end
  redis.call('ZADD', KEYS[2], 0, member)
  redis.call('HSET', KEYS[3], member, size)
  redis.call('INCRBY', KEYS[4], size - old)
  return 1
end
`

const luaForget = `
local function forget(member)
  local old = redis.call('HGET', KEYS[3], member)
  if old then
    redis.call('HDEL', KEYS[3], member)
    redis.call('DECRBY', KEYS[4], tonumber(old))
  end
  redis.call('ZREM', KEYS[2], member)
end
`

// KEYS: data, index, sizes, usage, group. ARGV: member, value, ttl ms, max
// bytes, group max bytes, the app's key prefix.
const luaSet = luaPut + `return put(ARGV[1], ARGV[2], ARGV[3], ARGV[4])`

// ARGV: member, old, old absent (0/1), new, delete (0/1), ttl ms, max bytes,
// group max bytes, the app's key prefix.
const luaCAS = luaPut + luaForget + `
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if cur then return 0 end
elseif (not cur) or cur ~= ARGV[2] then
  return 0
end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
  forget(ARGV[1])
  return 1
end
return put(ARGV[1], ARGV[4], ARGV[6], ARGV[7])`

// ARGV: member.
const luaDel = luaForget + `
local n = redis.call('DEL', KEYS[1])
forget(ARGV[1])
return n`

// KEYS: index, (unused), sizes, usage. ARGV: data key prefix, min, max, count.
// Returns up to count+1 live keys; dead index entries met on the way are forgotten.
const luaList = luaForget + `
local out = {}
local want = tonumber(ARGV[4]) + 1
local min = ARGV[2]
local scanned = 0
while #out < want and scanned < 10000 do
  local page = redis.call('ZRANGEBYLEX', KEYS[2], min, ARGV[3], 'LIMIT', 0, 128)
  if #page == 0 then break end
  for _, m in ipairs(page) do
    scanned = scanned + 1
    if redis.call('EXISTS', ARGV[1] .. m) == 1 then
      if #out < want then table.insert(out, m) end
    else
      forget(m)
    end
    min = '(' .. m
  end
end
return out`

// OpenRedis connects to url ("redis://[:password@]host:port/db", "rediss://...") and
// checks the connection.
func OpenRedis(ctx context.Context, url string) (*Redis, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("kv: redis url: %w", err)
	}
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("kv: redis %s: %w", opt.Addr, err)
	}
	r := NewRedis(c)
	r.ownClient = true
	return r, nil
}

// NewRedis uses an existing client (closed by the caller, not by Close).
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{c: c,
		setS: redis.NewScript(luaSet), casS: redis.NewScript(luaCAS),
		delS: redis.NewScript(luaDel), listS: redis.NewScript(luaList)}
}

// Close closes the client if OpenRedis made it.
func (r *Redis) Close() error {
	if r.ownClient {
		return r.c.Close()
	}
	return nil
}

// redisTag returns the app's key prefix, one to one: no two app names share one,
// whatever they hold. Names of the app name set (plugins.AppInfo.Name), and of the
// wider set earlier versions kept as they are ([A-Za-z0-9._-]), stand in the tag
// as they are, so their keys do not move. Any other string (an embedder's name:
// config and Registry.Open refuse them) is '~' and its hex encoding: '~' is in no
// kept name, so an encoded name never equals a kept one. (Earlier builds wrote
// 'x' + hex, which is also the tag of the kept name "x<hex>": "a:b" and "x613a62"
// shared one namespace.)
func redisTag(app string) string {
	if app == "" {
		return "wasmsrv:kv:{~}:"
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "wasmsrv:kv:{~" + hex.EncodeToString([]byte(app)) + "}:"
		}
	}
	return "wasmsrv:kv:{" + app + "}:"
}

func (r *Redis) keys(app, key string) []string {
	t := redisTag(app)
	return []string{t + "d:" + key, t + "i", t + "s", t + "u"}
}

// writeKeys are keys with the group's set of its apps (the group's name hex
// encoded: any bytes).
func (r *Redis) writeKeys(app, key string, q Quota) []string {
	return append(r.keys(app, key), "wasmsrv:kv:g:"+hex.EncodeToString([]byte(q.Group)))
}

func ttlMs(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// Usage implements UsageStore.
func (r *Redis) Usage(ctx context.Context, app string) (int64, error) {
	n, err := r.c.Get(ctx, redisTag(app)+"u").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, app, key string) ([]byte, bool, error) {
	v, err := r.c.Get(ctx, redisTag(app)+"d:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kv: redis get: %w", err)
	}
	return v, true, nil
}

// Set implements Store.
func (r *Redis) Set(ctx context.Context, app, key string, val []byte, ttl time.Duration, q Quota) error {
	n, err := r.setS.Run(ctx, r.c, r.writeKeys(app, key, q), key, val, ttlMs(ttl), q.MaxBytes, q.GroupMaxBytes, redisTag(app)).Int()
	if err != nil {
		return fmt.Errorf("kv: redis set: %w", err)
	}
	if n < 0 {
		return ErrQuota
	}
	return nil
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, app, key string) (bool, error) {
	n, err := r.delS.Run(ctx, r.c, r.keys(app, key), key).Int()
	if err != nil {
		return false, fmt.Errorf("kv: redis delete: %w", err)
	}
	return n == 1, nil
}

// CAS implements Store.
func (r *Redis) CAS(ctx context.Context, app, key string, old []byte, oldAbsent bool, nv []byte, del bool, ttl time.Duration, q Quota) (bool, error) {
	n, err := r.casS.Run(ctx, r.c, r.writeKeys(app, key, q), key, old, b01(oldAbsent), nv, b01(del), ttlMs(ttl), q.MaxBytes, q.GroupMaxBytes, redisTag(app)).Int()
	if err != nil {
		return false, fmt.Errorf("kv: redis cas: %w", err)
	}
	if n < 0 {
		return false, ErrQuota
	}
	return n == 1, nil
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// List implements Store.
func (r *Redis) List(ctx context.Context, app, prefix, after string, max int) ([]string, bool, error) {
	lo := "-"
	if prefix != "" {
		lo = "[" + prefix
	}
	if after != "" && after >= prefix {
		lo = "(" + after
	}
	hi := "+"
	if end, ok := prefixEnd(prefix); ok {
		hi = "(" + end
	}
	t := redisTag(app)
	res, err := r.listS.Run(ctx, r.c, []string{t + "d:", t + "i", t + "s", t + "u"}, t+"d:", lo, hi, strconv.Itoa(max)).StringSlice()
	if err != nil {
		return nil, false, fmt.Errorf("kv: redis list: %w", err)
	}
	if len(res) > max {
		return res[:max], true, nil
	}
	return res, false, nil
}

// prefixEnd returns the smallest string greater than every string with prefix p.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}
