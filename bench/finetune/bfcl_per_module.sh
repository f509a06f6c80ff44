#!/usr/bin/env bash
# A per-module adapter for BFCL, trained from BFCL's function schemas alone (never its
# questions), and measured on BFCL's questions:
#
#   bench/finetune/bfcl_per_module.sh [WORK_DIR]
#
# 1. data: `agentrt dataset synth --bfcl CATEGORIES` synthesises natural requests from the
#    schemas of every function in those categories (2 single-call examples per function, plus
#    two-call and no-call ones), the way it does for a user's @tool module
# 2. LoRA from the shipped general adapter (`--init-adapter general`), one pass with a
#    BUDGET-second budget (default 900) on 2 CPU cores, with the 2 worked requests the general
#    adapter is served with
# 3. `agentrt eval --bfcl` on the first LIMIT (default 25) questions of each category,
#    AST scoring; report bench/results/bfcl_per_module.{json,md}
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-/tmp/agentrt-bfcl}"
CATEGORIES="${CATEGORIES:-simple,multiple,parallel,irrelevance}"
mkdir -p "$WORK"
cd "$ROOT"
echo "==> synthesise from the schemas of BFCL's $CATEGORIES functions"
agentrt dataset synth --bfcl "$CATEGORIES" --out "$WORK/bfcl.jsonl" --seed 0
echo "==> fine-tune from the general adapter (time budget ${BUDGET:-900}s)"
agentrt finetune "$WORK/bfcl.jsonl" --init-adapter general --out "$WORK/adapter" --epochs 1 \
  --lr 5e-4 --time-budget "${BUDGET:-900}" --similar-requests 2 --quiet
cp "$WORK/adapter/train_log.json" bench/results/bfcl_per_module_train_log.json
echo "==> evaluate on BFCL's questions"
agentrt eval --bfcl "$CATEGORIES" --bfcl-limit "${LIMIT:-25}" --local "bfcl=$WORK/adapter" \
  --out bench/results/bfcl_per_module.json --table bench/results/bfcl_per_module.md
