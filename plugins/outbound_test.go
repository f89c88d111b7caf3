package plugins

import (
	"testing"
	"time"
)

// TestOutboundGroups: a group's requests per minute are one budget, whatever
// plugin or app takes from it; another group (even one whose name starts the
// same) has its own; the budget refills over the minute; a changed bound
// applies at once; a section that would let an app count as another's group
// is refused.
func TestOutboundGroups(t *testing.T) {
	var o Outbound
	now := time.Unix(1000, 0)
	acme := OutboundGroup{Group: "acme_", GroupPerMinute: 3}
	n := 0
	for range 10 {
		if o.Take(acme, now) {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("acme took %d of 3", n)
	}
	if !o.Take(OutboundGroup{Group: "acme", GroupPerMinute: 3}, now) || !o.Take(OutboundGroup{Group: "beta_", GroupPerMinute: 1}, now) {
		t.Error("another group was counted with acme_")
	}
	if !o.Take(OutboundGroup{}, now) {
		t.Error("no bound refused")
	}
	if o.Take(acme, now.Add(10*time.Second)) {
		t.Error("acme took a fourth 10 s later (one refills in 20 s)")
	}
	if !o.Take(acme, now.Add(21*time.Second)) {
		t.Error("acme got nothing back after 21 s")
	}
	// The operator lowers the bound: it holds at once.
	low := OutboundGroup{Group: "acme_", GroupPerMinute: 1}
	if o.Take(low, now.Add(22*time.Second)) {
		t.Error("a lowered bound let a request through")
	}
	for _, c := range []struct {
		g   OutboundGroup
		app string
		ok  bool
	}{
		{OutboundGroup{Group: "acme_", GroupPerMinute: 5}, "acme_shop", true},
		{OutboundGroup{Group: "acme_", GroupPerMinute: 5}, "beta_shop", false},
		{OutboundGroup{GroupPerMinute: 5}, "acme_shop", false},
		{OutboundGroup{Group: "acme_", GroupPerMinute: -1}, "acme_shop", false},
		{OutboundGroup{}, "anything", true},
	} {
		if err := c.g.Check(c.app); (err == nil) != c.ok {
			t.Errorf("Check(%+v, %s) = %v, want ok %v", c.g, c.app, err, c.ok)
		}
	}
}
