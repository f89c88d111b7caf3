package deploy

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/store"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// A Redis store that lost everything (restarted without persistence) is not a
// list of deletions: the running apps serve on. The first change written to
// it makes it the truth again.
func TestLostStoreKeepsApps(t *testing.T) {
	ctx := context.Background()
	r := testkit.StartRedis(t)
	st, err := store.OpenRedis(ctx, r.URL, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, config.Quotas{}, st)
	w := hello(t)
	f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"hosts":["web.test"],"settings":{"pool_size":1}}`))
	id := f.upload(t, w)
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(`{"version":"`+id+`"}`)); code != 200 {
		t.Fatalf("deploy: %d %s", code, b)
	}
	if f.m.Lookup("web.test") == nil {
		t.Fatal("web.test not served after the deploy")
	}

	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if f.m.Lookup("web.test") == nil {
		t.Fatal("a store that lost its state removed the running app")
	}

	// A change written to the emptied store gives it a new identity: the
	// node follows it again (web is not in it any more).
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutTenant(config.Tenant{Name: "acme"}) }); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if f.m.Lookup("web.test") != nil {
		t.Fatal("after a change to the new store, the node still serves what it no longer holds")
	}
}
