#!/usr/bin/env bash
# CI hook (.ci/run runs every */check-binaries.sh): fails if a committed C or WAT
# guest differs from what its source builds to. See build.sh.
set -euo pipefail
exec bash "$(dirname "$0")/build.sh" --check
