package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/tenant"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// The commands of a hosting site's deploy API (docs/hosting.md): deploy,
// versions, rollback, apps, tenants. Each talks to the admin listener's /v1 API
// with a token: the server and token come from --server/--token or
// WASMSRV_SERVER/WASMSRV_TOKEN, the tenant from --tenant, WASMSRV_TENANT or the
// token itself.

const hostingUsage = `Usage: wasmsrv %s [flags]%s

%s

Flags (each overrides the environment variable shown):
`

// client talks to the deploy API.
type client struct {
	server, token, tenant string
	hc                    *http.Client
}

// hostingFlags registers the common flags on fs.
func hostingFlags(fs *flag.FlagSet) *client {
	c := &client{hc: &http.Client{Timeout: 10 * time.Minute}}
	def := os.Getenv(config.EnvPrefix + "SERVER")
	if def == "" {
		def = "http://" + config.DefaultAdminAddr
	}
	fs.StringVar(&c.server, "server", def, "the admin listener's URL [$WASMSRV_SERVER]")
	fs.StringVar(&c.token, "token", os.Getenv(config.EnvPrefix+"TOKEN"), "an operator or tenant token [$WASMSRV_TOKEN]")
	fs.StringVar(&c.tenant, "tenant", os.Getenv(config.EnvPrefix+"TENANT"), "the tenant (default: the token's) [$WASMSRV_TENANT]")
	return c
}

// apiError is a refusal of the API: its status and message.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// do sends a request and decodes a JSON answer into out (nil: ignored).
func (c *client) do(ctx context.Context, method, path string, body io.Reader, size int64, out any) error {
	if c.token == "" {
		return &usageError{"a token is required: --token or WASMSRV_TOKEN"}
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.server, "/")+path, body)
	if err != nil {
		return &usageError{fmt.Sprintf("--server %q: %v", c.server, err)}
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Wasmsrv-Admin", "1")
	if _, ok := body.(*bytes.Reader); ok {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &apiError{resp.StatusCode, e.Error}
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *client) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	var n int64
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, n = bytes.NewReader(b), int64(len(b))
	}
	return c.do(ctx, method, path, body, n, out)
}

// resolveTenant fills c.tenant from the token when not given.
func (c *client) resolveTenant(ctx context.Context) error {
	if c.tenant != "" {
		return nil
	}
	var who struct {
		Operator bool   `json:"operator"`
		Tenant   string `json:"tenant"`
	}
	if err := c.json(ctx, http.MethodGet, "/v1/whoami", nil, &who); err != nil {
		return err
	}
	if who.Tenant == "" {
		return &usageError{"the operator's token names no tenant: give --tenant or WASMSRV_TENANT"}
	}
	c.tenant = who.Tenant
	return nil
}

func (c *client) appPath(app string, rest string) string {
	return "/v1/tenants/" + url.PathEscape(c.tenant) + "/apps/" + url.PathEscape(app) + rest
}

// listFlag collects a repeatable string flag.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(s string) error { *f = append(*f, s); return nil }

func newFlagSet(name, args, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, hostingUsage, name, args, about); fs.PrintDefaults() }
	return fs
}

func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	return pos, nil
}

const deployAbout = `Upload APP.wasm (or build DIR, a Go main package or C sources, first) to a hosting
site as a new version of the app, and make it take --percent of the app's requests
(100: the active version; less: a gradual deployment beside the active one). The
server validates the module before storing it: a bad one is refused with 422 and
nothing changes. --host claims host names for the app (a name another tenant
holds is refused with 409); --settings FILE gives the app's settings as JSON, the
keys of a site file's [apps.NAME] (pool_size, memory_limit, grants, env...).`

func cmdDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("deploy", " APP.wasm|DIR", deployAbout, stderr)
	c := hostingFlags(fs)
	app := fs.String("app", os.Getenv(config.EnvPrefix+"APP"), "the app's name (default: the module's or directory's) [$WASMSRV_APP]")
	percent := fs.Int("percent", 100, "share of the app's requests the new version takes (1-100)")
	sticky := fs.Bool("sticky", false, "with --percent below 100: each client stays on one version (by its address)")
	settings := fs.String("settings", "", "a JSON file of the app's settings (replaces the stored ones)")
	var hosts stringsFlag
	fs.Var(&hosts, "host", "a host name the app answers (repeatable; replaces the stored ones)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return &usageError{"deploy needs exactly one APP.wasm or DIR"}
	}
	if *percent < 1 || *percent > 100 {
		return &usageError{"--percent: want 1..100"}
	}
	src := pos[0]
	if *app == "" {
		*app = apps.DefaultName(src)
	}
	logOut, meter := progressOutput(stderr, "text")
	log := newLogger(logOut, "info", "text")
	wasmPath := src
	if st, err := os.Stat(src); err != nil {
		return err
	} else if st.IsDir() {
		var task *progress.Task
		r, err := builder.BuildDir(ctx, src, builder.Options{Mode: runtime.ModeAuto, OnStep: func(step string) {
			if task == nil {
				task = meter.Start(log, 0, "building guest", "dir", src)
			}
			task.SetStep(step)
		}})
		if task != nil {
			task.End()
		}
		if err != nil {
			return err
		}
		wasmPath = r.Path
	}
	if err := c.resolveTenant(ctx); err != nil {
		return err
	}
	change := map[string]any{}
	if len(hosts) > 0 {
		change["hosts"] = []string(hosts)
	}
	if *settings != "" {
		b, err := os.ReadFile(*settings)
		if err != nil {
			return err
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("--settings %s: %w", *settings, err)
		}
		change["settings"] = s
	}
	if len(change) > 0 {
		if err := c.json(ctx, http.MethodPut, c.appPath(*app, ""), change, nil); err != nil {
			return err
		}
	}
	f, err := os.Open(wasmPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// An upload (with the server's validation) that ends within a second shows nothing.
	task := meter.Start(log, time.Second, "uploading", "app", *app, "module", filepath.Base(wasmPath))
	body := &counting{r: f, total: st.Size(), task: task}
	var v struct {
		ID string `json:"id"`
	}
	err = c.do(ctx, http.MethodPost, c.appPath(*app, "/versions"), body, st.Size(), &v)
	task.End()
	if err != nil {
		return err
	}
	var out struct {
		Active, Canary string
		Percent        int
	}
	if err := c.json(ctx, http.MethodPost, c.appPath(*app, "/deploy"), map[string]any{"version": v.ID, "percent": *percent, "sticky": *sticky}, &out); err != nil {
		return fmt.Errorf("version %s uploaded, but not deployed: %w", short(v.ID), err)
	}
	fmt.Fprintf(stdout, "wasmsrv: deployed %s/%s version %s (%d%%)\n", c.tenant, *app, short(v.ID), *percent)
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// counting reports an upload's progress as the task's step.
type counting struct {
	r     io.Reader
	total int64
	n     atomic.Int64
	task  *progress.Task
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	done := c.n.Add(int64(n))
	if c.total > 0 {
		c.task.SetStep(fmt.Sprintf("%s / %s (%d%%)", config.FormatSize(done), config.FormatSize(c.total), done*100/c.total))
	}
	return n, err
}

func cmdVersions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("versions", " --app APP", "List an app's versions, newest last, with the active one and a split's share.", stderr)
	c := hostingFlags(fs)
	app := fs.String("app", os.Getenv(config.EnvPrefix+"APP"), "the app [$WASMSRV_APP]")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *app == "" {
		return &usageError{"versions needs --app"}
	}
	if err := c.resolveTenant(ctx); err != nil {
		return err
	}
	var out struct {
		Versions []struct {
			ID       string    `json:"id"`
			Size     int64     `json:"size"`
			Uploaded time.Time `json:"uploaded"`
			By       string    `json:"by"`
		} `json:"versions"`
		Active, Canary string
		Percent        int
	}
	if err := c.json(ctx, http.MethodGet, c.appPath(*app, "/versions"), nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSIZE\tUPLOADED\tBY\tSTATE")
	for _, v := range out.Versions {
		state := ""
		switch v.ID {
		case out.Active:
			state = fmt.Sprintf("active (%d%%)", 100-out.Percent)
		case out.Canary:
			state = fmt.Sprintf("canary (%d%%)", out.Percent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", short(v.ID), config.FormatSize(v.Size), v.Uploaded.Format(time.RFC3339), v.By, state)
	}
	return tw.Flush()
}

func cmdRollback(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("rollback", " --app APP [--to VERSION]",
		"Make an earlier version of the app active at once (default: the one active before the current), ending any split.", stderr)
	c := hostingFlags(fs)
	app := fs.String("app", os.Getenv(config.EnvPrefix+"APP"), "the app [$WASMSRV_APP]")
	to := fs.String("to", "", "the version (its id or first 8+ hex digits; default: the previous active one)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *app == "" {
		return &usageError{"rollback needs --app"}
	}
	if err := c.resolveTenant(ctx); err != nil {
		return err
	}
	var out struct{ Active string }
	if err := c.json(ctx, http.MethodPost, c.appPath(*app, "/rollback"), map[string]any{"version": *to}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wasmsrv: %s/%s rolled back to %s\n", c.tenant, *app, short(out.Active))
	return nil
}

func cmdApps(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("apps", "", "List the tenant's apps: host names, active version, split.", stderr)
	c := hostingFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := c.resolveTenant(ctx); err != nil {
		return err
	}
	var out struct {
		Apps []struct {
			Name           string
			Hosts          []string
			Active, Canary string
			Percent        int
			Versions       []json.RawMessage
		} `json:"apps"`
	}
	if err := c.json(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(c.tenant)+"/apps", nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tHOSTS\tACTIVE\tCANARY\tVERSIONS")
	for _, a := range out.Apps {
		canary := ""
		if a.Canary != "" {
			canary = fmt.Sprintf("%s (%d%%)", short(a.Canary), a.Percent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", a.Name, strings.Join(a.Hosts, ","), short(a.Active), canary, len(a.Versions))
	}
	return tw.Flush()
}

const tenantsAbout = `With no argument, list the tenants (operator token). "create NAME" makes a tenant
through the API and prints its first token (shown once); --quotas FILE gives its
quotas and grants as JSON. "token NAME" prints a new token and its hash without a
server: the hash goes in the site file's [tenants.NAME] tokens.`

func cmdTenants(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tenants", " [create NAME | token NAME]", tenantsAbout, stderr)
	c := hostingFlags(fs)
	spec := fs.String("quotas", "", "create: a JSON file with the tenant's quotas, grants and plugins sections")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		var out struct {
			Tenants []config.Tenant `json:"tenants"`
		}
		if err := c.json(ctx, http.MethodGet, "/v1/tenants", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tGRANTS\tFROM FILE")
		for _, t := range out.Tenants {
			fmt.Fprintf(tw, "%s\t%s\t%v\n", t.Name, strings.Join(t.Grants, ","), t.FromFile)
		}
		return tw.Flush()
	case len(pos) == 2 && pos[0] == "token":
		tok, hash := tenant.NewToken(pos[1])
		if _, ok := tenant.Named(tok); !ok {
			return &usageError{fmt.Sprintf("bad tenant name %q", pos[1])}
		}
		fmt.Fprintf(stdout, "token: %s\nhash:  %s\n", tok, hash)
		return nil
	case len(pos) == 2 && pos[0] == "create":
		t := map[string]any{}
		if *spec != "" {
			b, err := os.ReadFile(*spec)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &t); err != nil {
				return fmt.Errorf("--quotas %s: %w", *spec, err)
			}
		}
		t["name"] = pos[1]
		var out struct {
			Token string `json:"token"`
		}
		if err := c.json(ctx, http.MethodPost, "/v1/tenants", t, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s created; its token (shown once):\n%s\n", pos[1], out.Token)
		return nil
	}
	fs.Usage()
	return &usageError{"tenants takes no argument, create NAME or token NAME"}
}
