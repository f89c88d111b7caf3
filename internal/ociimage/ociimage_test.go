package ociimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

const certs = "/etc/ssl/certs/ca-certificates.crt"

// buildImage builds wasmsrv and its image, as cmd/wasmsrv-image does.
func buildImage(t *testing.T) v1.Image {
	t.Helper()
	if _, err := os.Stat(certs); err != nil {
		t.Skipf("no CA roots at %s (apt-get install ca-certificates)", certs)
	}
	bin := filepath.Join(t.TempDir(), "wasmsrv")
	if err := GoBuild(t.Context(), "../..", runtime.GOARCH, "v0.0.0-test", bin); err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{Binary: bin, CACerts: certs, Arch: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// unpack writes the image's file system under dir, owners and modes included
// (what a container runtime's image store does before it makes a bundle).
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		default:
			t.Fatalf("unexpected entry %s of type %c in the image", h.Name, h.Typeflag)
		}
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// TestImageLayout checks the image's configuration and files: a non-root user,
// the binary, the volume with the cache under it owned by that user, and the
// same digest from the same inputs.
func TestImageLayout(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wasmsrv")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Build(Options{Binary: bin, CACerts: certs, Arch: "amd64"})
	if err != nil {
		t.Skip(err) // no CA roots
	}
	again, _ := Build(Options{Binary: bin, CACerts: certs, Arch: "amd64"})
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same inputs gave two digests: %s %s", d1, d2)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("user %q os %q arch %q", cf.Config.User, cf.OS, cf.Architecture)
	}
	if _, ok := cf.Config.Volumes[DataDir]; !ok || !strings.HasPrefix(CacheDir, DataDir+"/") {
		t.Errorf("volumes %v; the cache %s must be under the volume %s", cf.Config.Volumes, CacheDir, DataDir)
	}
	if !slices.Contains(cf.Config.Env, "WASMSRV_CACHE_DIR="+CacheDir) {
		t.Errorf("env %v has no WASMSRV_CACHE_DIR", cf.Config.Env)
	}
	owners := map[string][2]int{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		owners["/"+strings.TrimSuffix(h.Name, "/")] = [2]int{h.Uid, int(h.Mode)}
	}
	for path, want := range map[string][2]int{
		BinaryPath:    {0, 0o755},
		DataDir:       {UID, 0o755},
		CacheDir:      {UID, 0o755},
		"/tmp":        {0, 0o1777},
		"/etc/passwd": {0, 0o644},
		CACertsPath:   {0, 0o644},
	} {
		if got, ok := owners[path]; !ok || got != want {
			t.Errorf("%s: owner, mode %v want %v (present %v)", path, got, want, ok)
		}
	}
}

// TestDockerfileMatchesLayout keeps the Dockerfile and the daemonless build one
// image: the final stage's environment, user, volume, ports and command are
// Build's, and the build stage writes the same users.
func TestDockerfileMatchesLayout(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	stages := strings.Split(text, "\nFROM ")
	final := stages[len(stages)-1]
	instr := map[string][]string{}
	for line := range strings.SplitSeq(final, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		instr[f[0]] = append(instr[f[0]], strings.Join(f[1:], " "))
	}
	var env []string
	for _, e := range instr["ENV"] {
		env = append(env, strings.Fields(e)...)
	}
	if !slices.Equal(env, Env) {
		t.Errorf("Dockerfile ENV\n%q\nthe image's\n%q", env, Env)
	}
	js := func(v []string) string { b, _ := json.Marshal(v); return strings.ReplaceAll(string(b), ",", ", ") }
	for key, want := range map[string]string{
		"USER":       fmt.Sprintf("%d:%d", UID, GID),
		"WORKDIR":    DataDir,
		"VOLUME":     js([]string{DataDir}),
		"EXPOSE":     strconv.Itoa(HTTPPort) + "/tcp",
		"STOPSIGNAL": "SIGTERM",
		"ENTRYPOINT": js(Entrypoint),
		"CMD":        js(Cmd),
	} {
		if got := instr[key]; len(got) != 1 || got[0] != want {
			t.Errorf("Dockerfile %s %q, want %q", key, got, want)
		}
	}
	build := stages[len(stages)-2]
	for _, want := range []string{
		"printf '" + strings.ReplaceAll(Passwd, "\n", `\n`) + "' > /out/etc/passwd",
		"printf '" + strings.ReplaceAll(Group, "\n", `\n`) + "' > /out/etc/group",
		"-o /out" + BinaryPath + " ./cmd/wasmsrv",
		"/out" + CacheDir,
		"/out" + CACertsPath,
		fmt.Sprintf("--chown=%d:%d /out%s/ %s/", UID, GID, DataDir, DataDir),
	} {
		if !strings.Contains(build, want) && !strings.Contains(final, want) {
			t.Errorf("Dockerfile does not have %q", want)
		}
	}
}

