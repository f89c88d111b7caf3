package cli

import (
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	plughttp "github.com/wasmsrv/wasmsrv/plugins/http"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
	"github.com/wasmsrv/wasmsrv/plugins/sockets"
)

// installedPlugins are the plugins compiled into this binary: the built-in ones,
// with the process-wide settings of kv and pubsub, then extra (Options.Plugins: a
// custom binary's, docs/custom-binary.md).
// The http and sockets plugins share one count of outgoing requests (a group's
// group_per_minute: a hosting tenant's outbound quota).
func installedPlugins(kvPath, redisURL string, extra []plugins.Plugin) []plugins.Plugin {
	out := &plugins.Outbound{}
	return append([]plugins.Plugin{
		pluglog.New(),
		plugconfig.New(),
		kv.New(kv.Options{Path: kvPath, RedisURL: redisURL}),
		pubsub.New(pubsub.Options{RedisURL: redisURL}),
		&plughttp.Plugin{Outbound: out},
		sockets.New(sockets.Options{Outbound: out}),
	}, extra...)
}
