package config

import (
	"slices"
	"strings"
	"time"
)

// Environment overrides, applied after the file and before validation so
// containers can change addresses and secrets without editing the file.
const (
	EnvListen          = "WASMSRV_LISTEN"           // replaces listeners[0].addr (adds one if none)
	EnvAdminAddr       = "WASMSRV_ADMIN_ADDR"       // admin.addr
	EnvAdminToken      = "WASMSRV_ADMIN_TOKEN"      // admin.token
	EnvLogLevel        = "WASMSRV_LOG_LEVEL"        // server.log_level
	EnvTrustedProxies  = "WASMSRV_TRUSTED_PROXIES"  // server.trusted_proxies, comma-separated
	EnvShutdownTimeout = "WASMSRV_SHUTDOWN_TIMEOUT" // server.shutdown_timeout
)

func applyEnv(c *Config, lookup func(string) (string, bool)) []error {
	var errs []error
	if v, ok := lookup(EnvListen); ok {
		if len(c.Listeners) == 0 {
			c.Listeners = append(c.Listeners, Listener{})
		}
		c.Listeners[0].Addr = v
	}
	if v, ok := lookup(EnvAdminAddr); ok {
		c.Admin.Addr = &v // "" turns the admin listener off, as admin.addr = "" does
	}
	if v, ok := lookup(EnvAdminToken); ok {
		c.Admin.Token = v
	}
	if v, ok := lookup(EnvLogLevel); ok {
		c.Server.LogLevel = v
	}
	if v, ok := lookup(EnvTrustedProxies); ok {
		c.Server.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.Server.TrustedProxies = append(c.Server.TrustedProxies, p)
			}
		}
	}
	if v, ok := lookup(EnvShutdownTimeout); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, &Error{File: c.Path, Key: EnvShutdownTimeout, Msg: "bad duration " + `"` + v + `"`})
		} else {
			c.Server.ShutdownTimeout = Duration(d)
		}
	}
	return errs
}

func sortStrings(s []string) { slices.Sort(s) }
