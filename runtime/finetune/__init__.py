"""The fine-tuning loop: audit logs and tool schemas -> dataset -> LoRA adapter -> measured gain.

One module per job, each usable on its own (the `agentrt dataset|finetune|eval`
commands are thin wrappers):

- `dataset_format`: the OpenAI fine-tuning JSON-lines format (arguments stay strings).
- `synth`, `phrasebook`, `builtin_phrasings`: seeded synthetic examples for any tool module.
- `parameters`, `values`, `natural`, `vocabulary`: natural requests from schemas alone (what a
  parameter holds, realistic values for it, the words around them).
- `tool_catalog`, `general`: generated modules and the general adapter's dataset.
- `teacher`: optional paraphrases from a larger model, kept only when every value survives.
- `export`: audited, successful runs -> examples (redacted runs dropped).
- `curate`: exact and near-duplicate removal (offline MiniLM), diversity report.
- `chat_template`: the runtime's tool template, rendered with a training mask.
- `train`: LoRA SFT (shared-prefix trainer on CPU, TRL on GPU).
- `adapter_export`: safetensors for vLLM, GGUF for llama.cpp, the base as a HF dir.
- `evaluate`, `eval_runner`: BFCL-style scoring, paired McNemar test, BFCL data, charts.
- `eval_targets`, `eval_variants`: the served models compared, and the levers (prompt,
  preset, retrieval, adapter) each variant pulls; items are asked the way `Agent` asks.
- serving: `runtime.model.local_server.LocalModelServer(chat_template_file=...)`.

Nothing here imports torch, transformers or peft at module level.
"""
