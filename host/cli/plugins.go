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
func installedPlugins(kvPath, redisURL string, extra []plugins.Plugin) []plugins.Plugin {
	return append([]plugins.Plugin{
		pluglog.New(),
		plugconfig.New(),
		kv.New(kv.Options{Path: kvPath, RedisURL: redisURL}),
		pubsub.New(pubsub.Options{RedisURL: redisURL}),
		plughttp.New(),
		sockets.New(sockets.Options{}),
	}, extra...)
}
