#!/usr/bin/env bash
# Rebuilds the committed C and WAT guests (samples and test guests) from their
# sources with Debian's clang, wasi-libc, lld and wabt. With --check, builds into a temporary directory
# and fails if any committed .wasm differs from what its source builds to, so the
# binaries can never drift from the source.
#
#   bash sdk/c/build.sh          # rebuild in place
#   bash sdk/c/build.sh --check  # CI: verify
#
# Needs: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt
set -euo pipefail
cd "$(dirname "$0")/../.."

check=0
[[ "${1:-}" == "--check" ]] && check=1

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null; then
	echo "build.sh: $CC not found (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)" >&2
	exit 1
fi
# --strip-debug keeps the name section (function names in traps) but drops DWARF,
# which would embed build paths and make the output machine-dependent.
common=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wl,--strip-debug)
reactor=("${common[@]}" -mexec-model=reactor)

# kind source output
targets=(
	"reactor samples/c-hello/main.c samples/c-hello/main.wasm"
	"reactor samples/c-echo/main.c samples/c-echo/main.wasm"
	"reactor samples/c-async-hello/main.c samples/c-async-hello/main.wasm"
	"command samples/c-cgi/main.c samples/c-cgi/main.wasm"
	"command bench/apps/cgi_hello.c bench/apps/cgi_hello.wasm"
	"command host/testdata/cgi/stream.c host/testdata/cgi/stream.wasm"
	"command host/testdata/cgi/wagi.c host/testdata/cgi/wagi.wasm"
	"reactor abi/conformance/testdata/conform.c abi/conformance/testdata/conform-c.wasm"
	"reactor host/testdata/casync/main.c host/testdata/casync/main.wasm"
	"command runtime/testdata/escape/main.c runtime/testdata/escape/main.wasm"
	"reactor runtime/testdata/envimport/main.c runtime/testdata/envimport/main.wasm"
	"reactor internal/httpwasm/testdata/plugin/plugin.c internal/httpwasm/testdata/plugin/plugin.wasm"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for t in "${targets[@]}"; do
	read -r kind src out <<<"$t"
	[[ -f "$src" ]] || continue
	flags=("${common[@]}")
	[[ "$kind" == reactor ]] && flags=("${reactor[@]}")
	dst="$out"
	((check)) && dst="$tmp/$(echo "$out" | tr / _)"
	"$CC" "${flags[@]}" -o "$dst" "$src"
	if ((check)); then
		if ! cmp -s "$dst" "$out"; then
			echo "build.sh: $out is stale: it differs from what $src builds to (run: bash sdk/c/build.sh)" >&2
			fail=1
		fi
	else
		echo "built $out ($(wc -c <"$out") bytes)"
	fi
done
# Hand-written WebAssembly text guests (hostile and raw-ABI test guests).
for src in $(find host/testdata runtime/testdata abi/conformance/testdata internal/httpwasm/testdata -name '*.wat' 2>/dev/null | sort); do
	out="${src%.wat}.wasm"
	if ! command -v wat2wasm >/dev/null; then
		echo "build.sh: wat2wasm not found (apt-get install wabt)" >&2
		exit 1
	fi
	dst="$out"
	((check)) && dst="$tmp/$(echo "$out" | tr / _)"
	wat2wasm "$src" -o "$dst"
	if ((check)); then
		if ! cmp -s "$dst" "$out"; then
			echo "build.sh: $out is stale: it differs from what $src builds to (run: bash sdk/c/build.sh)" >&2
			fail=1
		fi
	else
		echo "built $out ($(wc -c <"$out") bytes)"
	fi
done
exit $fail
