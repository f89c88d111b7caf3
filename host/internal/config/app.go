package config

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// App is one Wasm app's settings: the one description `wasmsrv run` fills from its
// flags and WASMSRV_* variables and `wasmsrv serve` from a file's [apps.NAME] table,
// and appspec.Of turns into the running app. The tags name every source:
//
//	toml, yaml  the key in a serve file's [apps.NAME] table
//	flag        run's flag (--NAME)
//	env         run's variable, after the WASMSRV_ prefix
//	envDefault  the default, the same for run and serve (DefaultApp)
//	help        the text of run --help and of the settings table in README.md
//	plugin      (RunPlugins) the key of the plugin section the flag sets
//
// A field without a flag (module, package, plugins) is given another way to run:
// the APP argument, and the plugin flags of RunPlugins.
type App struct {
	// Module or Package is the app's code: a .wasm file, or a directory holding a Go
	// main package or C sources that is built for it. Run takes it as its APP
	// argument.
	Module  string `toml:"module" yaml:"module" help:"a .wasm module (run: the APP argument)"`
	Package string `toml:"package" yaml:"package" help:"a directory with a Go main package or C sources, built for the app (run: the APP argument)"`

	Mode     abi.Mode `toml:"mode" yaml:"mode" flag:"mode" env:"MODE" envDefault:"auto" help:"sync, async or cgi: the shape the app must have, checked against it (a Go package is built for it); auto is what the app declares (//wasmsrv:mode, a module's marker export), else sync"`
	PoolSize int      `toml:"pool_size" yaml:"pool_size" flag:"workers" env:"WORKERS" envDefault:"0" help:"instances in the pool (0 = 2×CPU+1 for sync apps, CPU count for async apps; CGI: runs at once)"`

	PoolIdleTimeout Duration `toml:"pool_idle_timeout" yaml:"pool_idle_timeout" flag:"pool-idle-timeout" env:"POOL_IDLE_TIMEOUT" envDefault:"0s" help:"give the pool's idle instances back after this long without requests, down to pool_min, and start them again on demand up to pool_size, the next request waiting for one (0 = the pool holds pool_size instances from the start)"`
	PoolMin         int      `toml:"pool_min" yaml:"pool_min" flag:"min-workers" env:"MIN_WORKERS" envDefault:"0" help:"with pool_idle_timeout: instances kept however idle the app (0 = scale to zero: the first request after the idle time starts one)"`

	Tenant    string   `toml:"tenant" yaml:"tenant" flag:"tenant" env:"TENANT" help:"the customer the app belongs to: apps of one tenant share one CPU share and budget (default: the app is its own tenant)"`
	CPUWeight int      `toml:"cpu_weight" yaml:"cpu_weight" flag:"cpu-weight" env:"CPU_WEIGHT" envDefault:"1" help:"the tenant's share of guest CPU time while the CPU is contended, relative to other tenants' (the same for every app of a tenant)"`
	CPUBudget Duration `toml:"cpu_budget" yaml:"cpu_budget" flag:"cpu-budget" env:"CPU_BUDGET" envDefault:"0s" help:"guest CPU time the tenant may use per minute, all its apps together (0 = unlimited); beyond it their requests get 503 with a Retry-After of the minute's rest"`

	QueueSize         int      `toml:"queue_size" yaml:"queue_size" flag:"queue-size" env:"QUEUE_SIZE" envDefault:"1024" help:"requests that may wait for a free instance before 503"`
	QueueWait         Duration `toml:"queue_wait" yaml:"queue_wait" flag:"queue-wait" env:"QUEUE_WAIT" envDefault:"10s" help:"longest wait for a free instance before 503"`
	RequestTimeout    Duration `toml:"request_timeout" yaml:"request_timeout" flag:"timeout" env:"TIMEOUT" envDefault:"30s" help:"per-request deadline; the guest is stopped, its instance replaced and the client gets 504"`
	StartTimeout      Duration `toml:"start_timeout" yaml:"start_timeout" flag:"start-timeout" env:"START_TIMEOUT" envDefault:"30s" help:"longest an instance may take to start (the module's start function, _initialize and the start hook); it is stopped beyond and the start retried"`
	Snapshot          bool     `toml:"snapshot" yaml:"snapshot" flag:"snapshot" env:"SNAPSHOT" envDefault:"true" help:"start instances after the first from a copy-on-write snapshot of one that has started (Go: ~10× faster, its untouched memory shared), with the Go runtime's random state fresh in each; an app whose start calls the host, reads randomness of its own or has mounts starts each instance afresh anyway (docs/rationale.md)"`
	MaxRequests       int      `toml:"max_requests" yaml:"max_requests" flag:"max-requests" env:"MAX_REQUESTS" envDefault:"0" help:"recycle an instance after this many requests (0 = never)"`
	MaxRequestsJitter int      `toml:"max_requests_jitter" yaml:"max_requests_jitter" flag:"max-requests-jitter" env:"MAX_REQUESTS_JITTER" envDefault:"0" help:"random extra requests per instance before recycling, so instances recycle at different times"`
	MemoryLimit       Size     `toml:"memory_limit" yaml:"memory_limit" flag:"memory-limit" env:"MEMORY_LIMIT" envDefault:"128MiB" help:"what one instance may take: linear memory, tables (8 bytes per entry) and the host's structures for its globals and segments (64KiB..4GiB)"`
	BodyLimit         Size     `toml:"body_limit" yaml:"body_limit" flag:"body-limit" env:"BODY_LIMIT" envDefault:"10MiB" help:"largest request body (413 beyond; 0 = unlimited)"`
	BufferBody        Size     `toml:"buffer_body" yaml:"buffer_body" flag:"buffer-body" env:"BUFFER_BODY" envDefault:"64KiB" help:"sync and CGI apps: read a request body before it takes an instance, this much in memory and the rest in an unlinked temp file, so a slow upload holds a goroutine, not an instance (0 = stream bodies to the instance)"`
	BodyTimeout       Duration `toml:"body_timeout" yaml:"body_timeout" flag:"body-timeout" env:"BODY_TIMEOUT" envDefault:"60s" help:"longest silence while a request body is read ahead (408 beyond)"`
	BufferResponse    Size     `toml:"buffer_response" yaml:"buffer_response" flag:"buffer-response" env:"BUFFER_RESPONSE" envDefault:"256KiB" help:"sync apps: hold a response up to this size until the app finishes, so its instance is free before a slow client has read it (a flush, X-Accel-Buffering: no or a larger response is written through; 0 = write through)"`

	LimitConcurrency    int      `toml:"limit_concurrency" yaml:"limit_concurrency" flag:"limit-concurrency" env:"LIMIT_CONCURRENCY" envDefault:"0" help:"async apps: in-flight connections per app before 503 (0 = only the per-instance cap)"`
	MaxConnsPerInstance int      `toml:"max_conns_per_instance" yaml:"max_conns_per_instance" flag:"max-conns-per-instance" env:"MAX_CONNS_PER_INSTANCE" envDefault:"10000" help:"async apps: in-flight connections per instance before 503"`
	EventTimeout        Duration `toml:"event_timeout" yaml:"event_timeout" flag:"event-timeout" env:"EVENT_TIMEOUT" envDefault:"5s" help:"async apps: deadline of one event call; an instance over it is replaced"`

	WSMaxMessage   Size     `toml:"ws_max_message" yaml:"ws_max_message" flag:"ws-max-message" env:"WS_MAX_MESSAGE" envDefault:"1MiB" help:"largest WebSocket message (closed with 1009 beyond)"`
	WSPingInterval Duration `toml:"ws_ping_interval" yaml:"ws_ping_interval" flag:"ws-ping-interval" env:"WS_PING_INTERVAL" envDefault:"20s" help:"ping a WebSocket silent for this long"`
	WSPingTimeout  Duration `toml:"ws_ping_timeout" yaml:"ws_ping_timeout" flag:"ws-ping-timeout" env:"WS_PING_TIMEOUT" envDefault:"20s" help:"close a pinged WebSocket that stays silent this long"`
	WSCompression  bool     `toml:"ws_compression" yaml:"ws_compression" flag:"ws-compression" env:"WS_COMPRESSION" envDefault:"false" help:"offer permessage-deflate to WebSocket clients"`
	WSSendBuffer   Size     `toml:"ws_send_buffer" yaml:"ws_send_buffer" flag:"ws-send-buffer" env:"WS_SEND_BUFFER" envDefault:"256KiB" help:"bytes held for one WebSocket client that has not taken them; beyond, the app's sends wait (one larger message goes alone; a client that takes nothing for 10s is closed with 1013)"`
	WSOrigins      []string `toml:"ws_origins" yaml:"ws_origins" flag:"ws-origins" env:"WS_ORIGINS" envSeparator:"," help:"web origins besides the app's own whose pages may open WebSockets: https://app.example.com, https://*.example.com, or * for any (default: same origin only; others get 403)"`

	LogRate Size `toml:"log_rate" yaml:"log_rate" flag:"log-rate" env:"LOG_RATE" envDefault:"256KiB" help:"the app's log budget per second: bytes its guests' stdout, stderr and log plugin records may add to the log, all instances together, escapes included (lines beyond it are dropped and counted in a warning every 10s)"`

	// CGI apps (docs/cgi.md) and http-wasm handlers (docs/http-wasm.md).
	Argv           string `toml:"argv" yaml:"argv" flag:"argv" env:"ARGV" envDefault:"${SCRIPT_NAME} ${ARGS}" help:"CGI apps: the command's argv, a WAGI template: ${SCRIPT_NAME} is the request path, ${ARGS} the query's name=value pairs, one argument each"`
	HTTPWasmConfig string `toml:"http_wasm_config" yaml:"http_wasm_config" flag:"http-wasm-config" env:"HTTP_WASM_CONFIG" help:"http-wasm guests: what get_config returns (a Traefik plugin: its config as JSON); @FILE reads it from a file (in a site file, relative to it)"`
	DefaultStatus  int    `toml:"default_status" yaml:"default_status" flag:"default-status" env:"DEFAULT_STATUS" envDefault:"404" help:"http-wasm guests: the status of a request the guest passes on to the next handler, there being none after it"`

	Env    map[string]string `toml:"env" yaml:"env" flag:"env" env:"APP_ENV" envSeparator:";" envKeyValSeparator:"=" help:"KEY=VALUE in the guest's environment, which inherits nothing (flag: repeatable; variable: ;-separated)"`
	Mounts []Mount           `toml:"mounts" yaml:"mounts" flag:"dir" env:"APP_DIRS" envSeparator:";" help:"host directories the guest sees (none by default): every path stays inside, links included; read_only refuses every change (flag: HOST:GUEST[:ro], repeatable; file: { host, guest, read_only })"`

	// Grants are the plugins the app may import (deny by default; log is always
	// granted); PluginConfig holds each granted plugin's section by plugin name
	// ([apps.NAME.plugins.http] allow = [...]); plugins/<name>/ABI.md lists the
	// keys. Run sets the sections of the built-in plugins by the flags of
	// RunPlugins.
	Grants       []string                  `toml:"grants" yaml:"grants" flag:"grant" env:"GRANTS" envSeparator:"," help:"plugins the app may import, e.g. kv,http (log is always granted)"`
	PluginConfig map[string]map[string]any `toml:"plugins" yaml:"plugins" help:"each granted plugin's section by name, e.g. [apps.NAME.plugins.http] allow = [...] (run: the plugin flags below; plugins/NAME/ABI.md lists the keys)"`

	RunPlugins `toml:"-" yaml:"-"`
}

