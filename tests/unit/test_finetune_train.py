"""A tiny LoRA run on a tiny random Llama: the loss falls and the adapter loads and exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

import tools  # noqa: E402
from runtime.finetune.adapter_export import export_gguf_lora, save_adapter  # noqa: E402
from runtime.finetune.builtin_phrasings import builtin_phrasebook  # noqa: E402
from runtime.finetune.chat_template import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN, render_text  # noqa: E402
from runtime.finetune.synth import synthesize  # noqa: E402
from runtime.finetune.train import TrainConfig, encode_example, train_lora  # noqa: E402
from runtime.tools import ToolRegistry  # noqa: E402


def _examples() -> list[dict[str, Any]]:
    registry = ToolRegistry.from_module(tools)
    return synthesize(registry, per_tool=3, seed=3, phrasebook=builtin_phrasebook())[:16]


def _tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[BOS_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN
    )


def _tiny_model(vocab: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        initializer_range=0.2,  # room for peaked logits through tied embeddings
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def setup() -> tuple[list[dict[str, Any]], Any]:
    examples = _examples()
    texts = [render_text(e["messages"], e["tools"]) for e in examples]
    return examples, _tokenizer(texts)


def test_encoding_marks_only_assistant_tokens(setup: tuple[list[dict[str, Any]], Any]) -> None:
    examples, tokenizer = setup
    example = next(e for e in examples if e["metadata"]["kind"] == "trajectory")
    encoded = encode_example(example, tokenizer)
    trained = tokenizer.decode(
        [t for t, m in zip(encoded.input_ids, encoded.mask, strict=True) if m]
    )
    assert "<tool_call>" in trained and trained.count(EOS_TOKEN) == 2  # the call and the answer
    assert "<tool_response>" not in trained and "user" not in trained.split("<tool_call>")[0]
    assert 0 < encoded.prefix_len < len(encoded.input_ids)
    prefix = tokenizer.decode(list(encoded.input_ids[: encoded.prefix_len]))
    assert prefix.endswith("without a tool call." + EOS_TOKEN + "\n") and "<tools>" in prefix


@pytest.mark.parametrize("method", ["shared-prefix", "trl"])
def test_tiny_training_lowers_loss_and_adapter_loads(
    setup: tuple[list[dict[str, Any]], Any], tmp_path: Path, method: str
) -> None:
    if method == "trl":
        pytest.importorskip("trl")
        pytest.importorskip("datasets")
    from peft import PeftModel

    examples, tokenizer = setup
    model = _tiny_model(len(tokenizer))
    config = TrainConfig(
        rank=8, alpha=16, dropout=0.0, learning_rate=5e-2, max_steps=12, batch_size=8,
        method=method, threads=1, warmup_ratio=0.1,
    )  # fmt: skip
    peft_model, result = train_lora(model, tokenizer, examples, config, progress=False)
    assert result.steps == 12 and result.method == method
    first = sum(loss for _, loss in result.losses[:3]) / 3
    last = sum(loss for _, loss in result.losses[-3:]) / 3
    assert last < first * 0.85, result.losses

    out = tmp_path / "adapter"
    save_adapter(peft_model, tokenizer, out, base="tiny", manifest={"tools": ["calculate"]})
    assert (out / "adapter_model.safetensors").exists()
    config_json = json.loads((out / "adapter_config.json").read_text())
    assert config_json["r"] == 8 and config_json["base_model_name_or_path"] == "tiny"
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text())
    assert (out / "chat_template.jinja").read_text() == CHAT_TEMPLATE

    reloaded = PeftModel.from_pretrained(_tiny_model(len(tokenizer)), str(out)).eval()
    ids = torch.tensor([list(encode_example(examples[0], tokenizer).input_ids[:64])])
    with torch.no_grad():
        expected = peft_model.eval()(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    with torch.no_grad(), reloaded.disable_adapter():
        plain = reloaded(input_ids=ids).logits
    assert not torch.allclose(plain, got, atol=1e-4)  # the adapter changes the model


def test_gguf_export_has_llama_cpp_layout(
    setup: tuple[list[dict[str, Any]], Any], tmp_path: Path
) -> None:
    gguf = pytest.importorskip("gguf")
    examples, tokenizer = setup
    model = _tiny_model(len(tokenizer))
    peft_model, _ = train_lora(
        model,
        tokenizer,
        examples,
        TrainConfig(rank=4, alpha=8, max_steps=1, threads=1),
        progress=False,
    )
    out = tmp_path / "adapter"
    save_adapter(peft_model, tokenizer, out, base="tiny")
    path = export_gguf_lora(out, out / "adapter.gguf", base_config=model.config.to_dict())
    reader = gguf.GGUFReader(str(path))
    names = {t.name: t for t in reader.tensors}
    # 2 layers x 7 projections x (lora_a, lora_b)
    assert len(names) == 28
    q_a, q_b = names["blk.0.attn_q.weight.lora_a"], names["blk.0.attn_q.weight.lora_b"]
    assert list(q_a.shape) == [32, 4] and list(q_b.shape) == [4, 32]  # ne order: [in, r], [r, out]
    assert list(names["blk.1.ffn_down.weight.lora_a"].shape) == [64, 4]
    field = reader.fields["adapter.lora.alpha"]
    assert float(field.parts[field.data[0]][0]) == 8.0
    kind = reader.fields["general.type"]
    assert bytes(kind.parts[kind.data[0]]).decode() == "adapter"


def test_a_reused_prefix_encoding_gives_the_same_loss_until_it_is_refreshed(
    setup: tuple[list[dict[str, Any]], Any],
) -> None:
    from runtime.finetune.train import _prefix_step, _PrefixCache

    examples, tokenizer = setup
    model = _tiny_model(len(tokenizer)).train()
    encoded = [encode_example(e, tokenizer) for e in examples]
    prefix = encoded[0].input_ids[: encoded[0].prefix_len]
    batch = [e for e in encoded if e.input_ids[: e.prefix_len] == prefix][:4]
    assert len(batch) >= 2 and batch[0].prefix_len > 0
    pad = int(tokenizer.pad_token_id)
    cache = _PrefixCache(refresh=3)
    with torch.no_grad():
        fresh = _prefix_step(model, batch, pad)
        first = _prefix_step(model, batch, pad, cache.get(model, batch[0], step=0))
        # the stored encoding is copied for each use, never extended in place
        again = _prefix_step(model, batch, pad, cache.get(model, batch[0], step=1))
        for parameter in model.parameters():
            parameter.add_(0.05)
        moved = _prefix_step(model, batch, pad)
        stale = _prefix_step(model, batch, pad, cache.get(model, batch[0], step=2))
        refreshed = _prefix_step(model, batch, pad, cache.get(model, batch[0], step=3))
    assert torch.allclose(fresh, first) and torch.allclose(first, again)
    assert not torch.allclose(stale, moved)  # within `refresh` steps the old encoding is used
    assert torch.allclose(refreshed, moved)
