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
