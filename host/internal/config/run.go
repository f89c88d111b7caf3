package config

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// Run is the configuration of `wasmsrv run`: one app, sensible defaults. Every field
// comes from a WASMSRV_* environment variable and can be overridden by the flag of
// the same name (flags win). The tags are the documentation: `wasmsrv run --help`
// prints them.
type Run struct {
	Listen            string   `env:"LISTEN" envDefault:"127.0.0.1:8080" flag:"listen" help:"address to listen on (host:port)"`
	Name              string   `env:"APP_NAME" flag:"name" help:"the app's name: its namespace in the kv and pubsub plugins and its tag in the log; 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit (default: the file or directory name)"`
	Workers           int      `env:"WORKERS" envDefault:"0" flag:"workers" help:"instances in the pool (0 = 2×CPU+1 for sync apps, CPU count for async apps)"`
	Mode              string   `env:"MODE" envDefault:"auto" flag:"mode" help:"sync or async: the shape a Go package directory is built for (auto = sync); a .wasm declares its own"`
	LimitConcurrency  int      `env:"LIMIT_CONCURRENCY" envDefault:"0" flag:"limit-concurrency" help:"async apps: in-flight connections per app before 503 (0 = only the per-instance cap)"`
	MaxConnsPerInst   int      `env:"MAX_CONNS_PER_INSTANCE" envDefault:"10000" flag:"max-conns-per-instance" help:"async apps: in-flight connections per instance before 503"`
	EventTimeout      Duration `env:"EVENT_TIMEOUT" envDefault:"5s" flag:"event-timeout" help:"async apps: deadline of one event call; an instance over it is replaced"`
	WSMaxMessage      Size     `env:"WS_MAX_MESSAGE" envDefault:"1MiB" flag:"ws-max-message" help:"largest WebSocket message (closed with 1009 beyond)"`
	WSPingInterval    Duration `env:"WS_PING_INTERVAL" envDefault:"20s" flag:"ws-ping-interval" help:"ping a WebSocket silent for this long"`
	WSPingTimeout     Duration `env:"WS_PING_TIMEOUT" envDefault:"20s" flag:"ws-ping-timeout" help:"close a pinged WebSocket that stays silent this long"`
	WSCompression     bool     `env:"WS_COMPRESSION" envDefault:"false" flag:"ws-compression" help:"offer permessage-deflate to WebSocket clients"`
	WSSendBuffer      Size     `env:"WS_SEND_BUFFER" envDefault:"256KiB" flag:"ws-send-buffer" help:"bytes held for one WebSocket client that has not taken them; beyond, the app's sends wait (one larger message goes alone)"`
	WSOrigins         []string `env:"WS_ORIGINS" envSeparator:"," flag:"ws-origins" help:"web origins besides the app's own whose pages may open WebSockets: https://app.example.com, https://*.example.com, or * for any (repeatable; default: same origin only)"`
	QueueSize         int      `env:"QUEUE_SIZE" envDefault:"1024" flag:"queue-size" help:"requests that may wait for a free instance before 503"`
	QueueWait         Duration `env:"QUEUE_WAIT" envDefault:"10s" flag:"queue-wait" help:"longest wait for a free instance before 503"`
	Timeout           Duration `env:"TIMEOUT" envDefault:"30s" flag:"timeout" help:"per-request deadline; the guest is stopped and the client gets 504"`
	StartTimeout      Duration `env:"START_TIMEOUT" envDefault:"30s" flag:"start-timeout" help:"longest an instance may take to start (the module's start function, _initialize and the start hook); it is stopped beyond and the start retried"`
	MaxRequests       int      `env:"MAX_REQUESTS" envDefault:"0" flag:"max-requests" help:"recycle an instance after this many requests (0 = never)"`
	MaxRequestsJitter int      `env:"MAX_REQUESTS_JITTER" envDefault:"0" flag:"max-requests-jitter" help:"random extra requests per instance before recycling"`
	MemoryLimit       Size     `env:"MEMORY_LIMIT" envDefault:"128MiB" flag:"memory-limit" help:"memory cap per instance"`
	BodyLimit         Size     `env:"BODY_LIMIT" envDefault:"10MiB" flag:"body-limit" help:"largest request body (413 beyond; 0 = unlimited)"`
	BufferBody        Size     `env:"BUFFER_BODY" envDefault:"64KiB" flag:"buffer-body" help:"sync and CGI apps: read a request body before it takes an instance, this much in memory and the rest in a temp file (0 = stream bodies to the instance)"`
	BodyTimeout       Duration `env:"BODY_TIMEOUT" envDefault:"60s" flag:"body-timeout" help:"longest silence while a request body is read ahead (408 beyond)"`
	BufferResponse    Size     `env:"BUFFER_RESPONSE" envDefault:"256KiB" flag:"buffer-response" help:"sync apps: hold a response up to this size until the app finishes, so its instance is free before a slow client has read it (a flush or a larger response is written through; 0 = write through)"`
	MaxHeaderBytes    Size     `env:"MAX_HEADER_BYTES" envDefault:"64KiB" flag:"max-header-bytes" help:"largest request head (431 beyond)"`
	ReadHeaderTimeout Duration `env:"READ_HEADER_TIMEOUT" envDefault:"10s" flag:"read-header-timeout" help:"cut off clients slower than this to send headers"`
	IdleTimeout       Duration `env:"IDLE_TIMEOUT" envDefault:"75s" flag:"idle-timeout" help:"close idle keep-alive connections after this"`
	MaxConnsPerIP     int      `env:"MAX_CONNS_PER_IP" envDefault:"0" flag:"max-conns-per-ip" help:"open TCP connections one client IP may hold, idle and WebSocket included (0 = no cap)"`
	ShutdownTimeout   Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" flag:"shutdown-timeout" help:"grace period for in-flight requests on SIGTERM/SIGINT"`
	TLSCert           string   `env:"TLS_CERT" flag:"tls-cert" help:"PEM certificate file (enables TLS and HTTP/2)"`
	TLSKey            string   `env:"TLS_KEY" flag:"tls-key" help:"PEM private key file"`
	LogLevel          string   `env:"LOG_LEVEL" envDefault:"info" flag:"log-level" help:"debug, info, warn or error"`
	LogFormat         string   `env:"LOG_FORMAT" envDefault:"text" flag:"log-format" help:"text or json"`
	AccessLog         bool     `env:"ACCESS_LOG" envDefault:"true" flag:"access-log" help:"log one line per request"`
	LogRate           Size     `env:"LOG_RATE" envDefault:"256KiB" flag:"log-rate" help:"the app's log budget per second: bytes its guests' stdout, stderr and log plugin records may add to the log, escapes included (lines beyond it are dropped and counted in a warning every 10s)"`
	CacheDir          string   `env:"CACHE_DIR" flag:"cache-dir" help:"compiled-code and build cache (default: user cache dir; - disables)"`
	Env               []string `env:"APP_ENV" envSeparator:";" flag:"env" help:"KEY=VALUE given to the guest's environment (repeatable; env var: ;-separated)"`
	Dirs              []string `env:"APP_DIRS" envSeparator:";" flag:"dir" help:"HOST:GUEST[:ro] directory to mount in the guest (repeatable)"`

	// CGI apps (docs/cgi.md).
	Argv string `env:"ARGV" envDefault:"${SCRIPT_NAME} ${ARGS}" flag:"argv" help:"CGI apps: the command's argv, a WAGI template: ${SCRIPT_NAME} is the request path, ${ARGS} the query's name=value pairs, one argument each"`

	// http-wasm handler modules (docs/http-wasm.md).
	HTTPWasmConfig string `env:"HTTP_WASM_CONFIG" flag:"http-wasm-config" help:"http-wasm guests: what get_config returns (a Traefik plugin: its config as JSON); @FILE reads it from a file"`
	DefaultStatus  int    `env:"DEFAULT_STATUS" envDefault:"404" flag:"default-status" help:"http-wasm guests: the status of a request the guest passes on to the next handler, there being none after it"`

	// Plugins (plugins/README.md). Deny by default: the app may import only the
	// plugins granted here; log is always granted.
	Grants          []string `env:"GRANTS" envSeparator:"," flag:"grant" help:"plugins the app may import, e.g. kv,http (repeatable; log is always granted)"`
	KVPath          string   `env:"KV_PATH" flag:"kv-path" help:"bbolt file of the kv plugin (default ~/.local/state/wasmsrv/kv.db)"`
	RedisURL        string   `env:"REDIS_URL" flag:"redis-url" help:"Redis for the kv and pubsub plugins, to share state between nodes (redis://host:6379/0)"`
	HTTPAllow       []string `env:"HTTP_ALLOW" envSeparator:"," flag:"http-allow" help:"hosts the http plugin may reach: name[:port], *.domain, IP[:port] or CIDR (repeatable)"`
	HTTPTimeout     Duration `env:"HTTP_TIMEOUT" envDefault:"10s" flag:"http-timeout" help:"timeout of one outbound request of the http plugin"`
	HTTPMaxResponse Size     `env:"HTTP_MAX_RESPONSE" envDefault:"4MiB" flag:"http-max-response" help:"largest response body the http plugin reads"`
	Vars            []string `env:"VARS" envSeparator:";" flag:"var" help:"KEY=VALUE variable for the config plugin (repeatable)"`

	SocketsAllow            []string `env:"SOCKETS_ALLOW" envSeparator:"," flag:"sockets-allow" help:"destinations the sockets plugin may connect to: name[:port], *.domain[:port], IP[:port] or CIDR (repeatable; loopback and private addresses only as IPs or CIDRs)"`
	SocketsConnectTimeout   Duration `env:"SOCKETS_CONNECT_TIMEOUT" envDefault:"10s" flag:"sockets-connect-timeout" help:"sockets plugin: resolve + connect + TLS handshake timeout"`
	SocketsMaxConns         int      `env:"SOCKETS_MAX_CONNS" envDefault:"64" flag:"sockets-max-conns" help:"sockets plugin: open connections of the app"`
	SocketsMaxInstanceConns int      `env:"SOCKETS_MAX_INSTANCE_CONNS" envDefault:"16" flag:"sockets-max-instance-conns" help:"sockets plugin: open connections of one instance"`
	SocketsMaxBytesIn       Size     `env:"SOCKETS_MAX_BYTES_IN" envDefault:"0" flag:"sockets-max-bytes-in" help:"sockets plugin: bytes the app may read per --sockets-bytes-window (0 = no limit)"`
	SocketsMaxBytesOut      Size     `env:"SOCKETS_MAX_BYTES_OUT" envDefault:"0" flag:"sockets-max-bytes-out" help:"sockets plugin: bytes the app may write per --sockets-bytes-window (0 = no limit)"`
	SocketsBytesWindow      Duration `env:"SOCKETS_BYTES_WINDOW" envDefault:"1m" flag:"sockets-bytes-window" help:"sockets plugin: the window of the byte limits"`
	SocketsTLSCA            string   `env:"SOCKETS_TLS_CA" flag:"sockets-tls-ca" help:"sockets plugin: PEM file of the CAs TLS servers are verified against, instead of the system roots"`
	SocketsTLSServerName    string   `env:"SOCKETS_TLS_SERVER_NAME" flag:"sockets-tls-server-name" help:"sockets plugin: TLS server name to verify when the guest gives none (default: the host it connects to)"`
	SocketsTLSInsecure      bool     `env:"SOCKETS_TLS_INSECURE_SKIP_VERIFY" envDefault:"false" flag:"sockets-tls-insecure-skip-verify" help:"sockets plugin: do not verify TLS certificates (test setups only)"`
	Secrets                 []string `env:"SECRETS" envSeparator:";" flag:"secret" help:"KEY=env:NAME or KEY=file:PATH secret for the config plugin (repeatable)"`
}

