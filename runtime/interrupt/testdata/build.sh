#!/bin/sh
# Assembles the .wat test modules with wabt (apt-get install wabt). The .wasm
# outputs are committed so the tests do not need wabt.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm --debug-names -o "${f%.wat}.wasm" "$f"
done
