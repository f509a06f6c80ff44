"""Our argument gate beside its peers: cost per call and what each one lets through.

Run inside the peer virtualenv (`bash bench/peers/run.sh` makes it): openai-agents and
pydantic-ai are not dependencies of this project.

Every checker gets the same tool (`tools.units.convert_units`, the function `agentrt bench
gate` uses, undecorated for the peers) and the same arguments text:

- json.loads:      `json.loads(text)`, parsing only: the baseline of the ratios.
- pydantic model:  a `BaseModel` made from the function's signature with pydantic's
                   defaults, `Model.model_validate_json(text)`.
- openai-agents:   `function_tool(fn)`; the closure `_prepare_arguments(input, tool_name)`
                   in `agents.tool.function_tool`, which `_on_invoke_tool_impl` calls before
                   the function: `_parse_function_tool_json_input` (json.loads), then
                   `params_pydantic_model(**data)` and `FuncSchema.to_call_args`.
- pydantic-ai:     `Tool(fn).function_schema.validator.validate_json(text,
                   allow_partial='off')`, the call `ToolManager._validate_tool_args` makes
                   for arguments that arrive as a string.
- ours: ArgumentGate.check: strict parse + JSON Schema validation.
- ours: parse_strict_json: the parse stage of that check alone (timings only).
- ours: full gate: `runtime.bench.gate.pre_execution_call`: check + the shipped default
                   policy's decision + the audit append (batched fsync, temp file), as
                   `agentrt bench gate` times it (timings only).

The checkers are timed in rounds, one after another within each round, so load from other
work on the machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pydantic
from agents import function_tool
from pydantic_ai import Tool as PydanticAITool

from runtime.arguments import ArgumentGate, parse_strict_json
from runtime.bench.gate import TYPICAL_CALL, pre_execution_call, time_each
from runtime.bench.peers import PROBES, Checker, gate_checker, read_verdict
from runtime.stack import build_audit, build_policy, build_registry
from runtime.stats import percentile

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "bench" / "results" / "peers.json"
PACKAGES = (
    "openai-agents",
    "pydantic-ai-slim",
    "pydantic",
    "pydantic-core",
    "openai",
    "jsonschema",
    "agent-runtime",
)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One library's path from the arguments text to the tool's arguments.

    Attributes:
        timed: The library's own call on the benchmark arguments, and nothing else.
        check: The same call on any text, returning the arguments the tool would
            get (or raising): for the rejection table, not timed.
    """

    timed: Callable[[], object]
    check: Checker


def _json_loads(text: str) -> Candidate:
    return Candidate(lambda: json.loads(text), json.loads)


def _pydantic_model(fn: Callable[..., Any], text: str) -> Candidate:
    hints = typing.get_type_hints(fn)
    fields: dict[str, Any] = {name: (hints[name], ...) for name in inspect.signature(fn).parameters}
    model = pydantic.create_model(f"{fn.__name__}_args", **fields)
    return Candidate(
        lambda: model.model_validate_json(text), lambda t: vars(model.model_validate_json(t))
    )


def _openai_agents(fn: Callable[..., Any], text: str) -> Candidate:
    tool = function_tool(fn)
    impl = tool.on_invoke_tool._invoke_tool_impl  # type: ignore[attr-defined]
    cells = dict(zip(impl.__code__.co_freevars, impl.__closure__ or (), strict=True))
    if "_prepare_arguments" not in cells:
        raise SystemExit(
            "openai-agents changed: _on_invoke_tool_impl no longer closes over "
            "_prepare_arguments; read agents/tool.py and update this adapter"
        )
    prepare = cells["_prepare_arguments"].cell_contents
    signature = inspect.signature(fn)

    def check(t: str) -> Mapping[str, Any]:
        prepared = prepare(t, tool.name)
        return signature.bind(*prepared.args, **prepared.kwargs).arguments

    return Candidate(lambda: prepare(text, tool.name), check)


def _pydantic_ai(fn: Callable[..., Any], text: str) -> Candidate:
    validator = PydanticAITool(fn).function_schema.validator
    # ToolManager._validate_tool_args: `raw_args or '{}'`, allow_partial off outside streaming.
    return Candidate(
        lambda: validator.validate_json(text or "{}", allow_partial="off"),
        lambda t: validator.validate_json(t or "{}", allow_partial="off"),
    )


def _ours(gate: ArgumentGate) -> Candidate:
    # The request is built once, as the model client builds it before the gate sees it.
    return Candidate(lambda: gate.check(TYPICAL_CALL), gate_checker(gate))


