// Command wasmsrv is an application server for WebAssembly apps. Everything it
// does is in package host/cli; a binary with plugins of its own is the same
// call with cli.Options.Plugins (docs/custom-binary.md).
package main

import (
	"os"

	"github.com/wasmsrv/wasmsrv/host/cli"
)

// version is set at link time (-ldflags "-X main.version=..."); empty: the
// build info says.
var version = ""

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Options{Version: version}))
}
