package kv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded backend: one bbolt file per process, one bucket per app.
//
// Layout: bucket "apps" → bucket <app name> → bucket "d" (key → 8-byte expiry in
// Unix ms, 0 for none, then the value) and key "u" (the app's byte usage, 8 bytes).
// Expired entries are invisible at once and swept in the background.
type Bolt struct {
	db   *bolt.DB
	now  func() time.Time
	stop chan struct{}
	wg   sync.WaitGroup
}

const (
	bktApps  = "apps"
	bktData  = "d"
	keyUsage = "u"
)

// SweepInterval is how often expired entries are deleted from a Bolt store.
const SweepInterval = time.Minute

// OpenBolt opens (creating if needed) the bbolt file at path. A file already open in
// another process is an error after a second, not a hang.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("kv: %s is in use by another process (share state between processes with the Redis backend): %w", path, err)
		}
		return nil, fmt.Errorf("kv: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(bktApps))
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("kv: %w", err)
	}
	// Batch groups writers that arrive while a commit is in flight; its default
	// 10 ms wait would add 10 ms to every lone write (a hit counter at low load).
	db.MaxBatchDelay = time.Millisecond
	b := &Bolt{db: db, now: time.Now, stop: make(chan struct{})}
	b.wg.Add(1)
	go b.sweeper()
	return b, nil
}

// Close stops the sweeper and closes the file.
func (b *Bolt) Close() error {
	close(b.stop)
	b.wg.Wait()
	return b.db.Close()
}

func (b *Bolt) nowMs() uint64 { return uint64(b.now().UnixMilli()) }

func expiryOf(now time.Time, ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return uint64(now.Add(ttl).UnixMilli())
}

// live returns the value of a stored entry, or false if it expired (or is corrupt).
func live(entry []byte, nowMs uint64) ([]byte, bool) {
	if len(entry) < 8 {
		return nil, false
	}
	exp := binary.LittleEndian.Uint64(entry)
	if exp != 0 && exp <= nowMs {
		return nil, false
	}
	return entry[8:], true
}

// appBuckets returns the app's bucket and its data bucket; create says whether to
// make them (write transactions) or return nil (reads of an app with no data).
func appBuckets(tx *bolt.Tx, app string, create bool) (*bolt.Bucket, *bolt.Bucket, error) {
	apps := tx.Bucket([]byte(bktApps))
	if !create {
		ab := apps.Bucket([]byte(app))
		if ab == nil {
			return nil, nil, nil
		}
		return ab, ab.Bucket([]byte(bktData)), nil
	}
	ab, err := apps.CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return nil, nil, err
	}
	db, err := ab.CreateBucketIfNotExists([]byte(bktData))
	return ab, db, err
}

func usage(ab *bolt.Bucket) int64 {
	v := ab.Get([]byte(keyUsage))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(v))
}

// groupUsage sums the usage of the apps whose names start with group.
func groupUsage(tx *bolt.Tx, group string) int64 {
	apps := tx.Bucket([]byte(bktApps))
	p := []byte(group)
	var n int64
	c := apps.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if v == nil { // a bucket: an app
			n += usage(apps.Bucket(k))
		}
	}
	return n
}

func addUsage(ab *bolt.Bucket, delta int64) error {
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], uint64(max(usage(ab)+delta, 0)))
	return ab.Put([]byte(keyUsage), v[:])
}

// Usage implements UsageStore.
func (b *Bolt) Usage(_ context.Context, app string) (int64, error) {
	var n int64
	err := b.db.View(func(tx *bolt.Tx) error {
		ab, _, err := appBuckets(tx, app, false)
		if ab != nil {
			n = usage(ab)
		}
		return err
	})
	return n, err
}

