package config

import (
	"flag"
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
		"WASMSRV_WS_ORIGINS=https://a.example/app":   `ws-origins[0] "https://a.example/app"`,
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
