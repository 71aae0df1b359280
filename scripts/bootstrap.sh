#!/usr/bin/env bash
# Creates or refreshes the project's virtualenv (.venv) and the system packages the browser tests need.
#
# usage: scripts/bootstrap.sh [--require-browser]
#   --require-browser   fail when chromium / chromium-driver are missing and cannot be installed
#                       (test.sh); without it that is only a warning (run.sh).
#
# pip runs again whenever requirements.txt or pyproject.toml change: their hash is kept in
# .venv/.samtrack-requirements.sha256. Set PYTHON to choose the interpreter that creates the venv.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
stamp="$venv/.samtrack-requirements.sha256"
python="${PYTHON:-python3}"
require_browser=false
[[ "${1:-}" == "--require-browser" ]] && require_browser=true

log() { echo "[bootstrap] $*" >&2; }

can_apt_install() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

apt_install() {
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

create_venv() {
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
        log "ERROR: $python is older than Python 3.10; set PYTHON=/path/to/python3.10+"; exit 1; }
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        can_apt_install && apt_install python3-venv || {
            log "ERROR: '$python -m venv' failed; install the python3-venv package and run again"; exit 1; }
        "$python" -m venv "$venv"
    fi
}

# groundingdino-py and supervision pull opencv-python, fiftyone pulls opencv-python-headless<5; both
# unpack into the same cv2/ folder. Keep exactly one build: the headless one pinned in requirements.txt.
keep_one_opencv() {
    if "$venv/bin/pip" show --quiet opencv-python >/dev/null 2>&1; then
        log "removing opencv-python (keeping opencv-python-headless only)"
        "$venv/bin/pip" uninstall --quiet -y opencv-python opencv-python-headless
        "$venv/bin/pip" install --quiet --no-deps "$(grep -E '^opencv-python-headless' "$repo/requirements.txt")"
    fi
}

install_python_packages() {
    local want
    want="$(cat "$repo/requirements.txt" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
    exec 9>"$venv/.bootstrap.lock" && flock 9  # one pip at a time when several runs start together
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && return 0
    log "installing Python packages into $venv (a few minutes on first run)"
    "$venv/bin/pip" install --quiet -r "$repo/requirements.txt"
    keep_one_opencv
    "$venv/bin/pip" install --quiet --no-deps -e "$repo"
    echo "$want" > "$stamp"
}

ensure_browser() {
    # ffmpeg: the FiftyOne App refuses to show video datasets without it.
    command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v ffmpeg >/dev/null && return 0
    if can_apt_install && apt_install chromium chromium-driver ffmpeg; then return 0; fi
    local message="chromium, chromium-driver or ffmpeg is missing (needed by the App and the browser tests); install them with: apt-get install chromium chromium-driver ffmpeg"
    if $require_browser; then log "ERROR: $message"; exit 1; fi
    log "WARNING: $message"
}

[[ -x "$venv/bin/python" ]] || create_venv
install_python_packages
ensure_browser