// RunPlugins are the flags by which `wasmsrv run` writes the plugin sections of a
// file's [apps.NAME.plugins.*] (App.PluginConfig): the plugin tag is the key they
// set. Zero is unset: the plugin's own default applies, as for a file that leaves
// the key out.
type RunPlugins struct {
	HTTPAllow       []string `flag:"http-allow" env:"HTTP_ALLOW" envSeparator:"," plugin:"http.allow" help:"hosts the http plugin may reach: name[:port], *.domain, IP[:port] or CIDR (repeatable; default: none)"`
	HTTPTimeout     Duration `flag:"http-timeout" env:"HTTP_TIMEOUT" plugin:"http.timeout" help:"timeout of one outbound request of the http plugin (default 10s)"`
	HTTPMaxResponse Size     `flag:"http-max-response" env:"HTTP_MAX_RESPONSE" plugin:"http.max_response" help:"largest response body the http plugin reads (default 4MiB)"`

	Vars    map[string]string `flag:"var" env:"VARS" envSeparator:";" envKeyValSeparator:"=" plugin:"config.vars" help:"KEY=VALUE variable for the config plugin (repeatable)"`
	Secrets map[string]string `flag:"secret" env:"SECRETS" envSeparator:";" envKeyValSeparator:"=" plugin:"config.secrets" help:"KEY=env:NAME or KEY=file:PATH secret for the config plugin (repeatable)"`

	SocketsAllow            []string `flag:"sockets-allow" env:"SOCKETS_ALLOW" envSeparator:"," plugin:"sockets.allow" help:"destinations the sockets plugin may connect to: name[:port], *.domain[:port], IP[:port] or CIDR (repeatable; loopback and private addresses only as IPs or CIDRs; default: none)"`
	SocketsConnectTimeout   Duration `flag:"sockets-connect-timeout" env:"SOCKETS_CONNECT_TIMEOUT" plugin:"sockets.connect_timeout" help:"sockets plugin: resolve + connect + TLS handshake timeout (default 10s)"`
	SocketsMaxConns         int      `flag:"sockets-max-conns" env:"SOCKETS_MAX_CONNS" plugin:"sockets.max_conns" help:"sockets plugin: open connections of the app (default 64)"`
	SocketsMaxInstanceConns int      `flag:"sockets-max-instance-conns" env:"SOCKETS_MAX_INSTANCE_CONNS" plugin:"sockets.max_instance_conns" help:"sockets plugin: open connections of one instance (default 16)"`
	SocketsMaxBytesIn       Size     `flag:"sockets-max-bytes-in" env:"SOCKETS_MAX_BYTES_IN" plugin:"sockets.max_bytes_in" help:"sockets plugin: bytes the app may read per --sockets-bytes-window (default 0: no limit)"`
	SocketsMaxBytesOut      Size     `flag:"sockets-max-bytes-out" env:"SOCKETS_MAX_BYTES_OUT" plugin:"sockets.max_bytes_out" help:"sockets plugin: bytes the app may write per --sockets-bytes-window (default 0: no limit)"`
	SocketsBytesWindow      Duration `flag:"sockets-bytes-window" env:"SOCKETS_BYTES_WINDOW" plugin:"sockets.bytes_window" help:"sockets plugin: the window of the byte limits (default 1m)"`
	SocketsTLSCA            string   `flag:"sockets-tls-ca" env:"SOCKETS_TLS_CA" plugin:"sockets.tls_ca" help:"sockets plugin: PEM file of the CAs TLS servers are verified against, instead of the system roots"`
	SocketsTLSServerName    string   `flag:"sockets-tls-server-name" env:"SOCKETS_TLS_SERVER_NAME" plugin:"sockets.tls_server_name" help:"sockets plugin: TLS server name to verify when the guest gives none (default: the host it connects to)"`
	SocketsTLSInsecure      bool     `flag:"sockets-tls-insecure-skip-verify" env:"SOCKETS_TLS_INSECURE_SKIP_VERIFY" plugin:"sockets.tls_insecure_skip_verify" help:"sockets plugin: do not verify TLS certificates (test setups only)"`
}

