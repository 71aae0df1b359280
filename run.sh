#!/usr/bin/env bash
# Segments and tracks a video into a FiftyOne dataset: ./run.sh --help for the options.
# Creates .venv on first use (scripts/bootstrap.sh). Relative paths are taken from the current folder.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$repo/scripts/bootstrap.sh"
exec "$repo/.venv/bin/python" -m samtrack_ops.cli "$@"
