#!/usr/bin/env bash
# Compare the levers on the built-in tools with the bundled model (llama.cpp on CPU):
# zero-shot vs system template vs few-shot vs think-first, a sampling preset, retrieval,
# and the fine-tuned adapter, all on the same 180 held-out items.
#
#   bench/levers.sh [ADAPTER_DIR] [OUT_DIR]
# ADAPTER_DIR: an `agentrt finetune` output (default ~/.cache/agentrt/tuned-adapter).
# Writes OUT_DIR/levers_eval.{json,png,md} (default bench/results). About 1 hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTER="${1:-$HOME/.cache/agentrt/tuned-adapter}"
OUT="${2:-bench/results}"
AGENTRT="${AGENTRT:-.venv/bin/agentrt}"
INDEX="${INDEX:-/tmp/agentrt-levers/builtin_docs.idx}"
mkdir -p "$(dirname "$INDEX")" "$OUT"
echo "== indexing bench/rag/builtin_docs"
"$AGENTRT" rag index bench/rag/builtin_docs --out "$INDEX"
TEMPLATE=bench/prompts/builtin_system.yaml
EXAMPLES=bench/prompts/builtin_fewshot.jsonl
targets=(--local base)
variants=(
  --variant "zero-shot:target=base"
  --variant "system-template:target=base,template=$TEMPLATE"
  --variant "few-shot:target=base,template=$TEMPLATE,examples=$EXAMPLES"
  --variant "think-first:target=base,template=$TEMPLATE,think=1"
  --variant "few-shot+balanced:target=base,template=$TEMPLATE,examples=$EXAMPLES,preset=balanced"
  --variant "rag:target=base,template=$TEMPLATE,rag=$INDEX,rag_k=2,rag_min_score=0.35"
)
if [ -f "$ADAPTER/adapter.gguf" ]; then
  targets+=(--local "tuned=$ADAPTER")
  variants+=(
    --variant "tuned:target=tuned"
    --variant "tuned+few-shot:target=tuned,template=$TEMPLATE,examples=$EXAMPLES"
    --variant "tuned+rag:target=tuned,rag=$INDEX,rag_k=2,rag_min_score=0.35"
  )
else
  echo "no adapter at $ADAPTER (run agentrt finetune); comparing prompt levers only" >&2
fi
"$AGENTRT" eval --module tools --data bench/finetune/heldout_builtin.jsonl "${targets[@]}" \
  "${variants[@]}" --max-tokens "${MAX_TOKENS:-128}" \
  --out "$OUT/levers_eval.json" --chart "$OUT/levers_eval.png" --table "$OUT/levers_eval.md" \
  --title "Levers on 180 held-out requests (SmolLM2-135M, llama.cpp, CPU)"