// EnvPrefix prefixes every variable of Run.
const EnvPrefix = "WASMSRV_"

// LoadRun reads Run from the environment given as a map (os.Environ through
// env.ToMap in the CLI, a literal map in tests). Errors name the variable and the
// expected form.
func LoadRun(environ map[string]string) (*Run, error) {
	opts := env.Options{Prefix: EnvPrefix, Environment: environ}
	cfg, err := env.ParseAsWithOptions[Run](opts)
	if err != nil {
		return nil, renameEnvErrors(err, opts)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// renameEnvErrors rewrites caarlos0/env errors, which name the Go field, so they
// name the environment variable instead.
func renameEnvErrors(err error, opts env.Options) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	params, perr := env.GetFieldParamsWithOptions(&Run{}, opts)
	keys := map[string]string{}
	if perr == nil {
		for _, p := range params {
			keys[p.OwnKey] = p.Key
		}
	}
	t := reflect.TypeFor[Run]()
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			key := pe.Name
			if f, ok := t.FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				key = EnvPrefix + name
			}
			msgs = append(msgs, fmt.Sprintf("%s: %v", key, unwrapParse(pe.Err)))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("bad environment: %s", strings.Join(msgs, "; "))
}

func unwrapParse(err error) error {
	if u := errors.Unwrap(err); u != nil && strings.Contains(err.Error(), "strconv.") {
		return fmt.Errorf("want a whole number: %w", u)
	}
	return err
}