// Sections returns the plugin sections the app's settings give: PluginConfig's,
// with the set RunPlugins fields written into theirs (a key the section has already
// is kept). The result is a fresh map.
func (a *App) Sections() map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, sec := range a.PluginConfig {
		c := make(map[string]any, len(sec))
		for k, v := range sec {
			c[k] = v
		}
		out[name] = c
	}
	p := &a.RunPlugins
	put := func(plugin, key string, v any, set bool) {
		if !set {
			return
		}
		sec := out[plugin]
		if sec == nil {
			sec = map[string]any{}
			out[plugin] = sec
		}
		if _, ok := sec[key]; !ok {
			sec[key] = v
		}
	}
	put("http", "allow", p.HTTPAllow, len(p.HTTPAllow) > 0)
	put("http", "timeout", p.HTTPTimeout.D().String(), p.HTTPTimeout != 0)
	put("http", "max_response", int64(p.HTTPMaxResponse), p.HTTPMaxResponse != 0)
	put("config", "vars", p.Vars, len(p.Vars) > 0)
	put("config", "secrets", p.Secrets, len(p.Secrets) > 0)
	put("sockets", "allow", p.SocketsAllow, len(p.SocketsAllow) > 0)
	put("sockets", "connect_timeout", p.SocketsConnectTimeout.D().String(), p.SocketsConnectTimeout != 0)
	put("sockets", "max_conns", p.SocketsMaxConns, p.SocketsMaxConns != 0)
	put("sockets", "max_instance_conns", p.SocketsMaxInstanceConns, p.SocketsMaxInstanceConns != 0)
	put("sockets", "max_bytes_in", int64(p.SocketsMaxBytesIn), p.SocketsMaxBytesIn != 0)
	put("sockets", "max_bytes_out", int64(p.SocketsMaxBytesOut), p.SocketsMaxBytesOut != 0)
	put("sockets", "bytes_window", p.SocketsBytesWindow.D().String(), p.SocketsBytesWindow != 0)
	put("sockets", "tls_ca", p.SocketsTLSCA, p.SocketsTLSCA != "")
	put("sockets", "tls_server_name", p.SocketsTLSServerName, p.SocketsTLSServerName != "")
	put("sockets", "tls_insecure_skip_verify", p.SocketsTLSInsecure, p.SocketsTLSInsecure)
	return out
}

