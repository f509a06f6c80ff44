#!/usr/bin/env bash
# Our argument gate beside openai-agents and pydantic-ai: cost per call and what each rejects.
#
#   bash bench/peers/run.sh [--iterations N] [--rounds R] [--out PATH]
# Makes bench/peers/.venv on first use (the peers pinned in requirements.txt, plus this
# repository, editable; the peers never become project dependencies), then runs measure.py in
# it. Writes bench/results/peers.json and prints the Markdown tables. About a minute on 2 cores.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${PEERS_VENV:-$HERE/.venv}"
# The project's own interpreter when it has a venv, so both sides run on the same Python.
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then
    PYTHON="$(readlink -f "$REPO/.venv/bin/python")"
  else
    PYTHON="$(command -v python3.11 || command -v python3)"
  fi
fi
STAMP="$VENV/.requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$HERE/requirements.txt" "$STAMP"; then
  echo "== making $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$HERE/requirements.txt" -e "$REPO"
  cp "$HERE/requirements.txt" "$STAMP"
fi
cd "$REPO"
exec "$VENV/bin/python" "$HERE/measure.py" "$@"
