package config

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// Run is the configuration of `wasmsrv run`: one app (App, the settings serve's
// [apps.NAME] has too) and the listener and process around it. Every field comes
// from a WASMSRV_* environment variable and can be overridden by the flag of the
// same name (flags win). The tags are the documentation: `wasmsrv run --help`
// prints them, and README.md's table is checked against them.
type Run struct {
	Listen            string   `env:"LISTEN" envDefault:"127.0.0.1:8080" flag:"listen" serve:"listeners[0].addr" help:"address to listen on (host:port)"`
	Name              string   `env:"APP_NAME" flag:"name" serve:"apps.NAME" help:"the app's name: its namespace in the kv and pubsub plugins and its tag in the log; 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit (default: the file or directory name)"`
	MaxHeaderBytes    Size     `env:"MAX_HEADER_BYTES" envDefault:"64KiB" flag:"max-header-bytes" serve:"limits.max_header" help:"largest request head (431 beyond)"`
	ReadHeaderTimeout Duration `env:"READ_HEADER_TIMEOUT" envDefault:"10s" flag:"read-header-timeout" serve:"listeners[0].read_header_timeout" help:"cut off clients slower than this to send headers"`
	IdleTimeout       Duration `env:"IDLE_TIMEOUT" envDefault:"75s" flag:"idle-timeout" serve:"listeners[0].idle_timeout" help:"close idle keep-alive connections after this"`
	MaxConnsPerIP     int      `env:"MAX_CONNS_PER_IP" envDefault:"0" flag:"max-conns-per-ip" serve:"limits.max_conns_per_ip" help:"open TCP connections one client IP may hold, idle and WebSocket included (0 = no cap)"`
	ShutdownTimeout   Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" flag:"shutdown-timeout" serve:"server.shutdown_timeout" help:"grace period for in-flight requests on SIGTERM/SIGINT (a second signal stops at once)"`
	DrainDelay        Duration `env:"DRAIN_DELAY" envDefault:"0s" flag:"drain-delay" serve:"server.drain_delay" help:"on SIGTERM/SIGINT, go on accepting and serving this long with /readyz answering 503, so load balancers stop sending before the listener closes (Kubernetes: more than the readiness probe's period × failureThreshold); then the grace period begins"`
	HealthPath        string   `env:"HEALTH_PATH" flag:"health-path" serve:"listeners[0].health_path" help:"serve the probes /livez and /readyz under this path prefix on the listener too (e.g. / or /_wasmsrv/); off by default so no path of the app is taken (the admin listener has them always)"`
	TrustedProxies    []string `env:"TRUSTED_PROXIES" envSeparator:"," flag:"trusted-proxies" serve:"server.trusted_proxies" help:"peers (IPs or CIDRs) whose X-Forwarded-For names the client in the access log; exempt from max-conns-per-ip (repeatable; variable: comma-separated)"`
	TLSCert           string   `env:"TLS_CERT" flag:"tls-cert" serve:"listeners[0].tls_cert" help:"PEM certificate file (enables TLS and HTTP/2)"`
	TLSKey            string   `env:"TLS_KEY" flag:"tls-key" serve:"listeners[0].tls_key" help:"PEM private key file"`
	LogLevel          string   `env:"LOG_LEVEL" envDefault:"info" flag:"log-level" serve:"server.log_level" help:"debug, info, warn or error"`
	KVPath            string   `env:"KV_PATH" flag:"kv-path" serve:"plugins.kv_path" help:"bbolt file of the kv plugin (default ~/.local/state/wasmsrv/kv.db)"`
	RedisURL          string   `env:"REDIS_URL" flag:"redis-url" serve:"plugins.redis_url" help:"Redis shared by the nodes: the kv and pubsub plugins' state and (serve) the buckets of rate limits with shared = true (redis://host:6379/0)"`
	Admin             string   `env:"ADMIN_ADDR" flag:"admin" serve:"admin.addr" help:"address of the admin listener (health, status, /metrics, profiles), e.g. 127.0.0.1:9901; off when empty (the default; serve's is on)"`
	AdminToken        string   `env:"ADMIN_TOKEN" flag:"admin-token" serve:"admin.token" help:"bearer token the admin listener requires (required when --admin is not loopback)"`

	Process
	App
}

