package deploycheck

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

const unitPath = root + "/deploy/systemd/wasmsrv.service"

// unitKeys reads a unit file's [Service] settings (a key set twice keeps both).
func unitKeys(t *testing.T, text string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit: %q is not KEY=VALUE", line)
			}
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestSystemdUnit checks deploy/systemd/wasmsrv.service: systemd's own verifier
// accepts it (with the binary it names present), SIGTERM drains within
// TimeoutStopSec, the server's directories are the ones systemd makes for the
// dynamic user, and the hardening is on.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	keys := unitKeys(t, text)
	one := func(k string) string {
		if len(keys[k]) != 1 {
			t.Fatalf("unit: want one %s, have %q", k, keys[k])
		}
		return keys[k][0]
	}
	env := map[string]string{}
	for _, e := range keys["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}

	// The drain: TimeoutStopSec covers the default shutdown_timeout plus a margin.
	cfg, err := config.Parse("site.toml", []byte("[[listeners]]\naddr = \"127.0.0.1:8080\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := time.ParseDuration(one("TimeoutStopSec") + "s")
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if grace := cfg.Server.ShutdownTimeout.D(); stop <= grace || stop-grace > 15*time.Second {
		t.Errorf("TimeoutStopSec %v for the default shutdown_timeout %v: want a little more", stop, grace)
	}
	if one("KillSignal") != "SIGTERM" {
		t.Error("KillSignal must be SIGTERM, the signal wasmsrv drains on")
	}

	// Directories: the compile cache in CacheDirectory, home (the kv file's
	// default place) in StateDirectory.
	if got, want := env[config.EnvPrefix+"CACHE_DIR"], "/var/cache/"+one("CacheDirectory"); got != want {
		t.Errorf("WASMSRV_CACHE_DIR %q, want %q (CacheDirectory)", got, want)
	}
	if got, want := env["HOME"], "/var/lib/"+one("StateDirectory"); got != want {
		t.Errorf("HOME %q, want %q (StateDirectory)", got, want)
	}
	if !strings.Contains(one("ExecStart"), "-c /etc/"+one("ConfigurationDirectory")+"/") {
		t.Errorf("ExecStart %q does not read its file from ConfigurationDirectory", one("ExecStart"))
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
	} {
		if got := one(k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if _, ok := keys["MemoryDenyWriteExecute"]; ok {
		t.Error("MemoryDenyWriteExecute breaks wazero's compiler")
	}

	// systemd's verifier, with the binary where ExecStart looks for it.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian's systemd package); the unit's settings were checked above")
	}
	bin := buildWasmsrv(t)
	exe, _, _ := strings.Cut(one("ExecStart"), " ")
	unit := filepath.Join(t.TempDir(), "wasmsrv.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, exe, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// And the verifier is not blind: a misspelled setting fails it.
	bad := filepath.Join(t.TempDir(), "wasmsrv.service")
	if err := os.WriteFile(bad, []byte(strings.ReplaceAll(strings.ReplaceAll(text, exe, bin), "KillSignal=", "KillSignall=")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", bad).CombinedOutput(); !strings.Contains(string(out), "KillSignall") {
		t.Errorf("systemd-analyze verify did not flag an unknown key: %s", out)
	}
}
