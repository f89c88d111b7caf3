package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := dispatch(context.Background(), &Options{}, []string{"run", "--help"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) && err != nil {
		t.Fatalf("run --help: %v\n%s", err, stderr.String())
	}
	help := stdout.String() + stderr.String()
	if !strings.Contains(help, "Usage: wasmsrv run") {
		t.Errorf("help has no usage line:\n%s", help)
	}
	// Every field of the run configuration must be listed with its variable.
	rt := reflect.TypeFor[config.Run]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		flagName := f.Tag.Get("flag")
		if flagName == "" {
			continue
		}
		envName, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		line := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(flagName) + `\b[^\n]*\n(?:\s{4,}[^\n]*\n)*`).FindString(help)
		if line == "" {
			t.Errorf("flag -%s is not listed", flagName)
			continue
		}
		if !strings.Contains(line, "$"+config.EnvPrefix+envName) {
			t.Errorf("flag -%s is listed without $%s%s:\n%s", flagName, config.EnvPrefix, envName, line)
		}
	}
}