// Source is the app's code: Module or Package.
func (a *App) Source() string {
	if a.Module != "" {
		return a.Module
	}
	return a.Package
}

// Mount is a host directory visible inside an app's guest.
type Mount struct {
	// Host is the directory on the host (in a file, relative to the file).
	Host string `toml:"host" yaml:"host"`
	// Guest is where the guest sees it: an absolute path such as "/data".
	Guest string `toml:"guest" yaml:"guest"`
	// ReadOnly refuses every change (EROFS).
	ReadOnly bool `toml:"read_only" yaml:"read_only"`
}

// ParseMount parses HOST:GUEST[:ro], run's form of a mount.
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	m := Mount{}
	if len(parts) == 3 && parts[2] == "ro" {
		m.ReadOnly = true
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return Mount{}, fmt.Errorf("%q, want HOST:GUEST or HOST:GUEST:ro", s)
	}
	m.Host, m.Guest = parts[0], parts[1]
	return m, nil
}

// DefaultApp is an app with every setting at its default: the envDefault tags,
// parsed from an empty environment. It is the one place the defaults live.
func DefaultApp() App {
	a, err := env.ParseAsWithOptions[App](envOptions(map[string]string{}))
	if err != nil {
		panic("config: the defaults of App do not parse: " + err.Error()) // a bad tag: caught by every test
	}
	return a
}

