package appspec_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/apps"
)

// setting is one app setting as the test drives it: its Go field, the run flag and
// variable, the serve file key (a plugin section's key for RunPlugins) and a value
// that is not the default, written for a flag and for a TOML file.
type setting struct {
	field      string
	flag, env  string
	fileKey    string // "pool_size", or "plugins.http.allow"
	flagValues []string
	toml       string
}

// settings walks config.App by reflection (the test's business only: production
// code maps fields by name) and gives each flag-tagged field a non-default value.
func settings(t *testing.T, dir string) []setting {
	t.Helper()
	var out []setting
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			flagName := f.Tag.Get("flag")
			fileKey, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if p := f.Tag.Get("plugin"); p != "" {
				fileKey = "plugins." + p
			}
			if flagName == "" {
				switch fileKey {
				case "module", "package": // run: the APP argument (TestSpecSource)
				case "plugins": // run: the RunPlugins flags, each walked here
				default:
					t.Errorf("App.%s (file key %q) has no run flag", f.Name, fileKey)
				}
				continue
			}
			if fileKey == "" || fileKey == "-" {
				t.Errorf("App.%s (--%s) has no serve file key", f.Name, flagName)
				continue
			}
			env, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			s := setting{field: f.Name, flag: flagName, env: config.EnvPrefix + env, fileKey: fileKey}
			switch f.Name {
			case "Mode":
				s.flagValues, s.toml = []string{"async"}, `"async"`
			case "Env", "Vars", "Secrets":
				s.flagValues, s.toml = []string{"A=1", "B=two=2"}, `{ A = "1", B = "two=2" }`
			case "Mounts":
				s.flagValues = []string{dir + ":/data", dir + ":/ro:ro"}
				s.toml = fmt.Sprintf(`[{ host = %q, guest = "/data" }, { host = %q, guest = "/ro", read_only = true }]`, dir, dir)
			case "WSOrigins":
				s.flagValues, s.toml = []string{"https://a.example", "https://*.b.example"}, `["https://a.example", "https://*.b.example"]`
			case "Grants":
				s.flagValues, s.toml = []string{"kv", "http"}, `["kv", "http"]`
			case "HTTPAllow", "SocketsAllow":
				s.flagValues, s.toml = []string{"api.example:443", "10.0.0.0/8"}, `["api.example:443", "10.0.0.0/8"]`
			case "SocketsTLSCA":
				s.flagValues, s.toml = []string{"/etc/ca.pem"}, `"/etc/ca.pem"`
			case "MemoryLimit":
				s.flagValues, s.toml = []string{"96MiB"}, `"96MiB"`
			case "DefaultStatus":
				s.flagValues, s.toml = []string{"204"}, "204"
			case "Tenant":
				s.flagValues, s.toml = []string{"acme"}, `"acme"`
			case "CPUBudget":
				s.flagValues, s.toml = []string{"7s"}, `"7s"`
			default:
				switch f.Type {
				case reflect.TypeFor[config.Size]():
					s.flagValues, s.toml = []string{"3KiB"}, `"3KiB"`
					if f.Tag.Get("plugin") != "" {
						s.toml = "3072" // plugin sections take bytes as numbers (plugins/*/ABI.md)
					}
				case reflect.TypeFor[config.Duration]():
					s.flagValues, s.toml = []string{"1m7s"}, `"1m7s"`
				default:
					switch f.Type.Kind() {
					case reflect.Int:
						s.flagValues, s.toml = []string{"7"}, "7"
					case reflect.Bool: // the value that is not the default
						v := strconv.FormatBool(f.Tag.Get("envDefault") != "true")
						s.flagValues, s.toml = []string{v}, v
					case reflect.String:
						s.flagValues, s.toml = []string{"x.example"}, `"x.example"`
					default:
						t.Fatalf("App.%s: no test value for %s", f.Name, f.Type)
					}
				}
			}
			out = append(out, s)
		}
	}
	walk(reflect.TypeFor[config.App]())
	return out
}

// comparable is a Spec with its plugin sections as JSON: a file gives a section's
// lists and numbers as TOML values ([]any, int64), flags as Go's ([]string, int);
// the plugins read both alike.
type comparable struct {
	spec   apps.Spec
	grants string
}

func compared(t *testing.T, how string, a *config.App) comparable {
	t.Helper()
	spec, err := appspec.Of("app", a, appspec.Host{})
	if err != nil {
		t.Fatalf("%s: SpecOf: %v", how, err)
	}
	g, err := json.Marshal(spec.Grants)
	if err != nil {
		t.Fatal(err)
	}
	spec.Grants = nil
	return comparable{spec, string(g)}
}