// Validate checks values that parse but make no sense.
func (c *Run) Validate() error {
	var errs []string
	if c.Workers < 0 {
		errs = append(errs, "workers: must be ≥ 0")
	}
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, "max-conns-per-ip: must be ≥ 0")
	}
	if c.QueueSize < 0 {
		errs = append(errs, "queue-size: must be ≥ 0")
	}
	if c.Name != "" {
		if err := appname.Check(c.Name); err != nil {
			errs = append(errs, "name: "+err.Error())
		}
	}
	if c.LogRate <= 0 {
		errs = append(errs, "log-rate: must be > 0 bytes per second")
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, "start-timeout: must be > 0")
	}
	if c.MemoryLimit < 64<<10 || c.MemoryLimit > 4<<30 {
		errs = append(errs, fmt.Sprintf("memory-limit: %d bytes is outside 64KiB..4GiB", c.MemoryLimit))
	}
	switch c.Mode {
	case "auto", "sync", "async":
	default:
		errs = append(errs, fmt.Sprintf("mode: %q, want auto, sync or async", c.Mode))
	}
	if c.DefaultStatus < 200 || c.DefaultStatus > 599 {
		errs = append(errs, fmt.Sprintf("default-status: %d, want 200..599", c.DefaultStatus))
	}
	if c.WSSendBuffer <= 0 {
		errs = append(errs, "ws-send-buffer: must be > 0")
	}
	if _, err := wsorigin.Parse(c.WSOrigins); err != nil {
		errs = append(errs, "ws-origins"+err.Error())
	}
	if c.SocketsMaxConns < 1 || c.SocketsMaxInstanceConns < 1 {
		errs = append(errs, "sockets-max-conns and sockets-max-instance-conns: must be ≥ 1")
	}
	if c.SocketsBytesWindow.D() <= 0 {
		errs = append(errs, "sockets-bytes-window: must be > 0")
	}
	if c.LimitConcurrency < 0 || c.MaxConnsPerInst < 0 {
		errs = append(errs, "limit-concurrency and max-conns-per-instance: must be ≥ 0")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Sprintf("log-level: %q, want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Sprintf("log-format: %q, want text or json", c.LogFormat))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, "tls-cert and tls-key: give both or neither")
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Sprintf("env: %q, want KEY=VALUE", kv))
		}
	}
	for _, kv := range append(slices.Clone(c.Vars), c.Secrets...) {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Sprintf("var/secret: %q, want KEY=VALUE", kv))
		}
	}
	for _, d := range c.Dirs {
		if _, _, err := ParseMount(d); err != nil {
			errs = append(errs, "dir: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New("bad configuration: " + strings.Join(errs, "; "))
	}
	return nil
}

// ParseMount parses HOST:GUEST[:ro].
func ParseMount(s string) (hostGuest [2]string, readOnly bool, err error) {
	parts := strings.Split(s, ":")
	if len(parts) == 3 && parts[2] == "ro" {
		readOnly = true
		parts = parts[:2]
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return hostGuest, false, fmt.Errorf("%q, want HOST:GUEST or HOST:GUEST:ro", s)
	}
	return [2]string{parts[0], parts[1]}, readOnly, nil
}

// Flags registers one flag per field of c on fs, defaulting to c's current values
// (the environment), so parsing fs afterwards lets flags override variables.
func (c *Run) Flags(fs *flag.FlagSet) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("flag")
		if name == "" {
			continue
		}
		envName, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		usage := f.Tag.Get("help") + " [$" + EnvPrefix + envName + "]"
		switch p := v.Field(i).Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *Duration:
			fs.Var(durationFlag{p}, name, usage)
		case *Size:
			fs.Var(sizeFlag{p}, name, usage)
		case *[]string:
			fs.Var(&listFlag{l: p}, name, usage)
		}
	}
}

type durationFlag struct{ d *Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return time.Duration(*f.d).String()
}
func (f durationFlag) Set(s string) error { return f.d.UnmarshalText([]byte(s)) }

type sizeFlag struct{ s *Size }

func (f sizeFlag) String() string {
	if f.s == nil {
		return ""
	}
	return FormatSize(int64(*f.s))
}
func (f sizeFlag) Set(s string) error { return f.s.UnmarshalText([]byte(s)) }

// listFlag appends; the first use on the command line replaces values from the
// environment, so flags win there too.
type listFlag struct {
	l   *[]string
	set bool
}

func (f *listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ";")
}
func (f *listFlag) Set(s string) error {
	if !f.set {
		*f.l, f.set = nil, true
	}
	*f.l = append(*f.l, s)
	return nil
}

// FormatSize prints a byte count with the largest exact binary unit.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.suf)
		}
	}
	return fmt.Sprint(n)
}
