#!/usr/bin/env bash
# Rebuild the shipped general tool-calling adapter (runtime/model/general_adapter/).
#
#   bench/finetune/build_general_adapter.sh [WORK_DIR]
#
# 1. data: 100 generated modules from the tool catalog (runtime.finetune.tool_catalog),
#    natural requests synthesised from their schemas; the catalog tools that do what a
#    held-out tool in bench/heldout does are left out (runtime.finetune.general.HELD_OUT_LOOKALIKES)
# 2. LoRA on the bundled SmolLM2-135M (r=16, alpha=32, all linear layers), one pass with a
#    55-minute time budget on 2 CPU cores (about half the data); each example sees the
#    SIMILAR (default 2) requests of its module most like it before it
#    (runtime.prompting.similar_requests), as served; calls in the plain form (CALL_FORM=every-key
#    and OPTIONAL_RATE=R are the variants the README measures: every parameter written, an
#    unstated optional one as null)
# 3. then the same data again, continuing that adapter, in another order (seed + 1) at half
#    the learning rate for THEN_BUDGET seconds (default 3000; 0 skips this stage)
# 4. ship: float16 safetensors + GGUF, manifest with the data hash, seed and commands
#    (runtime.finetune.adapter_export.ship_adapter); the eval figures are added by
#    bench/heldout/evaluate.sh
# SHIP=0 stops after training (WORK_DIR/adapter), e.g. to evaluate it first; SKIP_TRAIN=1
# ships what WORK_DIR already holds (made by the same commands: WORK_DIR/adapter-first from
# stage 2, WORK_DIR/adapter from stage 3).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-/tmp/agentrt-general}"
SEED="${SEED:-0}"
BUDGET="${BUDGET:-3300}"
SIMILAR="${SIMILAR:-2}"
mkdir -p "$WORK"
cd "$ROOT"
SYNTH=(agentrt dataset synth --general 100 --seed "$SEED" --out "$WORK/general.jsonl"
       --optional-rate "${OPTIONAL_RATE:-0.3}")
THEN_BUDGET="${THEN_BUDGET:-3000}"
TRAIN=(agentrt finetune "$WORK/general.jsonl" --init-adapter none --out "$WORK/adapter-first"
       --time-budget "$BUDGET" --epochs 1 --batch-size 8 --lr 1e-3 --seed "$SEED"
       --similar-requests "$SIMILAR" --call-form "${CALL_FORM:-plain}")
THEN=(agentrt finetune "$WORK/general.jsonl" --init-adapter "$WORK/adapter-first"
      --out "$WORK/adapter" --time-budget "$THEN_BUDGET" --epochs 1 --batch-size 8 --lr 5e-4
      --seed "$((SEED + 1))" --similar-requests "$SIMILAR")
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  echo "==> ${SYNTH[*]}"
  "${SYNTH[@]}"
  echo "==> ${TRAIN[*]}"
  "${TRAIN[@]}"
  if [ "$THEN_BUDGET" = 0 ]; then
    rm -rf "$WORK/adapter" && cp -r "$WORK/adapter-first" "$WORK/adapter"
  else
    echo "==> ${THEN[*]}"
    "${THEN[@]}"
  fi
fi
[ "${SHIP:-1}" = 1 ] || exit 0
[ "$THEN_BUDGET" != 0 ] || THEN=()
python - "$WORK" "${SYNTH[*]}" "${TRAIN[*]}" "${THEN[*]}" <<'EOF'
import hashlib, json, sys
from pathlib import Path

from runtime.finetune.adapter_export import ship_adapter
from runtime.finetune.general import HELD_OUT_LOOKALIKES
from runtime.finetune.train import load_base
from runtime.model.adapters import general_adapter_dir

work, synth, train, then = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = work / "general.jsonl"
first = json.loads((work / "adapter-first" / "agentrt_adapter.json").read_text())["train"]
trained = json.loads((work / "adapter" / "agentrt_adapter.json").read_text())
model, _, base = load_base("bundled")
manifest = {
    "name": "general",
    "base": base,
    "data": {
        "command": synth,
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "examples": sum(1 for _ in data.open()),
    },
    "seed": int(train.split("--seed ")[1].split()[0]),
    "similar_requests": trained.get("similar_requests", 0),
    "call_form": trained.get("call_form", "plain"),
    "train": {**first, "command": train},
    "excluded_catalog_tools": list(HELD_OUT_LOOKALIKES),
    "rebuild": "bench/finetune/build_general_adapter.sh",
}
if then:  # the second stage continued the first
    manifest["continued"] = {"command": then, **trained["train"]}
out = ship_adapter(
    work / "adapter", general_adapter_dir(), base_config=model.config.to_dict(), manifest=manifest
)
print(json.dumps({"shipped": str(out), **json.loads((out / "agentrt_adapter.json").read_text())["files"]}))
EOF
