// Package filter is a small rule-based request firewall: a rule denies a
// request when all of its conditions match (method, path pattern, header
// pattern, client CIDR). In dry-run mode matches are only logged.
package filter

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"sync/atomic"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
)

// Rule is one deny rule; empty conditions match everything.
type Rule struct {
	Name          string
	Methods       []string
	Path          string // regular expression on the URL path
	Header        string
	HeaderPattern string // regular expression on Header's value; empty means "present"
	CIDRs         []netip.Prefix
	Status        int // default 403
}

type compiled struct {
	Rule
	path, header *regexp.Regexp
}

// Filter is an http.Handler guarding next.
type Filter struct {
	rules   []compiled
	dryRun  bool
	trusted []netip.Prefix
	next    http.Handler
	log     *slog.Logger
	denied  *atomic.Int64
}

// New compiles rules; bad patterns are errors naming the rule. Denied
// requests are counted in denied, if not nil (dry runs deny nothing).
func New(rules []Rule, dryRun bool, trusted []netip.Prefix, denied *atomic.Int64, next http.Handler, log *slog.Logger) (*Filter, error) {
	f := &Filter{dryRun: dryRun, trusted: trusted, next: next, log: log, denied: denied}
	for i, r := range rules {
		c := compiled{Rule: r}
		if c.Status == 0 {
			c.Status = http.StatusForbidden
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("rule %d", i)
		}
		var err error
		if r.Path != "" {
			if c.path, err = regexp.Compile(r.Path); err != nil {
				return nil, fmt.Errorf("filter %s: path: %w", c.Name, err)
			}
		}
		if r.HeaderPattern != "" {
			if c.header, err = regexp.Compile(r.HeaderPattern); err != nil {
				return nil, fmt.Errorf("filter %s: header_pattern: %w", c.Name, err)
			}
		}
		f.rules = append(f.rules, c)
	}
	return f, nil
}

func (c *compiled) match(r *http.Request, ip func() netip.Addr) bool {
	if len(c.Methods) > 0 {
		found := false
		for _, m := range c.Methods {
			if m == r.Method {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if c.path != nil && !c.path.MatchString(r.URL.Path) {
		return false
	}
	if c.Header != "" {
		vals := r.Header.Values(c.Header)
		if len(vals) == 0 {
			return false
		}
		if c.header != nil {
			found := false
			for _, v := range vals {
				if c.header.MatchString(v) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	if len(c.CIDRs) > 0 && !forwarded.Trusted(ip(), c.CIDRs) {
		return false
	}
	return true
}

func (f *Filter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var addr netip.Addr
	ip := func() netip.Addr {
		if !addr.IsValid() {
			addr = forwarded.ClientIP(r, f.trusted)
		}
		return addr
	}
	for i := range f.rules {
		c := &f.rules[i]
		if !c.match(r, ip) {
			continue
		}
		if f.dryRun {
			f.log.Info("filter would deny", "rule", c.Name, "method", r.Method, "path", r.URL.Path, "client", ip(), "dry_run", true)
			break
		}
		if f.denied != nil {
			f.denied.Add(1)
		}
		f.log.Info("filter denied", "rule", c.Name, "method", r.Method, "path", r.URL.Path, "client", ip(), "status", c.Status)
		http.Error(w, fmt.Sprintf("%d %s", c.Status, http.StatusText(c.Status)), c.Status)
		return
	}
	f.next.ServeHTTP(w, r)
}
