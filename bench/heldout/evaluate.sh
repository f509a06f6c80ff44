#!/usr/bin/env bash
# The per-module loop on the held-out modules, measured on hand-written requests:
#
#   bench/heldout/evaluate.sh [MODULE ...]      (default: all three)
#
# For each module: `dataset synth` from its schema alone -> `finetune --init-adapter general`
# (the shipped general adapter) -> `agentrt eval` of the bare model, the general adapter
# zero-shot and the per-module adapter on bench/heldout/MODULE.items.jsonl (40 requests).
# Reports: bench/results/heldout_MODULE[SUFFIX].{json,md}. WORK (default /tmp/agentrt-heldout)
# keeps the data and adapters; SKIP_TRAIN=1 re-evaluates existing adapters; BUDGET caps
# training; MODELS picks the models (default "base general tuned"); SUFFIX names the reports;
# INIT=none trains from the bare model instead of the general adapter; LR, EPOCHS as for finetune;
# SIMILAR=K worked requests per example (default: what the general adapter was trained with;
# `agentrt eval` serves each adapter the way its manifest says).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${WORK:-/tmp/agentrt-heldout}"
BUDGET="${BUDGET:-600}"
MODELS="${MODELS:-base general tuned}"
cd "$ROOT"
mkdir -p "$WORK" bench/results
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(home_assistant travel_desk shop_support)
for m in "${modules[@]}"; do
  if [ "${SKIP_TRAIN:-0}" != 1 ]; then
    echo "==> $m: synthesise from the schema"
    agentrt dataset synth --module "bench/heldout/$m.py" --out "$WORK/$m.jsonl" --seed 0
    echo "==> $m: fine-tune (init: ${INIT:-general}, time budget ${BUDGET}s)"
    init=(--init-adapter "${INIT:-general}")
    # train with the worked requests the general adapter was trained (and is served) with
    similar="${SIMILAR:-$(python -c 'from runtime.model.adapters import general_adapter_dir, similar_requests_of; print(similar_requests_of(general_adapter_dir()))')}"
    agentrt finetune "$WORK/$m.jsonl" "${init[@]}" \
      --out "$WORK/$m-adapter" --epochs "${EPOCHS:-1}" --lr "${LR:-5e-4}" --time-budget "$BUDGET" \
      --similar-requests "$similar" --quiet
  fi
  targets=()
  for model in $MODELS; do
    case "$model" in
      base) targets+=(--local base) ;;
      general) targets+=(--local general=general) ;;
      tuned) targets+=(--local "tuned=$WORK/$m-adapter") ;;
    esac
  done
  echo "==> $m: evaluate ${MODELS}"
  agentrt eval --data "bench/heldout/$m.items.jsonl" "${targets[@]}" \
    --out "bench/results/heldout_$m${SUFFIX:-}.json" --table "bench/results/heldout_$m${SUFFIX:-}.md" \
    --title "held-out $m"
done
