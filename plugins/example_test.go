package plugins_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/plugins"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
)

// Uptime is a complete third-party plugin: import module wasmsrv_uptime with one
// function, `millis() -> i64`, the milliseconds since the app was opened.
type Uptime struct{}

func (Uptime) Name() string    { return "uptime" }
func (Uptime) Version() string { return "1.0" }

// Open gives each app its own start time: per-app state is captured by the host
// function's closure, so the call needs no lookup.
func (Uptime) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg struct {
		Offset plugins.Duration `json:"offset"` // an example config key
	}
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	start := time.Now().Add(-time.Duration(cfg.Offset))
	return &plugins.Binding{Funcs: []plugins.HostFunc{{
		Name: "millis", Results: plugins.Sig(plugins.I64),
		Fn: func(_ context.Context, _ api.Module, stack []uint64) {
			stack[0] = uint64(time.Since(start).Milliseconds())
		},
	}}}, nil
}

// A binary lists its plugins once (cli.Options.Plugins adds to the built-in ones);
// apps then get what they are granted, here through the host's registry.
// A guest declares `//go:wasmimport wasmsrv_uptime millis` and is granted "uptime".
func Example() {
	reg, err := registry.New(pluglog.New(), Uptime{})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	ctx := context.Background()

	opened, err := reg.Open(ctx, "shop", registry.Grants{"uptime": {"offset": "1s"}}, nil)
	if err != nil {
		panic(err)
	}
	for _, m := range opened.HostModules() {
		fmt.Println(m.Name, len(m.Funcs), "functions, ABI", opened.Versions()[m.Name[len("wasmsrv_"):]])
	}
	_ = opened.Close(ctx)

	_, err = reg.Open(ctx, "shop", registry.Grants{"geoip": nil}, nil)
	fmt.Println(err)
	// Output:
	// wasmsrv_log 2 functions, ABI 1.0
	// wasmsrv_uptime 1 functions, ABI 1.0
	// app shop: grant "geoip": no such plugin in this build (have: log, uptime)
}