// DefaultRun is run's configuration with no variable and no flag: the defaults of
// its listener and process settings, which a serve file's keys of the same
// settings (their serve tags) default to as well.
func DefaultRun() Run {
	r, err := env.ParseAsWithOptions[Run](envOptions(map[string]string{}))
	if err != nil {
		panic("config: the defaults of Run do not parse: " + err.Error()) // a bad tag: caught by every test
	}
	return r
}

// keyNamer names a setting in a message from its file key ("" for the app itself).
type keyNamer func(fileKey string) string

// check validates the app's settings. key names a setting from its file key: the
// file's "apps.NAME.KEY" for serve, the flag for run.
func (a *App) check(key keyNamer, add func(*Error)) {
	if (a.Module == "") == (a.Package == "") {
		add(errf(key(""), "set exactly one of module or package"))
	}
	if a.Module != "" {
		if st, err := os.Stat(a.Module); err != nil {
			add(errf(key("module"), "%v", err))
		} else if st.IsDir() {
			add(errf(key("module"), "%q is a directory: use package = %q for a directory to build", a.Module, a.Module))
		}
	}
	if a.Package != "" {
		if st, err := os.Stat(a.Package); err != nil || !st.IsDir() {
			add(errf(key("package"), "%q is not a directory", a.Package))
		}
	}
	nonNegative := []struct {
		k string
		v int
	}{
		{"pool_size", a.PoolSize}, {"queue_size", a.QueueSize}, {"max_requests", a.MaxRequests},
		{"max_requests_jitter", a.MaxRequestsJitter}, {"limit_concurrency", a.LimitConcurrency},
		{"max_conns_per_instance", a.MaxConnsPerInstance}, {"pool_min", a.PoolMin},
	}
	for _, f := range nonNegative {
		if f.v < 0 {
			add(errf(key(f.k), "must be >= 0"))
		}
	}
	if a.PoolSize > 0 && a.PoolMin > a.PoolSize {
		add(errf(key("pool_min"), "%d is above pool_size %d", a.PoolMin, a.PoolSize))
	}
	if a.PoolIdleTimeout < 0 {
		add(errf(key("pool_idle_timeout"), "must be >= 0"))
	}
	if a.CPUWeight < 1 || a.CPUWeight > 10000 {
		add(errf(key("cpu_weight"), "%d, want 1..10000", a.CPUWeight))
	}
	if a.CPUBudget < 0 || time.Duration(a.CPUBudget) > time.Minute {
		add(errf(key("cpu_budget"), "%v, want 0 (unlimited) up to 1m of CPU time per minute", a.CPUBudget.D()))
	}
	if a.Tenant != "" {
		if err := appname.Check(a.Tenant); err != nil {
			add(errf(key("tenant"), "%v", err))
		}
	}
	if a.MemoryLimit < 64<<10 || a.MemoryLimit > 4<<30 {
		add(errf(key("memory_limit"), "%s is outside 64KiB..4GiB", FormatSize(int64(a.MemoryLimit))))
	}
	if a.StartTimeout <= 0 {
		add(errf(key("start_timeout"), "must be > 0"))
	}
	if a.LogRate <= 0 {
		add(errf(key("log_rate"), "must be > 0 (bytes per second, e.g. \"256KiB\")"))
	}
	if a.DefaultStatus < 200 || a.DefaultStatus > 599 {
		add(errf(key("default_status"), "%d, want 200..599", a.DefaultStatus))
	}
	if a.WSSendBuffer <= 0 {
		add(errf(key("ws_send_buffer"), "must be > 0"))
	}
	checkOrigins(key("ws_origins"), a.WSOrigins, add)
	for _, k := range sortedKeys(a.Env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			add(errf(key("env"), "bad variable name %q", k))
		}
	}
	guests := map[string]bool{}
	for i, m := range a.Mounts {
		mk := fmt.Sprintf("%s[%d]", key("mounts"), i)
		if m.Host == "" {
			add(errf(mk+".host", "the host directory is required"))
		} else if st, err := os.Stat(m.Host); err != nil || !st.IsDir() {
			add(errf(mk+".host", "%q is not a directory", m.Host))
		}
		g := path.Clean(m.Guest)
		switch {
		case !strings.HasPrefix(m.Guest, "/"):
			add(errf(mk+".guest", "%q: want an absolute path such as \"/data\"", m.Guest))
		case guests[g]:
			add(errf(mk+".guest", "%q is mounted twice", m.Guest))
		}
		guests[g] = true
	}
	granted := map[string]bool{"log": true} // log is always granted (plugins.DefaultGrant)
	for _, list := range a.Grants {
		for _, g := range strings.Split(list, ",") {
			granted[strings.TrimSpace(g)] = true
		}
	}
	for _, name := range sortedKeys(a.Sections()) {
		if !granted[name] {
			add(errf(key("plugins."+name), "plugin %q is configured but not in grants: it would configure nothing", name))
		}
	}
}
