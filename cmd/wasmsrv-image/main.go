// Command wasmsrv-image builds wasmsrv's container image without a Docker
// daemon (the layout of the Dockerfile; package internal/ociimage):
//
//	go run ./cmd/wasmsrv-image -o wasmsrv.tar        # then: docker load -i wasmsrv.tar
//	go run ./cmd/wasmsrv-image -layout ./oci         # an OCI image layout directory
//
// It builds ./cmd/wasmsrv (static, CGO_ENABLED=0) unless -binary names one.
// SOURCE_DATE_EPOCH, if set, stamps the image; otherwise it is the Unix epoch,
// so the same sources give the same digest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/wasmsrv/wasmsrv/internal/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wasmsrv-image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wasmsrv-image", flag.ContinueOnError)
	bin := fs.String("binary", "", "a static linux wasmsrv binary (default: build ./cmd/wasmsrv)")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the image")
	tag := fs.String("tag", "wasmsrv:dev", "the image's name in the -o tarball")
	out := fs.String("o", "", "write a tarball `docker load` reads")
	dir := fs.String("layout", "", "write an OCI image layout directory")
	version := fs.String("version", "", "what `wasmsrv version` says (default: git describe --tags --always --dirty)")
	certs := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA roots to put in the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" && *dir == "" {
		return errors.New("give -o FILE.tar and/or -layout DIR")
	}
	created := time.Unix(0, 0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: want seconds since 1970, got %q", s)
		}
		created = time.Unix(sec, 0)
	}
	if *bin == "" {
		tmp, err := os.MkdirTemp("", "wasmsrv-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*bin = filepath.Join(tmp, "wasmsrv")
		if *version == "" {
			if out, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
				*version = strings.TrimSpace(string(out))
			}
		}
		if err := ociimage.GoBuild(ctx, ".", *arch, *version, *bin); err != nil {
			return err
		}
	}
	img, err := ociimage.Build(ociimage.Options{Binary: *bin, CACerts: *certs, Arch: *arch, Created: created,
		Labels: map[string]string{"org.opencontainers.image.title": "wasmsrv", "org.opencontainers.image.version": *version}})
	if err != nil {
		return err
	}
	if *out != "" {
		ref, err := name.NewTag(*tag)
		if err != nil {
			return fmt.Errorf("-tag: %w", err)
		}
		if err := tarball.WriteToFile(*out, ref, img); err != nil {
			return err
		}
	}
	if *dir != "" {
		p, err := layout.Write(*dir, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": *tag})); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(*tag, digest)
	return nil
}