// Get implements Store.
func (b *Bolt) Get(_ context.Context, app, key string) (val []byte, ok bool, err error) {
	now := b.nowMs()
	err = b.db.View(func(tx *bolt.Tx) error {
		_, d, _ := appBuckets(tx, app, false)
		if d == nil {
			return nil
		}
		if v, alive := live(d.Get([]byte(key)), now); alive {
			// bbolt's slices are valid only inside the transaction.
			val, ok = bytes.Clone(v), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("kv: get: %w", err)
	}
	return val, ok, nil
}

// put writes key in a write transaction, keeping the usage count and the quota.
// The group's usage is summed over its apps' buckets in the same transaction
// (bbolt has one writer at a time), so apps of a group writing at once cannot
// pass its quota together.
func put(tx *bolt.Tx, ab, d *bolt.Bucket, key string, val []byte, exp uint64, q Quota) error {
	k := []byte(key)
	var old int64
	if prev := d.Get(k); prev != nil {
		old = int64(len(k) + len(prev) - 8)
	}
	size := int64(len(k) + len(val))
	if q.MaxBytes > 0 && usage(ab)-old+size > q.MaxBytes {
		return ErrQuota
	}
	if q.GroupMaxBytes > 0 && size > old && groupUsage(tx, q.Group)-old+size > q.GroupMaxBytes {
		return ErrQuota
	}
	entry := make([]byte, 8+len(val))
	binary.LittleEndian.PutUint64(entry, exp)
	copy(entry[8:], val)
	if err := d.Put(k, entry); err != nil {
		return err
	}
	return addUsage(ab, size-old)
}

func remove(ab, d *bolt.Bucket, key []byte) (bool, error) {
	prev := d.Get(key)
	if prev == nil {
		return false, nil
	}
	size := int64(len(key) + len(prev) - 8)
	if err := d.Delete(key); err != nil {
		return false, err
	}
	return true, addUsage(ab, -size)
}

// Set implements Store. Writes go through bbolt's Batch: concurrent writers share
// one transaction and one fsync.
func (b *Bolt) Set(_ context.Context, app, key string, val []byte, ttl time.Duration, q Quota) error {
	exp := expiryOf(b.now(), ttl)
	// val aliases guest memory, which may change once this call returns: Batch can
	// run the function later on another goroutine, so copy first.
	val = bytes.Clone(val)
	err := b.db.Batch(func(tx *bolt.Tx) error {
		ab, d, err := appBuckets(tx, app, true)
		if err != nil {
			return err
		}
		return put(tx, ab, d, key, val, exp, q)
	})
	if err != nil && !errors.Is(err, ErrQuota) {
		return fmt.Errorf("kv: set: %w", err)
	}
	return err
}

// Delete implements Store.
func (b *Bolt) Delete(_ context.Context, app, key string) (bool, error) {
	now := b.nowMs()
	var existed bool
	err := b.db.Batch(func(tx *bolt.Tx) error {
		ab, d, _ := appBuckets(tx, app, false)
		existed = false
		if d == nil {
			return nil
		}
		_, existed = live(d.Get([]byte(key)), now)
		_, err := remove(ab, d, []byte(key))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("kv: delete: %w", err)
	}
	return existed, nil
}

// CAS implements Store.
func (b *Bolt) CAS(_ context.Context, app, key string, old []byte, oldAbsent bool, nv []byte, del bool, ttl time.Duration, q Quota) (bool, error) {
	now := b.now()
	exp := expiryOf(now, ttl)
	old, nv = bytes.Clone(old), bytes.Clone(nv)
	var swapped bool
	err := b.db.Batch(func(tx *bolt.Tx) error {
		swapped = false // Batch may run this function twice
		ab, d, err := appBuckets(tx, app, true)
		if err != nil {
			return err
		}
		cur, exists := live(d.Get([]byte(key)), uint64(now.UnixMilli()))
		if oldAbsent && exists || !oldAbsent && (!exists || !bytes.Equal(cur, old)) {
			return nil
		}
		if del {
			_, err = remove(ab, d, []byte(key))
		} else {
			err = put(tx, ab, d, key, nv, exp, q)
		}
		swapped = err == nil
		return err
	})
	if err != nil && !errors.Is(err, ErrQuota) {
		return false, fmt.Errorf("kv: cas: %w", err)
	}
	return swapped, err
}

// List implements Store.
func (b *Bolt) List(_ context.Context, app, prefix, after string, max int) (keys []string, more bool, err error) {
	now := b.nowMs()
	p := []byte(prefix)
	err = b.db.View(func(tx *bolt.Tx) error {
		_, d, _ := appBuckets(tx, app, false)
		if d == nil {
			return nil
		}
		c := d.Cursor()
		var k, v []byte
		if after != "" && after >= prefix {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		} else {
			k, v = c.Seek(p)
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if _, alive := live(v, now); !alive {
				continue
			}
			if len(keys) == max {
				more = true
				return nil
			}
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("kv: list: %w", err)
	}
	return keys, more, nil
}

func (b *Bolt) sweeper() {
	defer b.wg.Done()
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.Sweep()
		}
	}
}

// Sweep deletes expired entries of every app and corrects the usage counts.
func (b *Bolt) Sweep() error {
	now := b.nowMs()
	return b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bktApps)).ForEachBucket(func(name []byte) error {
			ab := tx.Bucket([]byte(bktApps)).Bucket(name)
			d := ab.Bucket([]byte(bktData))
			if d == nil {
				return nil
			}
			var dead [][]byte
			if err := d.ForEach(func(k, v []byte) error {
				if _, alive := live(v, now); !alive {
					dead = append(dead, bytes.Clone(k))
				}
				return nil
			}); err != nil {
				return err
			}
			for _, k := range dead {
				if _, err := remove(ab, d, k); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
