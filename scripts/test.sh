#!/usr/bin/env bash
# The tests: installs what they need (virtualenv, JSON Schema Test Suite,
# PostgreSQL started in a temporary folder, Chromium, crun for the direct
# sandbox engine, Docker engine, sandbox image), then runs lint, type checks
# and every test. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_python
setup_schema_suite
setup_postgres
setup_browser
setup_crun
setup_docker
setup_local_model
setup_finetune
cd "$ROOT"
say "ruff check"
"$VENV/bin/ruff" check runtime tools tests
say "ruff format --check"
"$VENV/bin/ruff" format --check runtime tools tests
say "mypy (strict)"
"$VENV/bin/mypy"
say "pytest"
set +e
"$VENV/bin/pytest" "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  die "pytest collected no tests: that is a failure, not a pass"
fi
exit "$code"
