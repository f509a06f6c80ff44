#!/usr/bin/env bash
# GPU smoke test: serve the base model plus the fine-tuned LoRA adapter with vLLM, run the
# end-to-end agent check against both, print a one-line verdict. Needs an NVIDIA GPU, vLLM
# installed in the current Python, and agent-runtime installed (pip install -e .).
#
#   MODEL_DIR=/path/to/base-hf-dir ADAPTER_DIR=/path/to/adapter deploy/gpu-smoke.sh
# MODEL_DIR: a Hugging Face model directory. `agentrt finetune` writes one for the bundled base
# only when asked: `agentrt finetune ... --save-base DIR` (bf16 safetensors + tokenizer, with
# the GGUF `quantization_config` that vLLM rejects dropped). ADAPTER_DIR: the adapter's
# safetensors directory (the --out of agentrt finetune).
#
# Optional settings (environment):
#   PORT (8000), PYTHON (python3), LOG (/tmp/agentrt-vllm.log: the vLLM server's output),
#   MODULE (tools), AGENTRT (agentrt; e.g. "python3 -m runtime" when the repo is on PYTHONPATH),
#   STARTUP_TIMEOUT (180 s), VLLM_EXTRA_ARGS (appended to the vLLM command line),
#   AFTER_SMOKE: a shell command run after the verdict while the server is still up, with
#   AGENTRT_VLLM_URL set to its /v1 URL (e.g. an `agentrt eval` of base and tuned); the
#   script's exit status is then the smoke's, or the command's when the smoke passed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${MODEL_DIR:?set MODEL_DIR}" "${ADAPTER_DIR:?set ADAPTER_DIR}"
PORT="${PORT:-8000}"
PYTHON="${PYTHON:-python3}"
LOG="${LOG:-/tmp/agentrt-vllm.log}"
MODULE="${MODULE:-tools}"
AGENTRT="${AGENTRT:-agentrt}"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-180}"

export VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1
started=$(date +%s)
# shellcheck disable=SC2086  # VLLM_EXTRA_ARGS is a list of flags
"$PYTHON" -m vllm.entrypoints.openai.api_server \
  --model "$MODEL_DIR" --served-model-name base \
  --enable-auto-tool-choice --tool-call-parser hermes \
  --chat-template "$HERE/tool_chat_template.jinja" \
  --enable-lora --lora-modules "tuned=$ADAPTER_DIR" --max-lora-rank "${MAX_LORA_RANK:-16}" \
  --max-model-len 4096 --enforce-eager --gpu-memory-utilization 0.3 \
  --host 127.0.0.1 --port "$PORT" ${VLLM_EXTRA_ARGS:-} >"$LOG" 2>&1 &
VLLM_PID=$!
trap 'kill $VLLM_PID 2>/dev/null; wait $VLLM_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 "$STARTUP_TIMEOUT"); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 $VLLM_PID 2>/dev/null || { echo "GPU SMOKE: FAIL (vLLM exited; see $LOG)"; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { echo "GPU SMOKE: FAIL (vLLM not healthy in $STARTUP_TIMEOUT s; see $LOG)"; exit 1; }
echo "vLLM healthy $(($(date +%s) - started)) s after launch"

URL="http://127.0.0.1:$PORT/v1"
fails=0
for model in base tuned; do
  # shellcheck disable=SC2086  # AGENTRT may be a command with arguments
  out="$($AGENTRT run --module "$MODULE" --base-url "$URL" --model "$model" --sandbox inprocess \
        --audit-log none --max-tokens 128 --json "Convert 12 km to miles." || true)"
  status="$(printf '%s' "$out" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], [c["tool"]+":"+c["status"] for c in d["tool_calls"]])' 2>/dev/null || echo "unparseable")"
  echo "  $model: $status"
  case "$model:$status" in tuned:completed*convert_units:ok*) ;; tuned:*) fails=$((fails+1)) ;; esac
done
if [ "$fails" = 0 ]; then
  echo "GPU SMOKE: PASS (vLLM served base + tuned adapter; the tuned run called convert_units and completed)"
else
  echo "GPU SMOKE: FAIL (the tuned adapter did not complete the tool call)"
fi
rc=$((fails > 0))
if [ -n "${AFTER_SMOKE:-}" ]; then
  export AGENTRT_VLLM_URL="$URL"
  after_rc=0
  bash -c "$AFTER_SMOKE" || after_rc=$?
  echo "AFTER_SMOKE exited $after_rc"
  [ "$rc" = 0 ] && rc=$after_rc
fi
exit "$rc"
