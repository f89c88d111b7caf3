package config

import (
	"slices"
	"strings"
)

// SiteEnv are the environment overrides of a serve file, applied after the file
// and before validation so containers can change addresses and secrets without
// editing the file. They are read as every WASMSRV_* variable is (ParseEnv); a
// variable that is set, even to "", overrides its key.
type SiteEnv struct {
	Listen          string   `env:"LISTEN" serve:"listeners[0].addr" help:"replaces the first listener's address (adds a listener if there is none)"`
	AdminAddr       string   `env:"ADMIN_ADDR" serve:"admin.addr" help:"the admin listener's address; empty: no admin listener"`
	AdminToken      string   `env:"ADMIN_TOKEN" serve:"admin.token" help:"the admin API's bearer token"`
	LogLevel        string   `env:"LOG_LEVEL" serve:"server.log_level" help:"debug, info, warn or error"`
	TrustedProxies  []string `env:"TRUSTED_PROXIES" envSeparator:"," serve:"server.trusted_proxies" help:"comma-separated IPs or CIDRs"`
	ShutdownTimeout Duration `env:"SHUTDOWN_TIMEOUT" serve:"server.shutdown_timeout" help:"grace for in-flight requests on SIGTERM/SIGINT"`
}

// The SiteEnv variables by name.
const (
	EnvListen          = EnvPrefix + "LISTEN"
	EnvAdminAddr       = EnvPrefix + "ADMIN_ADDR"
	EnvAdminToken      = EnvPrefix + "ADMIN_TOKEN"
	EnvLogLevel        = EnvPrefix + "LOG_LEVEL"
	EnvTrustedProxies  = EnvPrefix + "TRUSTED_PROXIES"
	EnvShutdownTimeout = EnvPrefix + "SHUTDOWN_TIMEOUT"
)

// applyEnv applies the SiteEnv variables set in environ to c.
func applyEnv(c *Config, environ map[string]string) error {
	e, err := ParseEnv[SiteEnv](environ)
	if err != nil {
		return err
	}
	set := func(name string) bool { _, ok := environ[EnvPrefix+name]; return ok }
	if set("LISTEN") {
		if len(c.Listeners) == 0 {
			c.Listeners = append(c.Listeners, Listener{})
		}
		c.Listeners[0].Addr = e.Listen
	}
	if set("ADMIN_ADDR") {
		addr := e.AdminAddr
		c.Admin.Addr = &addr // "" turns the admin listener off, as admin.addr = "" does
	}
	if set("ADMIN_TOKEN") {
		c.Admin.Token = e.AdminToken
	}
	if set("LOG_LEVEL") {
		c.Server.LogLevel = e.LogLevel
	}
	if set("TRUSTED_PROXIES") {
		c.Server.TrustedProxies = nil
		for _, p := range e.TrustedProxies {
			if p = strings.TrimSpace(p); p != "" {
				c.Server.TrustedProxies = append(c.Server.TrustedProxies, p)
			}
		}
	}
	if set("SHUTDOWN_TIMEOUT") {
		c.Server.ShutdownTimeout = e.ShutdownTimeout
	}
	return nil
}

func sortStrings(s []string) { slices.Sort(s) }
