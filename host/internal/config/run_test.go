package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
)

// TestRunWebSocketSettings: the WebSocket origin allow-list and send buffer
// come from WASMSRV_* variables and flags (flags win), and bad values name the
// setting.
func TestRunWebSocketSettings(t *testing.T) {
	c, err := LoadRun(map[string]string{"WASMSRV_WS_ORIGINS": "https://a.example,*.b.example", "WASMSRV_WS_SEND_BUFFER": "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.WSOrigins, " ") != "https://a.example *.b.example" || c.WSSendBuffer != 1<<20 {
		t.Errorf("from the environment: origins %q, send buffer %d", c.WSOrigins, c.WSSendBuffer)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.Flags(fs)
	if err := fs.Parse([]string{"--ws-origins", "http://localhost:3000", "--ws-origins", "https://c.example", "--ws-send-buffer", "64KiB"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.WSOrigins, " ") != "http://localhost:3000 https://c.example" || c.WSSendBuffer != 64<<10 {
		t.Errorf("flags: origins %q, send buffer %d", c.WSOrigins, c.WSSendBuffer)
	}
	d, err := LoadRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.WSOrigins) != 0 || d.WSSendBuffer != 256<<10 {
		t.Errorf("defaults: origins %q (want none: same origin only), send buffer %d", d.WSOrigins, d.WSSendBuffer)
	}
	for env, want := range map[string]string{
		"WASMSRV_WS_ORIGINS=https://a.example/app":   `ws-origins[0]: "https://a.example/app"`,
		"WASMSRV_WS_ORIGINS=*,https://a.example":     "ws-origins[0]",
		"WASMSRV_WS_SEND_BUFFER=0":                   "ws-send-buffer: must be > 0",
		"WASMSRV_WS_SEND_BUFFER=lots":                "WASMSRV_WS_SEND_BUFFER",
		"WASMSRV_WS_ORIGINS=https://exämple.example": "punycode",
	} {
		k, v, _ := strings.Cut(env, "=")
		if _, err := LoadRun(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", env, err, want)
		}
	}
}

func TestRunNameAndLogRate(t *testing.T) {
	c, err := LoadRun(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.LogRate != guestlog.DefaultRate || c.Name != "" {
		t.Errorf("defaults: log rate %d (want %d), name %q", c.LogRate, guestlog.DefaultRate, c.Name)
	}
	c, err = LoadRun(map[string]string{"WASMSRV_APP_NAME": "shop-2", "WASMSRV_LOG_RATE": "1MiB"})
	if err != nil || c.Name != "shop-2" || c.LogRate != 1<<20 {
		t.Fatalf("LoadRun = %+v, %v", c, err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"WASMSRV_APP_NAME": "a:b"}, []string{"name:", `"a:b"`, appname.Allowed}},
		{map[string]string{"WASMSRV_APP_NAME": "x}"}, []string{"name:", appname.Allowed}},
		{map[string]string{"WASMSRV_LOG_RATE": "0"}, []string{"log-rate:", "> 0"}},
	} {
		_, err := LoadRun(tt.env)
		if err == nil {
			t.Errorf("%v: accepted", tt.env)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", tt.env, err, w)
			}
		}
	}
}

// Every flag of run that is not an app setting (those are walked by
// appspec.TestEveryFlagAndKeyReachTheSameSetting) names the key of a serve file that
// holds the same setting (its serve tag), and a value given either way arrives the
// same. The process flags (Process) are the same struct in run and serve.
func TestRunFlagsHaveServeKeys(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"Listen": "127.0.0.1:7777", "MaxHeaderBytes": "3KiB", "ReadHeaderTimeout": "1m7s", "IdleTimeout": "1m7s",
		"MaxConnsPerIP": "7", "ShutdownTimeout": "1m7s", "TLSCert": pem, "TLSKey": pem, "LogLevel": "debug",
		"KVPath": filepath.Join(dir, "kv.db"), "RedisURL": "redis://127.0.0.1:6379/0",
		"Admin": "127.0.0.1:7777", "AdminToken": "s3cret",
	}
	rt := reflect.TypeFor[Run]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if f.Anonymous {
			continue
		}
		key := f.Tag.Get("serve")
		if key == "" || f.Tag.Get("flag") == "" {
			t.Errorf("Run.%s: no serve key or no flag", f.Name)
			continue
		}
		if f.Name == "Name" {
			continue // a serve file names an app by its table: [apps.NAME]
		}
		v, ok := values[f.Name]
		if !ok {
			t.Errorf("Run.%s: no test value", f.Name)
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			run, err := LoadRun(nil)
			if err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			run.Flags(fs)
			if err := fs.Parse([]string{"--" + f.Tag.Get("flag") + "=" + v}); err != nil {
				t.Fatal(err)
			}
			byFlag := reflect.ValueOf(*run).FieldByName(f.Name).Interface()
			if def := reflect.ValueOf(defaultRun(t)).FieldByName(f.Name).Interface(); reflect.DeepEqual(byFlag, def) {
				t.Fatalf("--%s=%s left the default", f.Tag.Get("flag"), v)
			}

			lit := strconv.Quote(v)
			if f.Type.Kind() == reflect.Int {
				lit = v
			}
			listener := "addr = \"127.0.0.1:1\"\n"
			if strings.HasPrefix(key, "listeners[0].tls_") {
				listener += fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", pem, pem)
			}
			var body string
			if rest, ok := strings.CutPrefix(key, "listeners[0]."); ok {
				if rest == "addr" {
					listener = ""
				}
				if !strings.HasPrefix(rest, "tls_") {
					listener += rest + " = " + lit + "\n"
				}
				body = "[[listeners]]\n" + listener
			} else {
				table, k, _ := strings.Cut(key, ".")
				body = "[[listeners]]\n" + listener + "[" + table + "]\n" + k + " = " + lit + "\n"
			}
			file := filepath.Join(t.TempDir(), "site.toml")
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(file, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if byFile := valueAt(t, reflect.ValueOf(*cfg), key); !reflect.DeepEqual(byFlag, byFile) {
				t.Errorf("--%s gives %v, the file's %s %v", f.Tag.Get("flag"), byFlag, key, byFile)
			}
		})
	}
}

