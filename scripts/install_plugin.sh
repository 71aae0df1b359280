#!/usr/bin/env bash
# Installs this checkout as the FiftyOne plugin @samtrack/samtrack: a link to it in a plugins folder of its own
# (default: FiftyOne's plugins dir, ~/fiftyone/__plugins__ unless configured), never the parent of checkouts,
# where every sibling folder with a fiftyone.yml becomes a plugin and copies of samtrack shadow each other.
# Usage: scripts/install_plugin.sh [PLUGINS_DIR]    then launch the App with FIFTYONE_PLUGINS_DIR=PLUGINS_DIR
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo/.venv/bin/python"
[[ -x "$python" ]] || { echo "install_plugin: $python is missing: run ./run.sh --help or ./test.sh once to create .venv" >&2; exit 2; }

plugins_dir="${1:-$("$python" -c 'import fiftyone as fo; print(fo.config.plugins_dir or "")' 2>/dev/null | tail -n 1)}"
plugins_dir="${plugins_dir:-$HOME/fiftyone/__plugins__}"
mkdir -p "$plugins_dir"
plugins_dir="$(cd "$plugins_dir" && pwd -P)"
case "$repo/" in
    "$plugins_dir"/*)
        echo "install_plugin: $plugins_dir contains this checkout; pick a folder of its own (e.g. ~/fiftyone/__plugins__)" >&2
        exit 2 ;;
esac

link="$plugins_dir/samtrack"
if [[ -e "$link" && ! -L "$link" ]]; then
    echo "install_plugin: $link exists and is not a link; move it away or pick another PLUGINS_DIR" >&2
    exit 2
fi
ln -sfn "$repo" "$link"
echo "Linked $link -> $repo"

FIFTYONE_PLUGINS_DIR="$plugins_dir" "$python" - "$repo" <<'PY'
import sys

sys.path.insert(0, sys.argv[1])
from plugin.setup import plugin_copies, shadowing_problem

problem = shadowing_problem(sys.argv[1])
if problem:
    print(f"WARNING: {problem}", file=sys.stderr)
else:
    print(f"FiftyOne finds @samtrack/samtrack at {plugin_copies()[0]}")
PY
echo "Use it:  export FIFTYONE_PLUGINS_DIR=$plugins_dir   (then: .venv/bin/fiftyone plugins list; .venv/bin/fiftyone app launch)"