// Every run flag and every serve app key reach the same runtime setting: a value
// set by the flag, by the WASMSRV_* variable and by the file's [apps.NAME] key
// makes the same apps.Spec, and not the default one.
func TestEveryFlagAndKeyReachTheSameSetting(t *testing.T) {
	dir := t.TempDir()
	module := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	defRun, err := config.LoadRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	defRun.App.SetSource(module)
	def := compared(t, "defaults", &defRun.App)
	all := settings(t, dir)
	if len(all) < 40 {
		t.Fatalf("walked %d settings: the walk misses fields", len(all))
	}
	for _, s := range all {
		t.Run(s.flag, func(t *testing.T) {
			// The flag.
			run, err := config.LoadRun(nil)
			if err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			run.Flags(fs)
			var args []string
			for _, v := range s.flagValues {
				args = append(args, "--"+s.flag+"="+v)
			}
			if err := fs.Parse(append(args, module)); err != nil {
				t.Fatal(err)
			}
			run.App.SetSource(fs.Arg(0))
			grantFor(s, &run.App)
			if err := run.Validate(); err != nil {
				t.Fatal(err)
			}
			byFlag := compared(t, "flag", &run.App)

			// The variable.
			sep := ","
			if f, ok := reflect.TypeFor[config.App]().FieldByName(s.field); ok && f.Tag.Get("envSeparator") != "" {
				sep = f.Tag.Get("envSeparator")
			}
			environ := map[string]string{s.env: strings.Join(s.flagValues, sep)}
			if plugin, _, ok := strings.Cut(strings.TrimPrefix(s.fileKey, "plugins."), "."); ok && strings.HasPrefix(s.fileKey, "plugins.") {
				environ[config.EnvPrefix+"GRANTS"] = plugin
			}
			envRun, err := config.LoadRun(environ)
			if err != nil {
				t.Fatal(err)
			}
			envRun.App.SetSource(module)
			byEnv := compared(t, "variable", &envRun.App)

			// The file key.
			body := fmt.Sprintf("[[listeners]]\naddr = \"127.0.0.1:1\"\n\n[apps.app]\nmodule = %q\n", module)
			if plugin, key, ok := strings.Cut(strings.TrimPrefix(s.fileKey, "plugins."), "."); ok && strings.HasPrefix(s.fileKey, "plugins.") {
				body += fmt.Sprintf("grants = [%q]\n[apps.app.plugins.%s]\n%s = %s\n", plugin, plugin, key, s.toml)
			} else {
				body += fmt.Sprintf("%s = %s\n", s.fileKey, s.toml)
			}
			file := filepath.Join(t.TempDir(), "site.toml")
			if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			a := cfg.Apps["app"]
			byFile := compared(t, "file", &a)

			if reflect.DeepEqual(byFlag, def) {
				t.Errorf("--%s=%s makes the default spec: the flag reaches nothing", s.flag, s.flagValues)
			}
			if !reflect.DeepEqual(byFlag, byEnv) {
				t.Errorf("--%s and %s differ:\nflag     %+v\nvariable %+v", s.flag, s.env, byFlag, byEnv)
			}
			if !reflect.DeepEqual(byFlag, byFile) {
				t.Errorf("--%s and the file's %s differ:\nflag %+v\nfile %+v", s.flag, s.fileKey, byFlag, byFile)
			}
		})
	}
}

// grantFor grants the plugin a plugin flag configures, as the file does.
func grantFor(s setting, a *config.App) {
	if plugin, _, ok := strings.Cut(strings.TrimPrefix(s.fileKey, "plugins."), "."); ok && strings.HasPrefix(s.fileKey, "plugins.") {
		a.Grants = append(a.Grants, plugin)
	}
}

// run's APP argument is serve's module or package: a file is a module, a
// directory a package, and both make the same spec.
func TestSpecSource(t *testing.T) {
	dir := t.TempDir()
	module := filepath.Join(dir, "app.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct{ arg, key string }{{module, "module"}, {dir, "package"}} {
		run, err := config.LoadRun(nil)
		if err != nil {
			t.Fatal(err)
		}
		run.App.SetSource(src.arg)
		file := filepath.Join(t.TempDir(), "site.toml")
		body := fmt.Sprintf("[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.app]\n%s = %q\n", src.key, src.arg)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(file, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := cfg.Apps["app"]
		if got, want := compared(t, "file", &a), compared(t, "run", &run.App); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: file %+v, run %+v", src.key, got, want)
		}
		if a.Source() != src.arg || run.App.Source() != src.arg {
			t.Errorf("%s: sources %q and %q, want %q", src.key, a.Source(), run.App.Source(), src.arg)
		}
	}
}

// An app's table that sets nothing but its module gets exactly run's defaults.
func TestFileDefaultsAreRunDefaults(t *testing.T) {
	run, err := config.LoadRun(nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(file, []byte("listeners:\n  - addr: 127.0.0.1:1\napps:\n  app:\n    module: site.yaml\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps["app"]
	run.App.SetSource(a.Module)
	if got, want := compared(t, "file", &a), compared(t, "run", &run.App); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults differ:\nfile %+v\nrun  %+v", got, want)
	}
}
