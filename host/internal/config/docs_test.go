package config

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the settings table in README.md from the tags")

const (
	tableBegin = "<!-- settings table: generated from config's tags by `go test ./host/internal/config -run TestSettingsTable -update` -->\n"
	tableEnd   = "<!-- end of settings table -->\n"
)

// settingsTable renders every setting of run and serve from the tags: the flag,
// the variable, the serve key, the default and the help. It is the one place the
// settings are documented.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("| `wasmsrv run` flag | variable | `wasmsrv serve` | default | meaning |\n|---|---|---|---|---|\n")
	var walk func(t reflect.Type, section string)
	walk = func(t reflect.Type, section string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous {
				sec := section
				switch f.Type {
				case reflect.TypeFor[Process]():
					sec = "process"
				case reflect.TypeFor[App]():
					sec = "app"
				case reflect.TypeFor[RunPlugins]():
					sec = "plugin"
				}
				walk(f.Type, sec)
				continue
			}
			flagName, envName := f.Tag.Get("flag"), f.Tag.Get("env")
			file, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			var serve string
			switch section {
			case "process":
				serve = "the same flag"
			case "app":
				serve = "`apps.NAME." + file + "`"
			case "plugin":
				serve = "`apps.NAME.plugins." + f.Tag.Get("plugin") + "`"
			default:
				serve = "`" + f.Tag.Get("serve") + "`"
			}
			flagCol, envCol := "—", "—"
			if flagName != "" {
				flagCol = "`--" + flagName + "`"
				envName, _, _ = strings.Cut(envName, ",")
				envCol = "`" + EnvPrefix + envName + "`"
				if sep := f.Tag.Get("envSeparator"); sep != "" {
					envCol += " (`" + sep + "`-separated)"
				}
			} else {
				flagCol = "the APP argument"
				if file == "plugins" {
					flagCol = "the plugin flags below"
				}
			}
			def, ok := f.Tag.Lookup("envDefault")
			switch {
			case !ok:
				def = "—"
			case def == "0" || def == "false":
				def = "`" + def + "`"
			default:
				def = "`" + def + "`"
			}
			help := strings.ReplaceAll(f.Tag.Get("help"), "|", "\\|")
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", flagCol, envCol, serve, def, help)
		}
	}
	walk(reflect.TypeFor[Run](), "")
	return b.String()
}

// README.md's settings table is settingsTable: a setting added to the struct is
// documented by running the test with -update.
func TestSettingsTable(t *testing.T) {
	const path = "../../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no settings table between %q and %q", path, tableBegin, tableEnd)
	}
	want := doc[:i+len(tableBegin)] + settingsTable() + doc[j:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's settings table is out of date: go test ./host/internal/config -run TestSettingsTable -update", path)
}

// docs/serve.md lists the variables that override a file (SiteEnv).
func TestServeDocsListTheVariables(t *testing.T) {
	data, err := os.ReadFile("../../../docs/serve.md")
	if err != nil {
		t.Fatal(err)
	}
	rt := reflect.TypeFor[SiteEnv]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("env"), ",")
		if !strings.Contains(string(data), EnvPrefix+name) {
			t.Errorf("docs/serve.md does not mention %s%s", EnvPrefix, name)
		}
	}
}