def _timed(rounds: int, iterations: int, candidates: dict[str, Callable[[], object]]) -> dict:
    per_round = max(1, iterations // rounds)
    for fn in candidates.values():  # warm caches (validators, policy regexes) before timing
        for _ in range(200):
            fn()
    pooled: dict[str, list[float]] = {name: [] for name in candidates}
    round_p50: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times = time_each(fn, per_round)
            pooled[name].extend(times)
            round_p50[name].append(round(percentile(times, 0.5), 2))
    base = percentile(pooled["json.loads"], 0.5)
    return {
        name: {
            "p50_us": round(percentile(times, 0.5), 2),
            "p95_us": round(percentile(times, 0.95), 2),
            "vs_json_loads": round(percentile(times, 0.5) / max(base, 0.01), 1),
            "p50_us_by_round": round_p50[name],
            "calls": len(times),
        }
        for name, times in pooled.items()
    }


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "repo_commit": commit,
    }


def _cell(verdict: dict[str, Any]) -> str:
    if not verdict["accepted"]:
        return "**rejects**"
    # "value=2.0 (float)" -> "accepts, value=2.0": what the tool would be called with.
    return f"accepts, `{verdict['detail'].split(' (')[0]}`"


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        "| checker | p50 µs | p95 µs | p50 / json.loads |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in report["timings"].items():
        lines.append(f"| {name} | {row['p50_us']} | {row['p95_us']} | {row['vs_json_loads']}× |")
    names = list(report["rejections"]["checkers"])
    lines += ["", "| input | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for probe, row in report["rejections"]["table"].items():
        cells = [_cell(row[name]) for name in names]
        lines.append(f"| `{probe}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="timed calls per checker")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    machine = _machine()
    registry = build_registry("tools")
    ours = registry.get(TYPICAL_CALL.name)
    assert ours is not None
    fn = ours.fn
    text = TYPICAL_CALL.arguments
    candidates = {
        "json.loads": _json_loads(text),
        "pydantic model": _pydantic_model(fn, text),
        "openai-agents": _openai_agents(fn, text),
        "pydantic-ai": _pydantic_ai(fn, text),
        "ours: ArgumentGate.check": _ours(ArgumentGate(registry)),
    }
    checkers: dict[str, Checker] = {name: c.check for name, c in candidates.items()}
    for name, check in checkers.items():
        verdict = read_verdict(check, text)
        if not verdict.accepted:
            raise SystemExit(f"{name} rejects the benchmark call: {verdict.detail}")

    policy = build_policy(None)
    with tempfile.TemporaryDirectory(prefix="agentrt-peers-") as workdir:
        audit = build_audit(f"{workdir}/audit.jsonl", policy)
        try:
            timed = {name: c.timed for name, c in candidates.items()}
            # Where our check's time goes: the strict parse alone (the rest is jsonschema).
            timed["ours: parse_strict_json"] = lambda: parse_strict_json(text)
            timed["ours: full gate"] = pre_execution_call(
                ArgumentGate(registry), TYPICAL_CALL, policy=policy, audit=audit
            )
            timings = _timed(args.rounds, args.iterations, timed)
        finally:
            if audit is not None:
                audit.close()
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)

    table = {
        probe.name: {
            name: dataclasses.asdict(read_verdict(check, probe.arguments))
            for name, check in checkers.items()
        }
        for probe in PROBES
    }
    report = {
        "what": "argument parse + validate cost per call and rejections, ours beside peers",
        "command": "bash bench/peers/run.sh",
        "tool": TYPICAL_CALL.name,
        "arguments": text,
        "machine": machine,
        "versions": {package: _version(package) for package in PACKAGES},
        "paths": {
            "json.loads": "json.loads(text)",
            "pydantic model": "create_model(<fn signature>, pydantic defaults).model_validate_json",
            "openai-agents": "agents.tool.function_tool -> _prepare_arguments(input, tool_name) "
            "(_parse_function_tool_json_input + params_pydantic_model(**data) + to_call_args)",
            "pydantic-ai": "Tool(fn).function_schema.validator.validate_json(text, "
            "allow_partial='off') as in ToolManager._validate_tool_args",
            "ours: ArgumentGate.check": "runtime.arguments.ArgumentGate.check",
            "ours: parse_strict_json": "runtime.arguments.parse_strict_json (the parse stage of "
            "check alone)",
            "ours: full gate": "runtime.bench.gate.pre_execution_call: check + default policy "
            "decide + audit append (batched fsync)",
        },
        "iterations": args.iterations,
        "rounds": args.rounds,
        "timings": timings,
        "rejections": {
            "checkers": list(checkers),
            "probes": {probe.name: probe.arguments for probe in PROBES},
            "risk_if_accepted": {probe.name: probe.risk for probe in PROBES},
            "table": table,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(_markdown(report))
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
