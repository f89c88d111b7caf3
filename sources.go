// Package wasmsrv holds the sources every wasmsrv binary carries for apps that live
// outside this repository: `wasmsrv new` writes them into an app (see
// internal/scaffold), so the app builds against the SDK of the wasmsrv that made
// it, offline, without the module being published. Nothing else is here.
package wasmsrv

import "embed"

// Sources holds, under their paths in this repository: go.mod (for its go
// version), the Go SDK (sdk/go) with the two packages it imports (abi and
// plugins/pluginabi), the C headers (sdk/c/*.h) and the starter apps of
// `wasmsrv new` (sdk/templates).
//
//go:embed go.mod abi/*.go plugins/pluginabi/*.go sdk/go sdk/c/wasmsrv.h sdk/c/wasmsrv_plugins.h sdk/templates
var Sources embed.FS
