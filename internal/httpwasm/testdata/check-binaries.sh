#!/usr/bin/env bash
# CI hook (.ci/run runs every */check-binaries.sh): fails if a committed test
# module differs from what its .wat source assembles to. See build.sh.
set -euo pipefail
exec sh "$(dirname "$0")/build.sh" --check