// Process holds the settings of the wasmsrv process that run and serve both take
// as flags and WASMSRV_* variables (serve has no key for them in its file).
type Process struct {
	LogFormat       string `env:"LOG_FORMAT" envDefault:"text" flag:"log-format" help:"text or json; in json every line on stdout and stderr is JSON, the serving line too"`
	AccessLog       bool   `env:"ACCESS_LOG" envDefault:"true" flag:"access-log" help:"log one record per request (--access-log=false for none); the request id is taken from X-Request-ID or made either way"`
	AccessLogFormat string `env:"ACCESS_LOG_FORMAT" envDefault:"log" flag:"access-log-format" help:"log (records in the log's format: text or JSON) or combined (Apache/nginx combined lines on stdout, for goaccess and the like)"`
	AccessLogQuery  bool   `env:"ACCESS_LOG_QUERY" envDefault:"false" flag:"access-log-query" help:"log query strings too (they often carry tokens)"`
	CacheDir        string `env:"CACHE_DIR" flag:"cache-dir" help:"compiled-code and build cache (default: user cache dir; - disables)"`
}

// EnvPrefix prefixes every variable.
const EnvPrefix = "WASMSRV_"

// envOptions are the options of every environment parse: the prefix, the given
// environment, and run's HOST:GUEST[:ro] form of a mount.
func envOptions(environ map[string]string) env.Options {
	return env.Options{Prefix: EnvPrefix, Environment: environ, FuncMap: map[reflect.Type]env.ParserFunc{
		reflect.TypeFor[Mount](): func(v string) (any, error) { return ParseMount(v) },
	}}
}

// ParseEnv reads a struct of env-tagged fields from environ (os.Environ through
// env.ToMap in the CLI, a literal map in tests): every WASMSRV_* variable of wasmsrv
// is read this way. Errors name the variable and the expected form.
func ParseEnv[T any](environ map[string]string) (T, error) {
	v, err := env.ParseAsWithOptions[T](envOptions(environ))
	if err != nil {
		return v, envError[T](err, environ)
	}
	return v, nil
}

// envError rewrites caarlos0/env errors, which name the Go field and type, so they
// name the variable, what it must look like and what it was.
func envError[T any](err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	t := reflect.TypeFor[T]()
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			msgs = append(msgs, e.Error())
			continue
		}
		key := pe.Name
		if f, ok := t.FieldByName(pe.Name); ok {
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			key = EnvPrefix + name
		}
		msgs = append(msgs, key+": "+envWant(pe.Type, pe.Err, environ[key]))
	}
	return fmt.Errorf("bad environment: %s", strings.Join(msgs, "; "))
}

// envWant says what a variable of type t must look like.
func envWant(t reflect.Type, err error, got string) string {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return err.Error() // Size, Duration and Mode say it themselves
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("want true or false, got %q", got)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("want a whole number, got %q", got)
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("want a number, got %q", got)
	case reflect.Map:
		return fmt.Sprintf("want KEY=VALUE pairs separated by ;, got %q", got)
	}
	return err.Error()
}

// LoadRun reads Run from the environment given as a map and validates it.
func LoadRun(environ map[string]string) (*Run, error) {
	cfg, err := ParseEnv[Run](environ)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// runKey names a setting in run's messages: the flag for a file key.
func runKey(fileKey string) string {
	switch {
	case fileKey == "":
		return "APP"
	case fileKey == "module" || fileKey == "package":
		return "APP"
	case strings.HasPrefix(fileKey, "plugins."):
		return "grant"
	}
	if f, ok := appFieldByKey(fileKey); ok {
		return f.Tag.Get("flag")
	}
	return fileKey
}

// appFieldByKey finds App's field of a file key.
func appFieldByKey(key string) (reflect.StructField, bool) {
	t := reflect.TypeFor[App]()
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Validate checks values that parse but make no sense. The app's settings are
// checked as a file's are (App.check), named by their flags; the APP argument is
// left to apps.Open.
func (c *Run) Validate() error {
	var errs []string
	add := func(e *Error) { errs = append(errs, e.Key+": "+e.Msg) }
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, "max-conns-per-ip: must be >= 0")
	}
	if c.Name != "" {
		if err := appname.Check(c.Name); err != nil {
			errs = append(errs, "name: "+err.Error())
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Sprintf("log-level: %q, want debug, info, warn or error", c.LogLevel))
	}
	if err := c.Process.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := checkAdmin(c.Admin, c.AdminToken); err != nil {
		flag := map[string]string{"admin.addr": "admin", "admin.token": "admin-token"}[err.Key]
		errs = append(errs, flag+": "+err.Msg)
	}
	for _, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			errs = append(errs, "trusted-proxies: "+err.Error())
		}
	}
	if c.DrainDelay < 0 {
		errs = append(errs, "drain-delay: must be >= 0")
	}
	if msg := CheckHealthPath(c.HealthPath); msg != "" {
		errs = append(errs, "health-path: "+msg)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, "tls-cert and tls-key: give both or neither")
	}
	// The APP argument is opened by apps.Open, which says what is wrong with it
	// (a file that is not there, a directory that does not build).
	a := c.App
	a.Module, a.Package = "-", ""
	a.check(func(k string) string {
		if k == "" || k == "module" {
			return "-"
		}
		return runKey(k)
	}, func(e *Error) {
		if e.Key != "-" {
			add(e)
		}
	})
	if len(errs) > 0 {
		return errors.New("bad configuration: " + strings.Join(errs, "; "))
	}
	return nil
}

