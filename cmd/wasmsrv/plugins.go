package main

import (
	"strings"

	"github.com/wasmsrv/wasmsrv/config"
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	plughttp "github.com/wasmsrv/wasmsrv/plugins/http"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
)

// installedPlugins are the plugins compiled into this binary. A third-party plugin is
// added by importing its package here, in your own build of cmd/wasmsrv, and
// appending its constructor (plugins/README.md, "Adding a plugin to a build").
func installedPlugins(cfg *config.Run) []plugins.Plugin {
	return []plugins.Plugin{
		pluglog.New(),
		plugconfig.New(),
		kv.New(kv.Options{Path: cfg.KVPath, RedisURL: cfg.RedisURL}),
		pubsub.New(pubsub.Options{RedisURL: cfg.RedisURL}),
		plughttp.New(),
	}
}

// runGrants turns the `wasmsrv run` flags into the app's grants and plugin sections.
func runGrants(cfg *config.Run) plugins.Grants {
	g := plugins.ParseGrants(cfg.Grants...)
	if _, ok := g["http"]; ok {
		g["http"] = plugins.Section{
			"allow":        cfg.HTTPAllow,
			"timeout":      cfg.HTTPTimeout.D().String(),
			"max_response": int64(cfg.HTTPMaxResponse),
		}
	}
	if _, ok := g["config"]; ok {
		g["config"] = plugins.Section{"vars": pairs(cfg.Vars), "secrets": pairs(cfg.Secrets)}
	}
	return g
}

func pairs(kvs []string) map[string]string {
	m := map[string]string{}
	for _, s := range kvs {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}
