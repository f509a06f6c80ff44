"""Worked requests for training and serving (`runtime.prompting.similar_requests`).

Training (`agentrt finetune --similar-requests K`): every example with tools
gets, before its request, the K requests of the same tool set most like it
(never itself), so the model learns to take the shape of a call from a
worked request and the values from the one it is answering. Serving: the
bank is synthesised from the tools' schemas alone (`bank_for_tools`), the same
way `dataset synth` writes training data, so a module nobody wrote examples
for still has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.finetune.dataset_format import Example
from runtime.finetune.synth import SynthConfig, SynthesisError, Synthesizer
from runtime.finetune.tool_catalog import SpecModule, SpecTool
from runtime.prompting.similar_requests import SimilarRequests, first_user_text

__all__ = ["bank_for_tools", "with_similar_requests"]


def _tools_key(tools: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(tools), sort_keys=True)


def bank_for_tools(
    tools: Sequence[Mapping[str, Any]], *, k: int = 2, per_tool: int = 40, seed: int = 0
) -> SimilarRequests:
    """Worked requests for OpenAI-style `tools`, synthesised from their schemas.

    A tool whose schema no value satisfies leaves the bank without it (the
    rest still synthesise); a set where nothing synthesises gives an empty
    bank, which shows nothing.
    """
    specs = [
        SpecTool(
            str(t["function"]["name"]),
            str(t["function"].get("description") or ""),
            dict(t["function"].get("parameters") or {"type": "object", "properties": {}}),
        )
        for t in tools
        if isinstance(t, Mapping) and isinstance(t.get("function"), Mapping)
    ]
    config = SynthConfig(per_tool=per_tool, seed=seed, trajectory_ratio=0.0)
    try:
        examples = Synthesizer(SpecModule("bank", tuple(specs)), None, config).generate()
    except (SynthesisError, ValueError, KeyError, TypeError):
        examples = []
        for spec in specs:  # one bad schema must not empty the bank
            try:
                examples += Synthesizer(SpecModule("bank", (spec,)), None, config).generate()
            except (SynthesisError, ValueError, KeyError, TypeError):
                continue
    return SimilarRequests.from_examples(examples, k=k)


def with_similar_requests(examples: Sequence[Example], k: int) -> list[Example]:
    """`examples` with each tool-bearing one's K nearest same-tool-set requests
    inserted as a message before its request."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        if example.get("tools"):
            groups.setdefault(_tools_key(example["tools"]), []).append(example)
    banks = {key: SimilarRequests.from_examples(group, k=k) for key, group in groups.items()}
    out: list[Example] = []
    for example in examples:
        text = first_user_text(example.get("messages") or [])
        if not example.get("tools") or not text.strip():
            out.append(example)
            continue
        bank = banks[_tools_key(example["tools"])]
        message = bank.message_for(text, exclude=text)
        if message is None:
            out.append(example)
            continue
        messages = list(example["messages"])
        first_user = next(i for i, m in enumerate(messages) if m.get("role") == "user")
        messages.insert(first_user, message)
        out.append({**example, "messages": messages})
    return out
