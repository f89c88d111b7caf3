package cli

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	vcs := func(rev, when, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "486f2f397e65ae3c8261a6145c37302864124fea"
	for _, tt := range []struct {
		name, linked string
		bi           *debug.BuildInfo
		want         string
	}{
		{"go install of a tag", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}},
			"v1.2.3 (go1.26.8)"},
		{"go build in a clean checkout", "", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20261201110400-486f2f397e65"}, Settings: vcs(rev, "2026-12-01T11:04:00Z", "false")},
			"v0.0.0-20261201110400-486f2f397e65 (rev 486f2f397e65, 2026-12-01T11:04:00Z, go1.26.8)"},
		{"go build with uncommitted changes", "", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "v0.0.0-20261201110400-486f2f397e65+dirty"}, Settings: vcs(rev, "2026-12-01T11:04:00Z", "true")},
			"v0.0.0-20261201110400-486f2f397e65+dirty (rev 486f2f397e65+dirty, 2026-12-01T11:04:00Z, go1.26.8)"},
		{"revision without a module version", "", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "", "true")},
			"devel (rev 486f2f397e65+dirty, go1.26.8)"},
		{"no stamp", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"devel (no version or VCS stamp in this build, go1.26.8)"},
		{"link-time version wins", "v2.0.0-rc1", &debug.BuildInfo{GoVersion: "go1.26.8",
			Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-01T11:04:00Z", "false")},
			"v2.0.0-rc1 (rev 486f2f397e65, 2026-12-01T11:04:00Z, go1.26.8)"},
		{"no build info", "", nil, "devel (no version or VCS stamp in this build)"},
	} {
		if got := formatVersion(tt.linked, tt.bi); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}
