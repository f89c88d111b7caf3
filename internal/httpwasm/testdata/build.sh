#!/bin/sh
# Assembles the http-wasm test guests (.wat) with wabt (apt-get install wabt). The .wasm
# outputs are committed so the tests do not need wabt; with --check (CI, via
# check-binaries.sh) it fails if a committed .wasm differs from its source.
set -eu
cd "$(dirname "$0")"
check=0
[ "${1:-}" = "--check" ] && check=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for f in *.wat; do
	out="${f%.wat}.wasm"
	if [ $check = 1 ]; then
		wat2wasm --debug-names -o "$tmp/$out" "$f"
		if ! cmp -s "$tmp/$out" "$out"; then
			echo "build.sh: internal/httpwasm/testdata/$out is stale (run: sh internal/httpwasm/testdata/build.sh)" >&2
			fail=1
		fi
	else
		wat2wasm --debug-names -o "$out" "$f"
	fi
done
exit $fail
