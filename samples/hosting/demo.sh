#!/usr/bin/env bash
# samples/hosting: two tenants on one wasmsrv. Tenant alpha deploys v1, sends 10%
# of its requests to v2, then all of them, then rolls back; tenant beta deploys an
# app of its own and cannot touch alpha's. Needs curl; WASMSRV_BIN names a built
# wasmsrv (default: built here). The site's data goes to a temporary directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${WASMSRV_BIN:-}
if [ -z "$bin" ]; then
	(cd "$here/../.." && go build -o /tmp/wasmsrv-hosting ./cmd/wasmsrv)
	bin=/tmp/wasmsrv-hosting
fi
work=$(mktemp -d)
cp "$here/site.toml" "$work/"
"$bin" serve -c "$work/site.toml" >"$work/out" 2>"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 600); do
	grep -q serving "$work/out" 2>/dev/null && break
	kill -0 $pid 2>/dev/null || { cat "$work/log"; exit 1; }
	sleep 0.1
done
site=$(sed -n 's/.* on \(http:[^ ,]*\) .*/\1/p' "$work/out")
export WASMSRV_SERVER=$(sed -n 's/.*(admin \(http:[^)]*\)).*/\1/p' "$work/out")
alpha=wst_alpha_myGP0pVLtBVMKqLxmqLNoCCRQJDQk30M7_w6S4Rms5k
beta=wst_beta_qihd84akg_O9k1_CxljQ8cbChs7d9HKqwQVWWMxllL0
echo "site $site, deploy API $WASMSRV_SERVER"

# versions HOST N: which version answered each of N requests, counted.
versions() {
	for _ in $(seq "$2"); do
		curl -s -o /dev/null -D - -H "Host: $1" "$site/" | tr -d '\r' | sed -n 's/^[Ww]asmsrv-[Vv]ersion: //p'
	done | sort | uniq -c
}

hello=$here/../c-hello/main.wasm
# v2: the same code with a custom section appended, so another content hash.
{ cat "$hello"; printf '\000\003\001v2'; } >"$work/v2.wasm"

echo "== alpha deploys v1 and beta its own app"
WASMSRV_TOKEN=$alpha "$bin" deploy --app web --host alpha.localhost "$hello"
WASMSRV_TOKEN=$beta "$bin" deploy --app web --host beta.localhost "$here/../c-echo/main.wasm"

echo "== alpha sends 10% to v2"
WASMSRV_TOKEN=$alpha "$bin" deploy --app web --percent 10 "$work/v2.wasm"
versions alpha.localhost 50

echo "== alpha sends everything to v2"
WASMSRV_TOKEN=$alpha "$bin" deploy --app web "$work/v2.wasm"
versions alpha.localhost 10
WASMSRV_TOKEN=$alpha "$bin" versions --app web

echo "== alpha rolls back"
WASMSRV_TOKEN=$alpha "$bin" rollback --app web
versions alpha.localhost 10

echo "== beta cannot touch alpha's app, nor take its host name"
if WASMSRV_TOKEN=$beta "$bin" rollback --tenant alpha --app web; then
	echo "beta rolled back alpha's app" >&2
	exit 1
fi
if WASMSRV_TOKEN=$beta "$bin" deploy --app web --host alpha.localhost "$hello"; then
	echo "beta took alpha.localhost" >&2
	exit 1
fi
WASMSRV_TOKEN=$alpha "$bin" apps
echo "== done"
