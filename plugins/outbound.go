package plugins

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// OutboundGroup are the section keys of a plugin that counts outgoing requests
// for a group of apps (the http plugin's requests, the sockets plugin's
// connects): the apps whose names start with Group (a hosting tenant's
// namespace, "acme_") share GroupPerMinute.
type OutboundGroup struct {
	Group          string `json:"group"`
	GroupPerMinute int    `json:"group_per_minute"`
}

// Check refuses a bound without a group, a negative one, and a group the app's
// name is not in.
func (g OutboundGroup) Check(app string) error {
	return CheckGroup(app, g.Group, "group_per_minute", int64(g.GroupPerMinute))
}

// CheckGroup checks a section's bound on a group of apps (key names the
// bound): not negative, and a bound needs a group the app's name starts with,
// so no app counts itself as another's group.
func CheckGroup(app, group, key string, bound int64) error {
	switch {
	case bound < 0:
		return fmt.Errorf("%s %d is negative", key, bound)
	case bound > 0 && (group == "" || !strings.HasPrefix(app, group)):
		return fmt.Errorf("group %q (with %s): the app's name %q must start with it", group, key, app)
	}
	return nil
}

// Outbound counts the outgoing requests of groups of apps per minute: one
// token bucket per group (GroupPerMinute deep, refilled over a minute), shared
// by every plugin given the same Outbound (the binary gives http and sockets
// one), so a group's requests and connects take from one budget. Safe for
// concurrent use; the zero value is ready.
type Outbound struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// Take takes one request from g's group at now; false when the group has
// none left. Without a bound it is always true.
func (o *Outbound) Take(g OutboundGroup, now time.Time) bool {
	if g.GroupPerMinute <= 0 {
		return true
	}
	n := g.GroupPerMinute
	o.mu.Lock()
	if o.m == nil {
		o.m = map[string]*rate.Limiter{}
	}
	l := o.m[g.Group]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		o.m[g.Group] = l
	} else if l.Burst() != n {
		l.SetBurstAt(now, n) // the quota changed
		l.SetLimitAt(now, rate.Limit(float64(n)/60))
	}
	o.mu.Unlock()
	return l.AllowN(now, 1)
}
