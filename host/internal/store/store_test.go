package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
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

func TestHostClaims(t *testing.T) {
	s, _ := openTemp(t)
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
