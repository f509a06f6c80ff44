#!/usr/bin/env bash
# The demo: installs what it needs, then runs `agentrt demo` (extra arguments pass through).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
setup_python
setup_docker
setup_local_model
say "running the demo"
exec "$VENV/bin/agentrt" demo "$@"
