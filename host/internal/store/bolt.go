package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucket = []byte("hosting")

// Bolt is the embedded store: DIR/hosting.db (bbolt) and DIR/modules.
type Bolt struct {
	db  *bolt.DB
	mod modules
}

// Open opens (creating) the embedded store under dir.
func Open(dir string) (*Bolt, error) {
	mdir := filepath.Join(dir, "modules")
	if err := os.MkdirAll(mdir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "hosting.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", filepath.Join(dir, "hosting.db"), err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil || b.Get([]byte(EpochKey)) != nil {
			return err
		}
		return b.Put([]byte(EpochKey), []byte(NewEpoch()))
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	m := modules{dir: mdir}
	m.cleanTemp()
	return &Bolt{db: db, mod: m}, nil
}

type boltKV struct{ b *bolt.Bucket }

func (k boltKV) Get(key string) ([]byte, error) {
	v := k.b.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	return bytes.Clone(v), nil
}
func (k boltKV) Put(key string, val []byte) error { return k.b.Put([]byte(key), val) }
func (k boltKV) Delete(key string) error          { return k.b.Delete([]byte(key)) }
func (k boltKV) NextSeq() (uint64, error)         { return k.b.NextSequence() }
func (k boltKV) Scan(prefix string, fn func(string, []byte) error) error {
	c := k.b.Cursor()
	p := []byte(prefix)
	for key, val := c.Seek(p); key != nil && bytes.HasPrefix(key, p); key, val = c.Next() {
		if err := fn(string(key), bytes.Clone(val)); err != nil {
			return err
		}
	}
	return nil
}

// View implements Store.
func (s *Bolt) View(_ context.Context, fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(NewTx(boltKV{tx.Bucket(bucket)})) })
}

// Update implements Store.
func (s *Bolt) Update(_ context.Context, fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(NewTx(boltKV{tx.Bucket(bucket)})) })
}

// PutModule implements Store.
func (s *Bolt) PutModule(_ context.Context, wasm []byte) (string, error) { return s.mod.put(wasm) }

// ModulePath implements Store.
func (s *Bolt) ModulePath(_ context.Context, id string) (string, error) {
	p, err := s.mod.path(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("module %s: %w", id, err)
	}
	return p, nil
}

// Changes implements Store: one node, nobody else changes it.
func (s *Bolt) Changes() <-chan struct{} { return nil }

// Close implements Store.
func (s *Bolt) Close() error { return s.db.Close() }

var _ Store = (*Bolt)(nil)

// Path is the metadata file.
func (s *Bolt) Path() string { return s.db.Path() }