// Caches are the directories of compiled code and of built guests under CacheDir:
// "" for the defaults, "-" for no compiled-code cache.
func (p *Process) Caches() (engine, build string) {
	switch p.CacheDir {
	case "":
		return "", ""
	case "-":
		return "-", ""
	}
	return filepath.Join(p.CacheDir, "wazero"), filepath.Join(p.CacheDir, "builds")
}

// Validate checks the process settings.
func (p *Process) Validate() error {
	switch p.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log-format: %q, want text or json", p.LogFormat)
	}
	switch p.AccessLogFormat {
	case "log", "combined":
	default:
		return fmt.Errorf("access-log-format: %q, want log or combined", p.AccessLogFormat)
	}
	return nil
}

// SetSource makes src (run's APP argument) the app's Module, or its Package when
// it is a directory.
func (a *App) SetSource(src string) {
	a.Module, a.Package = src, ""
	if st, err := os.Stat(src); err == nil && st.IsDir() {
		a.Module, a.Package = "", src
	}
}

// Flags registers one flag per field of c on fs, defaulting to c's current values
// (the environment), so parsing fs afterwards lets flags override variables.
func (c *Run) Flags(fs *flag.FlagSet) { registerFlags(fs, reflect.ValueOf(c).Elem()) }

// Flags registers the process flags on fs, as Run.Flags does (serve), or only
// those named (check has no access log).
func (p *Process) Flags(fs *flag.FlagSet, only ...string) {
	registerFlags(fs, reflect.ValueOf(p).Elem(), only...)
}

// registerFlags registers a flag for every flag-tagged field of the struct v,
// embedded structs included, or for those named in only. It runs once per command
// line, not per request.
func registerFlags(fs *flag.FlagSet, v reflect.Value, only ...string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			registerFlags(fs, v.Field(i), only...)
			continue
		}
		name := f.Tag.Get("flag")
		if name == "" || (len(only) > 0 && !slices.Contains(only, name)) {
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
		case *abi.Mode:
			fs.TextVar(p, name, *p, usage)
		case *[]string:
			fs.Var(&listFlag{l: p}, name, usage)
		case *map[string]string:
			fs.Var(&mapFlag{m: p}, name, usage)
		case *[]Mount:
			fs.Var(&mountsFlag{l: p}, name, usage)
		default:
			panic(fmt.Sprintf("config: no flag type for %s (%s)", f.Name, f.Type)) // caught by every test
		}
	}
}

// mapFlag adds KEY=VALUE pairs; the first use on the command line replaces values
// from the environment.
type mapFlag struct {
	m   *map[string]string
	set bool
}

func (f *mapFlag) String() string {
	if f.m == nil {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(*f.m) {
		parts = append(parts, k+"="+(*f.m)[k])
	}
	return strings.Join(parts, ";")
}

func (f *mapFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q, want KEY=VALUE", s)
	}
	if !f.set || *f.m == nil {
		*f.m, f.set = map[string]string{}, true
	}
	(*f.m)[k] = v
	return nil
}

// mountsFlag adds HOST:GUEST[:ro] mounts, replacing the environment's at first.
type mountsFlag struct {
	l   *[]Mount
	set bool
}

func (f *mountsFlag) String() string {
	if f.l == nil {
		return ""
	}
	var parts []string
	for _, m := range *f.l {
		s := m.Host + ":" + m.Guest
		if m.ReadOnly {
			s += ":ro"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ";")
}

func (f *mountsFlag) Set(s string) error {
	m, err := ParseMount(s)
	if err != nil {
		return err
	}
	if !f.set {
		*f.l, f.set = nil, true
	}
	*f.l = append(*f.l, m)
	return nil
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

// CheckHealthPath says what is wrong with a health_path ("" when nothing):
// empty (off), or a path prefix ending in "/" under which /livez and /readyz are
// served. "/" takes /livez and /readyz.
func CheckHealthPath(p string) string {
	if p == "" {
		return ""
	}
	if p[0] != '/' || p[len(p)-1] != '/' {
		return fmt.Sprintf("%q, want a path prefix that starts and ends with / (e.g. / or /_wasmsrv/)", p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%' {
			return fmt.Sprintf("%q: only plain path characters (no spaces, ?, # or %%-escapes)", p)
		}
	}
	return ""
}

// Trusted returns the parsed trusted proxies (Validate has checked them).
func (c *Run) Trusted() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.TrustedProxies {
		if pf, err := ParsePrefix(p); err == nil {
			out = append(out, pf)
		}
	}
	return out
}
