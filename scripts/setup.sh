#!/usr/bin/env bash
# Installs what the demo and the tests need, saying what it does. Idempotent:
# a second run only checks. Sourced by scripts/demo.sh and scripts/test.sh.
#   AGENTRT_VENV     virtualenv to use (default: .venv in the repo)
#   AGENTRT_NO_DOCKER=1   skip the Docker engine and sandbox image
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTRT_VENV:-$ROOT/.venv}"
STATE="$ROOT/.agentrt"
mkdir -p "$STATE"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m==> warning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m==> error:\033[0m %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root && command -v apt-get >/dev/null || return 1
  if [ ! -f "$STATE/.apt-updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch "$STATE/.apt-updated"
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

setup_python() {
  command -v python3 >/dev/null || die "python3 (>= 3.11) is required"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 is required"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV" || { apt_install python3-venv && python3 -m venv "$VENV"; }
  fi
  local stamp="$VENV/.agentrt-deps" want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing agent-runtime and its dev dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT[dev]"
    echo "$want" > "$stamp"
  else
    say "python dependencies up to date ($VENV)"
  fi
  export PATH="$VENV/bin:$PATH"
}

docker_up() { docker info >/dev/null 2>&1; }

setup_docker() {
  [ "${AGENTRT_NO_DOCKER:-0}" = 1 ] && { warn "AGENTRT_NO_DOCKER=1: skipping Docker"; return 0; }
  if docker_up; then
    say "Docker engine is running"
  else
    if ! command -v dockerd >/dev/null; then
      apt_install docker.io || die "no Docker engine and cannot install one (need root on Debian/Ubuntu); install Docker and re-run"
    fi
    is_root || die "the Docker engine is not running; start it (sudo systemctl start docker) and re-run"
    say "starting dockerd (log: $STATE/dockerd.log)"
    nohup dockerd >"$STATE/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do docker_up && break; sleep 1; done
    docker_up || die "dockerd did not come up; see $STATE/dockerd.log"
    say "Docker engine is running"
  fi
  if "$VENV/bin/agentrt" sandbox --help >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap || true
    say "making sure the sandbox image exists (agentrt sandbox build-image)"
    "$VENV/bin/agentrt" sandbox build-image --if-missing
  fi
}