// A serve file that leaves these keys out gets run's defaults (the one place they
// live: Run's envDefault tags).
func TestServeKeysDefaultAsRun(t *testing.T) {
	file := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(file, []byte("[[listeners]]\naddr = \"127.0.0.1:1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	def := reflect.ValueOf(DefaultRun())
	rt := def.Type()
	for i := range rt.NumField() {
		f := rt.Field(i)
		key := f.Tag.Get("serve")
		if key == "" || f.Name == "Name" || f.Name == "Listen" { // a file must say where to listen
			continue
		}
		if f.Name == "Admin" {
			// On purpose: serve's admin listener is on by default (a site is an
			// operated service), run's is off (two `wasmsrv run` on one machine must
			// not fight over a port; docs/rationale.md "run's admin listener").
			continue
		}
		if got, want := valueAt(t, reflect.ValueOf(*cfg), key), def.Field(i).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s defaults to %v in a file, --%s to %v", key, got, f.Tag.Get("flag"), want)
		}
	}
}

func defaultRun(t *testing.T) Run {
	r, err := LoadRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	return *r
}

// valueAt reads the field at a serve key path ("listeners[0].addr") of a Config.
func valueAt(t *testing.T, v reflect.Value, key string) any {
	t.Helper()
	for _, part := range strings.Split(key, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		found := false
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ","); tag == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("%s: no key %q", key, name)
		}
		if indexed {
			n, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			v = v.Index(n)
		}
	}
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return v.Interface()
}

// run's admin listener follows serve's rules, named by run's flags: an address
// that is not host:port, and one that is not loopback without a token, are
// refused; off (empty) and loopback without a token are fine.
func TestRunAdminChecked(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // "" = valid
	}{
		{nil, ""},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "127.0.0.1:9901"}, ""},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "[::1]:9901"}, ""},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "localhost:9901"}, ""},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "0.0.0.0:9901", "WASMSRV_ADMIN_TOKEN": "t"}, ""},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "0.0.0.0:9901"}, "admin-token: admin listener \"0.0.0.0:9901\" is not loopback"},
		{map[string]string{"WASMSRV_ADMIN_ADDR": ":9901"}, "admin-token:"},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "10.1.2.3:9901"}, "admin-token:"},
		{map[string]string{"WASMSRV_ADMIN_ADDR": "9901"}, "admin: bad address \"9901\""},
	} {
		_, err := LoadRun(tc.env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got %v, want an error with %q", tc.env, err, tc.want)
		}
	}
}
