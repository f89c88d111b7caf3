// Package ociimage builds wasmsrv's container image without a Docker daemon, the
// way ko does (go-containerregistry): one layer with the static binary, the CA
// roots, a passwd entry for the non-root user and the data volume with the
// compile cache under it. The layout is the Dockerfile's at the repository's root,
// file for file (TestDockerfileMatchesLayout), so `docker build` and
// `go run ./cmd/wasmsrv-image` give the same image.
package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout; the Dockerfile's stages write the same.
const (
	BinaryPath = "/usr/local/bin/wasmsrv"
	// DataDir is the volume: the kv store, the state of apps, and the cache.
	DataDir = "/data"
	// CacheDir holds compiled code (WASMSRV_CACHE_DIR), so a restart with the
	// volume kept skips the first compile.
	CacheDir = "/data/cache"
	// ConfigPath is the site file serve reads (WASMSRV_CONFIG); mount it.
	ConfigPath  = "/etc/wasmsrv/site.toml"
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID are the user the server runs as (the "nonroot" of distroless).
	UID = 65532
	GID = 65532
	// HTTPPort is the port the image exposes (WASMSRV_LISTEN below). The
	// admin listener stays where the site file puts it (loopback by default):
	// off loopback it needs a token, which an image cannot ship.
	HTTPPort = 8080
)

// Passwd and Group name the image's users, so the user has a name and a home.
var (
	Passwd = fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, GID, DataDir)
	Group  = fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", GID)
)

// Env is the image's environment: where serve finds its file, where the caches
// and the kv file go, and listeners on every address (a container's loopback
// is its own).
var Env = []string{
	"PATH=/usr/local/bin",
	"HOME=" + DataDir,
	"SSL_CERT_FILE=" + CACertsPath,
	"WASMSRV_CONFIG=" + ConfigPath,
	"WASMSRV_CACHE_DIR=" + CacheDir,
	"WASMSRV_KV_PATH=" + DataDir + "/kv.db",
	"WASMSRV_LISTEN=0.0.0.0:" + strconv.Itoa(HTTPPort),
	"WASMSRV_LOG_FORMAT=json",
}

// Entrypoint and Cmd: `serve` with the file at ConfigPath; `docker run IMAGE run
// /app/main.wasm` runs one module instead.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"serve"}
)

// Options say what goes in.
type Options struct {
	Binary  string // a static linux wasmsrv binary (CGO_ENABLED=0)
	CACerts string // PEM bundle of CA roots (the build machine's)
	Arch    string // GOARCH of the binary
	// Created stamps the image and its files; zero is the Unix epoch, so the
	// same inputs give the same digest.
	Created time.Time
	Labels  map[string]string
}

// Build returns the image.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: the binary: %w", err)
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil {
		return nil, fmt.Errorf("image: the CA roots: %w", err)
	}
	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	layerTar, err := files(bin, certs, created.UTC())
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: created}, CreatedBy: "wasmsrv-image", Comment: "wasmsrv, CA roots, user " + strconv.Itoa(UID) + ", " + DataDir,
	}})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = o.Arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", UID, GID),
		Env:          Env,
		Entrypoint:   Entrypoint,
		Cmd:          Cmd,
		WorkingDir:   DataDir,
		Volumes:      map[string]struct{}{DataDir: {}},
		ExposedPorts: map[string]struct{}{strconv.Itoa(HTTPPort) + "/tcp": {}},
		StopSignal:   "SIGTERM",
		Labels:       o.Labels,
	}
	return mutate.ConfigFile(img, cf)
}

// files is the layer: every file and directory with its owner and mode.
func files(bin, certs []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(Passwd)) },
		func() error { return file("etc/group", 0o644, []byte(Group)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error { return file(CACertsPath[1:], 0o644, certs) },
		func() error { return dir("etc/wasmsrv", 0o755, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("usr/local", 0o755, 0) },
		func() error { return dir("usr/local/bin", 0o755, 0) },
		func() error { return file(BinaryPath[1:], 0o755, bin) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir(DataDir[1:], 0o755, UID) },
		func() error { return dir(CacheDir[1:], 0o755, UID) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("image: layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GoBuild builds the wasmsrv command of the module in dir as a static linux
// binary for arch at out, as the Dockerfile's build stage does; version, if
// not empty, is what `wasmsrv version` says.
func GoBuild(ctx context.Context, dir, arch, version, out string) error {
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X main.version=" + version
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags="+ldflags, "-o", out, "./cmd/wasmsrv")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: go build: %w\n%s", err, b)
	}
	return nil
}
