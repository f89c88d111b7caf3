package cli

import (
	"strings"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	plughttp "github.com/wasmsrv/wasmsrv/plugins/http"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
	"github.com/wasmsrv/wasmsrv/plugins/sockets"
)

// installedPlugins are the plugins compiled into this binary: the built-in ones,
// then extra (Options.Plugins: a custom binary's, docs/custom-binary.md).
func installedPlugins(cfg *config.Run, extra []plugins.Plugin) []plugins.Plugin {
	return append([]plugins.Plugin{
		pluglog.New(),
		plugconfig.New(),
		kv.New(kv.Options{Path: cfg.KVPath, RedisURL: cfg.RedisURL}),
		pubsub.New(pubsub.Options{RedisURL: cfg.RedisURL}),
		plughttp.New(),
		sockets.New(sockets.Options{}),
	}, extra...)
}

// runGrants turns the `wasmsrv run` flags into the app's grants and plugin sections.
func runGrants(cfg *config.Run) registry.Grants {
	g := registry.ParseGrants(cfg.Grants...)
	if _, ok := g["http"]; ok {
		g["http"] = plugins.Section{
			"allow":        cfg.HTTPAllow,
			"timeout":      cfg.HTTPTimeout.D().String(),
			"max_response": int64(cfg.HTTPMaxResponse),
		}
	}
	if _, ok := g["sockets"]; ok {
		g["sockets"] = plugins.Section{
			"allow":                    cfg.SocketsAllow,
			"connect_timeout":          cfg.SocketsConnectTimeout.D().String(),
			"max_conns":                cfg.SocketsMaxConns,
			"max_instance_conns":       cfg.SocketsMaxInstanceConns,
			"max_bytes_in":             int64(cfg.SocketsMaxBytesIn),
			"max_bytes_out":            int64(cfg.SocketsMaxBytesOut),
			"bytes_window":             cfg.SocketsBytesWindow.D().String(),
			"tls_ca":                   cfg.SocketsTLSCA,
			"tls_server_name":          cfg.SocketsTLSServerName,
			"tls_insecure_skip_verify": cfg.SocketsTLSInsecure,
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
