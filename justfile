# wasmsrv tasks. Install just with `npm i -g rust-just`; `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build the wasmsrv CLI to bin/wasmsrv, its version from `git describe` (Go stamps no revision in a git worktree).
build:
    go build -ldflags "-X main.version=$(git describe --tags --always --dirty)" -o bin/wasmsrv ./cmd/wasmsrv

# Build the container image without Docker (the Dockerfile's layout) to bin/wasmsrv-image.tar; `docker load -i` it, or `-layout DIR` for an OCI layout.
image *ARGS:
    mkdir -p bin
    go run ./cmd/wasmsrv-image -o bin/wasmsrv-image.tar {{ARGS}}

# The cluster on this machine: Redis, three serve nodes and a serve front; a deploy through any node served by all three within 2 s, chat across nodes, kill -9 and a rolling restart (readiness and drain) under load, Redis restarted (figures in the output: sent, failed, retried, ejections).
cluster:
    go test -race -count=1 -v -run 'TestE2ECluster$' ./cmd/wasmsrv

# Build the Go samples to bin/samples/<name>.wasm with `wasmsrv build`, as `wasmsrv run` builds them: SDK apps as reactors for the shape they declare (//wasmsrv:mode), plain programs as WASI commands (CGI mode).
samples:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p bin/samples
    go build -o bin/wasmsrv ./cmd/wasmsrv
    for main in samples/*/main.go; do
        dir=$(dirname "$main"); name=$(basename "$dir")
        bin/wasmsrv build -o "bin/samples/$name.wasm" "./$dir"
    done

# Rebuild the committed C guests (and WAT test guests) from source; `--check` verifies they match.
c *ARGS:
    bash sdk/c/build.sh {{ARGS}}

# Per-instance costs: instantiate C vs Go guests, a whole CGI run, the gateway hot path.
bench-go:
    go test -run '^$' -bench 'InstantiateCvsGo|CommandRun' ./runtime/
    go test -run '^$' -bench 'CGIHandler|GatewayHello' ./host/

# Run every test with the race detector.
test:
    go test -race ./...

# Run every fuzz target for a number of executions each (default 20000), e.g. `just fuzz 1000000`.
fuzz *ARGS:
    bash .ci/fuzz {{ARGS}}

# Benchmark wasmsrv against its peers with wrk, e.g. `just bench -d 3s hello` or `just bench -o bench.md`.
bench *ARGS:
    go run ./bench {{ARGS}}

# gofmt must list nothing; go vet must pass.
lint:
    #!/usr/bin/env bash
    set -euo pipefail
    unformatted=$(gofmt -l .)
    if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
    go vet ./...

# Rebuild committed test wasm binaries: every testdata/build.sh (run from its own dir), then go generate.
testdata:
    #!/usr/bin/env bash
    set -euo pipefail
    found=0
    while IFS= read -r script; do
        found=1
        echo "testdata: $script"
        (cd "$(dirname "$script")" && bash ./build.sh)
    done < <(find . -path ./.git -prune -o -path '*/testdata/build.sh' -print | sort)
    if [ "$found" = 0 ]; then echo "testdata: no testdata/build.sh found"; fi
    go generate ./...

# Serve samples/hello on http://127.0.0.1:8080.
run:
    go run ./cmd/wasmsrv run ./samples/hello
