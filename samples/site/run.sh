#!/usr/bin/env bash
# Runs the site sample: two upstream backends and wasmsrv serving site.toml.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
go build -o /tmp/wasmsrv-site-backend ./samples/site/backend
go build -o /tmp/wasmsrv-site ./cmd/wasmsrv
/tmp/wasmsrv-site-backend -addr 127.0.0.1:9001 -name b1 & b1=$!
/tmp/wasmsrv-site-backend -addr 127.0.0.1:9002 -name b2 & b2=$!
trap 'kill $b1 $b2 2>/dev/null' EXIT
/tmp/wasmsrv-site check -c samples/site/site.toml
/tmp/wasmsrv-site serve -c samples/site/site.toml