// runtimeSpec is the OCI runtime configuration of the test's container: runc's
// default spec with the image's process (entrypoint, command, environment, user,
// working directory), a read-only root, the data volume and the site file bound
// in, and the host's network namespace.
func runtimeSpec(t *testing.T, runc, bundle string, cf *v1.ConfigFile, env []string, mounts []map[string]any) {
	t.Helper()
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	uid, gid, _ := strings.Cut(cf.Config.User, ":")
	u, _ := strconv.Atoi(uid)
	g, _ := strconv.Atoi(gid)
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = append(slices.Clone(cf.Config.Entrypoint), cf.Config.Cmd...)
	proc["env"] = append(slices.Clone(cf.Config.Env), env...)
	proc["cwd"] = cf.Config.WorkingDir
	proc["user"] = map[string]any{"uid": u, "gid": g}
	proc["noNewPrivileges"] = true
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	spec["mounts"] = append(spec["mounts"].([]any), func() []any {
		var ms []any
		for _, m := range mounts {
			ms = append(ms, m)
		}
		return ms
	}()...)
	linux := spec["linux"].(map[string]any)
	var ns []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			ns = append(ns, n)
		}
	}
	linux["namespaces"] = ns
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImageRunsUnderRunc builds the image without Docker, unpacks it into an OCI
// bundle and runs it with runc (Debian's): the server inside runs as the
// image's non-root user from a read-only root, serves a Wasm app from the site
// file at /etc/wasmsrv/site.toml over HTTP, keeps its compile cache in the
// volume, and stops cleanly on SIGTERM.
func TestImageRunsUnderRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed (apt-get install runc; .ci/run installs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("running a container with runc needs root (this test made a rootful bundle)")
	}
	img := buildImage(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	bundle := filepath.Join(work, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	unpack(t, img, rootfs)

	// The volume and the config, as a runtime binds them.
	data := filepath.Join(work, "data")
	if err := os.MkdirAll(filepath.Join(data, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, filepath.Join(data, "cache")} {
		if err := os.Chown(p, UID, GID); err != nil {
			t.Fatal(err)
		}
	}
	etc := filepath.Join(work, "etc")
	app := filepath.Join(work, "app")
	for _, d := range []string{etc, app} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hello, err := os.ReadFile("../../samples/c-hello/main.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "hello.wasm"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	port, adminPort := testkit.FreePort(t), testkit.FreePort(t)
	site := fmt.Sprintf(`[admin]
addr = "127.0.0.1:%d"

[[listeners]]
addr = "0.0.0.0:8080" # WASMSRV_LISTEN replaces it

[apps.hello]
module = "/app/hello.wasm"
pool_size = 1

[[routes]]
path = "/"
app = "hello"
`, adminPort)
	if err := os.WriteFile(filepath.Join(etc, "site.toml"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	bind := func(src, dst string, ro bool) map[string]any {
		opts := []string{"rbind", "nosuid", "nodev"}
		if ro {
			opts = append(opts, "ro")
		}
		return map[string]any{"destination": dst, "type": "bind", "source": src, "options": opts}
	}
	runtimeSpec(t, runc, bundle, cf, []string{fmt.Sprintf("WASMSRV_LISTEN=127.0.0.1:%d", port)}, []map[string]any{
		bind(data, DataDir, false),
		bind(etc, "/etc/wasmsrv", true),
		bind(app, "/app", true),
		{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "nodev", "mode=1777", "size=64m"}},
	})

	state := filepath.Join(work, "runc-state")
	id := fmt.Sprintf("wasmsrv-test-%d", os.Getpid())
	runcCmd := func(args ...string) *exec.Cmd {
		return exec.Command(runc, append([]string{"--root", state}, args...)...)
	}
	t.Cleanup(func() {
		if out, err := runcCmd("delete", "--force", id).CombinedOutput(); err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("runc delete: %v\n%s", err, out)
		}
	})
	var logs bytes.Buffer
	run := runcCmd("run", "--bundle", bundle, id)
	run.Stdout, run.Stderr = &logs, &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("container output:\n%s", logs.String())
		}
	}()

	// The server inside answers (the first start compiles the module).
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(2 * time.Minute)
	var body string
	for {
		select {
		case err := <-exited:
			t.Fatalf("the container exited before serving: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /: %d %s", resp.StatusCode, b)
			}
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the container on %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "Hello from wasmsrv!\n" {
		t.Errorf("body %q", body)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", adminPort))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("admin health: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The process inside is the image's user, not root.
	out, err := runcCmd("state", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if uid := procUID(t, st.Pid); uid != strconv.Itoa(UID) {
		t.Errorf("the server runs as uid %s, want %d", uid, UID)
	}

	// The compile cache went to the volume, written by that user.
	var cached int
	_ = filepath.WalkDir(filepath.Join(data, "cache"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			cached++
			if fi, err := d.Info(); err == nil && fi.Sys().(*syscall.Stat_t).Uid != UID {
				t.Errorf("%s is owned by uid %d", p, fi.Sys().(*syscall.Stat_t).Uid)
			}
		}
		return nil
	})
	if cached == 0 {
		t.Error("nothing in the volume's compile cache")
	}

	// SIGTERM (the image's stop signal, what `docker stop` and the kubelet
	// send) drains and exits 0.
	if out, err := runcCmd("kill", id, "TERM").CombinedOutput(); err != nil {
		t.Fatalf("runc kill: %v\n%s", err, out)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("container exit: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the container did not stop within a minute of SIGTERM")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped record in the container's log")
	}
}

func procUID(t *testing.T, pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			return strings.Fields(rest)[0]
		}
	}
	return ""
}
