// Package appname is the rule for app names. An app's name is its tenant identity:
// plugins build their namespaces from it (Redis key prefixes and channels, bbolt
// buckets), logs tag records with it and the admin API reports by it. So that no
// two names can share a namespace, or break a key, log line or path they are put
// into, a name is 1 to MaxLen characters from A-Z, a-z, 0-9, '_' and '-', starting
// with a letter or digit. Names are case-sensitive. Every config path (`wasmsrv
// serve`'s apps.NAME keys, `wasmsrv run --name`) and apps.Open check it.
package appname

import "fmt"

// MaxLen is the longest app name in bytes.
const MaxLen = 64

// Allowed describes the accepted names, for messages and documentation.
const Allowed = "1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit"

// Check reports whether name is a valid app name; the error quotes the name and
// says what is allowed.
func Check(name string) error {
	if len(name) == 0 || len(name) > MaxLen {
		return fmt.Errorf("bad app name %q: want %s", name, Allowed)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("bad app name %q: want %s", name, Allowed)
		}
	}
	return nil
}

// TenantMaxLen is the longest tenant name in bytes.
const TenantMaxLen = 20

// TenantSep joins a tenant's name and its app's name into the app's namespace.
// Tenant names cannot contain it, so the first one splits a namespace back and no
// two (tenant, app) pairs share one.
const TenantSep = "_"

// TenantAllowed describes the accepted tenant names.
const TenantAllowed = "1-20 characters from a-z 0-9 -, starting with a letter or digit"

// CheckTenant reports whether name is a valid tenant name.
func CheckTenant(name string) error {
	if len(name) == 0 || len(name) > TenantMaxLen || name[0] == '-' {
		return fmt.Errorf("bad tenant name %q: want %s", name, TenantAllowed)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("bad tenant name %q: want %s", name, TenantAllowed)
		}
	}
	return nil
}

// Namespace is the name a tenant's app runs under (its plugins' namespaces, its
// log records): TENANT_APP. It checks both names and the length of the result.
func Namespace(tenant, app string) (string, error) {
	if err := CheckTenant(tenant); err != nil {
		return "", err
	}
	if err := Check(app); err != nil {
		return "", err
	}
	ns := tenant + TenantSep + app
	if len(ns) > MaxLen {
		return "", fmt.Errorf("bad app name %q: tenant %q's apps have at most %d characters", app, tenant, MaxLen-len(tenant)-len(TenantSep))
	}
	return ns, nil
}
