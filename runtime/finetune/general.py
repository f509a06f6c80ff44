"""The dataset behind the shipped general tool-calling adapter.

Many generated modules (`tool_catalog.random_modules`), each synthesised on
its own (`Synthesizer`, natural requests), plus one more kind of no-tool
example that only a catalog can give safely: a request for a tool of another
domain, offered this module's tools, answered "none of my tools can do
that". Per-module synthesis cannot write those (it does not know what lies
outside the module), so the general adapter is where the model learns that
a fluent request for an absent tool still needs no call.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.finetune.dataset_format import Example
from runtime.finetune.natural import NaturalPhraser, ToolProfile
from runtime.finetune.synth import SynthConfig, Synthesizer
from runtime.finetune.tool_catalog import SpecModule, SpecTool, catalog_tools, random_modules

__all__ = ["HELD_OUT_LOOKALIKES", "general_dataset", "schema_dataset"]

# Catalog tools that do what a tool of the held-out modules in bench/heldout does:
# never trained on, so the adapter's zero-shot figures on those modules are honest.
HELD_OUT_LOOKALIKES = (
    "set_lights", "set_thermostat", "lock_door", "create_reminder", "add_to_list",
    "search_flights", "get_flight_status", "book_hotel", "cancel_booking",
    "get_order", "search_products", "create_return",
)  # fmt: skip

_CANNOT = [
    "Sorry, I can't {verb} {obj}: none of my tools does that.",
    "I don't have a tool to {verb} {obj}, so I can't do that here.",
    "That's not something I can do with the tools I have.",
    "I can't help with that one: my tools don't cover it.",
]


def _absent_tool_request(
    module: SpecModule, others: Sequence[SpecTool], synth: Synthesizer, rng: random.Random
) -> Example | None:
    """A natural request for a tool of a domain this module does not have."""
    candidates = [t for t in others if t.domain not in module.domains]
    if not candidates:
        return None
    tool = rng.choice(candidates)
    phraser = NaturalPhraser(rng)
    phrased = phraser.request(tool, phraser.arguments(tool, 0.2))
    text = phraser.style(phrased.text, protect=list(phrased.surfaces.values()))
    act = ToolProfile.of(tool.name, tool.description)
    answer = rng.choice(_CANNOT).format(verb=act.verb, obj=act.obj)
    return synth.no_tool((text, answer), style=False, why="absent_tool")


def general_dataset(
    modules: int = 120,
    *,
    per_tool: int = 6,
    seed: int = 0,
    exclude: Sequence[str] = HELD_OUT_LOOKALIKES,
    absent_share: float = 0.04,
    optional_rate: float = 0.3,
) -> list[Example]:
    """Examples across `modules` generated modules, shuffled with `seed`.

    Args:
        modules: How many modules to generate.
        per_tool: Single-call examples per tool and module.
        seed: Same seed, same dataset.
        exclude: Catalog tools never used.
        absent_share: Extra no-tool examples asking for a tool from another
            domain, as a share of each module's examples.
        optional_rate: Chance that a request states a given optional argument.
    """
    rng = random.Random(seed)
    pool = [t for t in catalog_tools() if t.name not in set(exclude)]
    examples: list[Example] = []
    for index, module in enumerate(random_modules(modules, seed=seed, exclude=exclude)):
        config = SynthConfig(
            per_tool=per_tool,
            seed=seed * 100_003 + index,
            trajectory_ratio=0.25,
            parallel_ratio=0.15,
            optional_rate=optional_rate,
        )
        synth = Synthesizer(module, None, config)
        part = synth.generate()
        extra = max(1, round(len(part) * absent_share))
        for _ in range(extra):
            example = _absent_tool_request(module, pool, synth, rng)
            if example is not None:
                part.append(example)
        for example in part:
            example["metadata"]["module"] = module.name
        examples.extend(part)
    rng.shuffle(examples)
    return examples


def describe(examples: Sequence[Example]) -> dict[str, Any]:
    """Counts by kind and the number of distinct tools (for the manifest)."""
    kinds: dict[str, int] = {}
    tools: set[str] = set()
    for example in examples:
        kind = str(example.get("metadata", {}).get("kind", "?"))
        kinds[kind] = kinds.get(kind, 0) + 1
        for tool in example.get("tools", []):
            tools.add(str(tool["function"]["name"]))
    return {"examples": len(examples), "kinds": kinds, "distinct_tool_names": len(tools)}


def schema_dataset(
    tool_sets: Sequence[Sequence[Mapping[str, Any]]],
    *,
    per_tool: int = 3,
    seed: int = 0,
) -> tuple[list[Example], list[str]]:
    """Examples for tool sets known only by their OpenAI `tools` entries (e.g. BFCL's).

    Each set becomes a module of `SpecTool`s and is synthesised on its own; a
    set that cannot be (a schema no value satisfies) is skipped and named in
    the second return value. Only schemas are read: never any question or answer.
    """
    from runtime.finetune.synth import SynthesisError

    examples: list[Example] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for index, tools in enumerate(tool_sets):
        specs = tuple(
            SpecTool(
                str(t["function"]["name"]),
                str(t["function"].get("description") or ""),
                dict(t["function"].get("parameters") or {"type": "object", "properties": {}}),
            )
            for t in tools
        )
        key = json.dumps([t.openai_schema() for t in specs], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        module = SpecModule(f"schemas_{index:04d}", specs)
        config = SynthConfig(per_tool=per_tool, seed=seed * 100_003 + index, trajectory_ratio=0.0)
        try:
            part = Synthesizer(module, None, config).generate()
        except (SynthesisError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{module.name} ({', '.join(t.name for t in specs)}): {exc}")
            continue
        examples.extend(part)
    random.Random(seed).shuffle(examples)
    return examples, skipped
