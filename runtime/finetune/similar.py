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
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.finetune.dataset_format import Example
from runtime.finetune.synth import SynthConfig, Synthesizer
from runtime.finetune.tool_catalog import SpecModule, SpecTool
from runtime.prompting.similar_requests import SimilarRequests, first_user_text
from runtime.tools import inline_refs

__all__ = ["bank_for_tools", "with_similar_requests"]

log = logging.getLogger(__name__)


def _tools_key(tools: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(tools), sort_keys=True)


def bank_for_tools(
    tools: Sequence[Mapping[str, Any]], *, k: int = 2, per_tool: int = 40, seed: int = 0
) -> SimilarRequests:
    """Worked requests for OpenAI-style `tools`, synthesised from their schemas.

    Local `$ref`s are inlined first. A tool the synthesiser cannot handle (a
    schema no value satisfies, parameters that are not a schema) is left out
    with a logged warning and the rest still synthesise; a set where nothing
    does gives an empty bank, which shows nothing. It never raises: worked
    requests are a hint, and a run must not fail for want of one.
    """
    specs = []
    for entry in tools:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, Mapping):
            name = function.get("name")
            log.warning("no worked requests for tool %s: its parameters are not a schema", name)
            continue
        specs.append(
            SpecTool(
                str(function.get("name", "")),
                str(function.get("description") or ""),
                inline_refs(dict(parameters)),
            )
        )
    config = SynthConfig(per_tool=per_tool, seed=seed, trajectory_ratio=0.0)
    try:
        examples = Synthesizer(SpecModule("bank", tuple(specs)), None, config).generate()
    except Exception:  # a bank is a hint: a tool it cannot phrase is left out, never fatal
        examples = []
        for spec in specs:  # one tool the synthesiser cannot handle must not empty the bank
            try:
                examples += Synthesizer(SpecModule("bank", (spec,)), None, config).generate()
            except Exception as exc:
                log.warning("no worked requests for tool %s: %s", spec.name, exc)
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
