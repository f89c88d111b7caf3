package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// backends runs a test on the embedded store and on Redis.
func backends(t *testing.T, test func(t *testing.T, s Store)) {
	t.Run("bolt", func(t *testing.T) {
		s, _ := openTemp(t)
		test(t, s)
	})
	t.Run("redis", func(t *testing.T) {
		r := testkit.StartRedis(t)
		s, err := OpenRedis(context.Background(), r.URL, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s)
	})
}

func TestHostClaims(t *testing.T) { backends(t, testHostClaims) }

func testHostClaims(t *testing.T, s Store) {
	ctx := context.Background()
	put := func(a App) error { return s.Update(ctx, func(tx *Tx) error { return tx.PutApp(a) }) }
	if err := put(App{Tenant: "a", Name: "web", Hosts: []string{"a.test", "www.a.test"}}); err != nil {
		t.Fatal(err)
	}
	// Another tenant cannot take it, and the refusal changes nothing.
	err := put(App{Tenant: "b", Name: "web", Hosts: []string{"b.test", "a.test"}})
	if !errors.Is(err, ErrHostTaken) {
		t.Fatalf("b claims a.test: %v, want ErrHostTaken", err)
	}
	s.View(ctx, func(tx *Tx) error {
		if _, err := tx.App("b", "web"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refused app was stored: %v", err)
		}
		if _, ok, _ := tx.Host("b.test"); ok {
			t.Error("the refused claim of b.test was stored")
		}
		return nil
	})
	// The same tenant moves a name from one app to another.
	if err := put(App{Tenant: "a", Name: "api", Hosts: []string{"www.a.test"}}); err != nil {
		t.Fatal(err)
	}
	s.View(ctx, func(tx *Tx) error {
		web, _ := tx.App("a", "web")
		if len(web.Hosts) != 1 || web.Hosts[0] != "a.test" {
			t.Errorf("web kept %v after api took www.a.test", web.Hosts)
		}
		o, _, _ := tx.Host("www.a.test")
		if o.App != "api" {
			t.Errorf("www.a.test owned by %+v", o)
		}
		return nil
	})
	// Deleting the tenant releases its names.
	s.Update(ctx, func(tx *Tx) error { return tx.DeleteTenant("a") })
	if err := put(App{Tenant: "b", Name: "web", Hosts: []string{"a.test"}}); err != nil {
		t.Fatalf("a.test after a was deleted: %v", err)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, dir := openTemp(t)
	ctx := context.Background()
	id, err := s.PutModule(ctx, []byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := s.PutModule(ctx, []byte("\x00asm\x01\x00\x00\x00")); id2 != id {
		t.Fatalf("same bytes, ids %s and %s", id, id2)
	}
	s.Update(ctx, func(tx *Tx) error {
		tx.PutTenant(config.Tenant{Name: "a", Tokens: []string{"sha256:x"}})
		tx.Log(Audit{Who: "operator", Tenant: "a", Action: "tenant.create"})
		tx.Log(Audit{Who: "operator", Tenant: "b", Action: "tenant.create"})
		return tx.PutApp(App{Tenant: "a", Name: "web", Active: id, Versions: []Version{{ID: id}}})
	})
	// A half-written upload a crash left behind is removed on open.
	os.WriteFile(filepath.Join(dir, "modules", ".upload-123"), []byte("half"), 0o600)
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := os.Stat(filepath.Join(dir, "modules", ".upload-123")); err == nil {
		t.Error("a half-written upload survived the reopen")
	}
	s2.View(ctx, func(tx *Tx) error {
		a, err := tx.App("a", "web")
		if err != nil || a.Active != id || a.Revision != 1 {
			t.Errorf("app after reopen: %+v %v", a, err)
		}
		tn, err := tx.Tenant("a")
		if err != nil || len(tn.Tokens) != 1 {
			t.Errorf("tenant after reopen: %+v %v (the token hashes must be kept)", tn, err)
		}
		log, _ := tx.AuditLog("a", 10)
		if len(log) != 1 || log[0].Tenant != "a" {
			t.Errorf("audit of a: %+v", log)
		}
		return nil
	})
	if p, err := s2.ModulePath(ctx, id); err != nil || !strings.HasSuffix(p, id+".wasm") {
		t.Errorf("module path: %q %v", p, err)
	}
}

func TestModuleIDsAreNeverPaths(t *testing.T) {
	s, _ := openTemp(t)
	for _, id := range []string{"", "../../etc/passwd", strings.Repeat("a", 63) + "/", strings.Repeat("A", 64), strings.Repeat("a", 65), "..", strings.Repeat("0", 62) + ".."} {
		if _, err := s.ModulePath(context.Background(), id); err == nil {
			t.Errorf("ModulePath(%q) accepted", id)
		}
	}
}

// TestRedisNodes: a change on one node is announced to the other, which reads
// it, modules included; racing updates of two nodes are serialised.
func TestRedisNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	ctx := context.Background()
	open := func() *Redis {
		s, err := OpenRedis(ctx, r.URL, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	id, err := a.PutModule(ctx, []byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	a.Update(ctx, func(tx *Tx) error { return tx.PutApp(App{Tenant: "t", Name: "web", Active: id}) })
	select {
	case <-b.Changes():
	case <-time.After(10 * time.Second):
		t.Fatal("node b heard of no change")
	}
	select {
	case <-a.Changes():
		t.Error("node a was told of its own change")
	default:
	}
	p, err := b.ModulePath(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); ModuleID(got) != id {
		t.Error("node b's copy of the module differs")
	}
	// 20 read-modify-writes of one record from both nodes: none is lost.
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Tx) error {
				app, err := tx.App("t", "web")
				if err != nil {
					return err
				}
				app.Hosts = append(app.Hosts, fmt.Sprintf("h%d.test", i))
				return tx.PutApp(app)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b.View(ctx, func(tx *Tx) error {
		app, _ := tx.App("t", "web")
		if len(app.Hosts) != 20 || app.Revision != 21 {
			t.Errorf("after 20 racing updates: %d hosts, revision %d", len(app.Hosts), app.Revision)
		}
		return nil
	})
}
