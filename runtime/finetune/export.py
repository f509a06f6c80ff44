"""Export audited conversations as training examples.

Reads the hash-chained audit log (rotated segments included), groups records
by `agentrt.run_id`, and turns each run whose calls were all validated,
allowed and succeeded into one example in the training format. What is kept:
the user's request, the calls (name + validated arguments), the tool results
and the final answer when the log has them. What is dropped: ids,
timestamps, tenants, sandbox data, policy details, hashes.

The audit log stores neither the user's request nor tool results by default,
so export uses these fields when present:

- `run.started`: `agentrt.prompt` (the user's request; or OpenTelemetry's
  `gen_ai.input.messages`), optionally `gen_ai.system_instructions`.
- `run.finished`: `agentrt.output` (the final answer; or `gen_ai.output.messages`).
- `tool.proposed`: `agentrt.turn` (model turn number, to keep parallel calls
  together; without it, consecutive proposals with no result in between form a turn).
- `execution.finished`: `agentrt.tool.result` (the sink's `store_results`).

A run without its request cannot teach anything and is skipped. Without
results, only the first turn's calls are exported (request -> calls).
Redaction is respected: a run any of whose exported values carries a
redaction marker (`{"redacted": ...}`, `[REDACTED...]`, a truncation note)
is dropped whole, never exported as if the value were real.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.arguments import ArgumentGate, ArgumentsAccepted
from runtime.calls import ToolCallRequest
from runtime.finetune.dataset_format import Example, assistant_call_message
from runtime.tools import ToolRegistry

__all__ = [
    "OUTPUT_FIELD",
    "PROMPT_FIELD",
    "TURN_FIELD",
    "ExportStats",
    "export_examples",
    "is_redacted",
    "read_audit_records",
]

PROMPT_FIELD = "agentrt.prompt"
OUTPUT_FIELD = "agentrt.output"
TURN_FIELD = "agentrt.turn"
RUN_ID = "agentrt.run_id"
CALL_ID = "gen_ai.tool.call.id"
TOOL_NAME = "gen_ai.tool.name"
ARGUMENTS = "agentrt.tool.arguments"
RESULT = "agentrt.tool.result"
_TEXT_MARKERS = ("[REDACTED", "…[truncated,")


@dataclasses.dataclass(slots=True)
class ExportStats:
    """How many runs were seen, exported and dropped (by reason)."""

    runs: int = 0
    exported: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def is_redacted(value: Any) -> bool:
    """True when `value` holds a redaction or truncation marker anywhere."""
    if isinstance(value, Mapping):
        return "redacted" in value or any(is_redacted(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_redacted(v) for v in value)
    if isinstance(value, str):
        return any(marker in value for marker in _TEXT_MARKERS)
    return False


def read_audit_records(paths: Iterable[str | os.PathLike[str]]) -> Iterator[dict[str, Any]]:
    """Yield every record of the given logs (rotated segments first), fields flattened.

    Lines that do not parse are skipped (`agentrt audit verify` is the tool
    that judges a log's integrity).
    """
    from runtime.audit.records import discover_logs

    for log in discover_logs(paths):
        for path in log.files:
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(record, dict):
                        continue
                    fields = record.get("fields")
                    flat = dict(fields) if isinstance(fields, dict) else {}
                    for key in ("seq", "ts", "event"):
                        if key in record:
                            flat[key] = record[key]
                    for key, value in record.items():
                        flat.setdefault(key, value)
                    yield flat


def _message_text(messages: Any, role: str) -> str | None:
    """Text of the last `role` message in OpenTelemetry or OpenAI message form."""
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            return None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != role:
            continue
        if isinstance(message.get("content"), str):
            return str(message["content"])
        parts = message.get("parts")
        if isinstance(parts, list):
            texts = [
                str(p.get("content", ""))
                for p in parts
                if isinstance(p, Mapping) and p.get("type") == "text"
            ]
            if texts:
                return "".join(texts)
    return None


@dataclasses.dataclass(slots=True)
class _Call:
    call_id: str
    name: str = ""
    turn: int | None = None
    order: int = 0
    arguments: Any = None
    status: str | None = None
    decision: str | None = None
    rejected: bool = False
    result: Any = None
    has_result: bool = False


@dataclasses.dataclass(slots=True)
class _Run:
    prompt: str | None = None
    system: str | None = None
    output: str | None = None
    status: str | None = None
    calls: dict[str, _Call] = dataclasses.field(default_factory=dict)
    implicit_turn: int = 0
    last_event: str = ""


def _collect(records: Iterable[Mapping[str, Any]]) -> dict[str, _Run]:
    runs: dict[str, _Run] = {}
    for record in records:
        run_id = record.get(RUN_ID) or record.get("gen_ai.conversation.id")
        if not run_id:
            continue
        run = runs.setdefault(str(run_id), _Run())
        event = str(record.get("event", ""))
        if event == "run.started":
            prompt = record.get(PROMPT_FIELD)
            run.prompt = (
                prompt
                if isinstance(prompt, str)
                else _message_text(record.get("gen_ai.input.messages"), "user")
            )
            system = record.get("gen_ai.system_instructions")
            run.system = system if isinstance(system, str) else None
        elif event == "run.finished":
            output = record.get(OUTPUT_FIELD)
            run.output = (
                output
                if isinstance(output, str)
                else _message_text(record.get("gen_ai.output.messages"), "assistant")
            )
            run.status = str(record.get("agentrt.status", ""))
        elif record.get(CALL_ID):
            _call_event(run, event, record)
        run.last_event = event
    return runs


def _call_event(run: _Run, event: str, record: Mapping[str, Any]) -> None:
    call_id = str(record[CALL_ID])
    call = run.calls.get(call_id)
    if call is None:
        if event == "tool.proposed" and run.last_event != "tool.proposed":
            run.implicit_turn += 1
        call = run.calls[call_id] = _Call(call_id, order=len(run.calls), turn=run.implicit_turn)
    call.name = str(record.get(TOOL_NAME) or call.name)
    if event == "tool.proposed" and isinstance(record.get(TURN_FIELD), int):
        call.turn = int(record[TURN_FIELD])
    elif event == "tool.validated":
        call.arguments = record.get(ARGUMENTS)
    elif event == "tool.rejected":
        call.rejected = True
    elif event == "policy.decided":
        call.decision = str(record.get("agentrt.decision", ""))
    elif event == "execution.finished":
        call.status = str(record.get("agentrt.status", ""))
        if RESULT in record:
            call.result, call.has_result = record[RESULT], True


def _run_problem(run: _Run, gate: ArgumentGate) -> str | None:
    if not run.prompt:
        return "no_prompt"
    if run.status not in (None, "", "completed"):
        return "run_not_completed"
    values: list[Any] = [run.prompt, run.output, run.system]
    values += [c.arguments for c in run.calls.values()]
    values += [c.result for c in run.calls.values() if c.has_result]
    if any(is_redacted(v) for v in values):
        return "redacted"
    for call in run.calls.values():
        if call.rejected:
            return "call_rejected"
        if call.decision not in (None, "allow"):
            return "call_not_allowed"
        if call.status != "ok":
            return "call_failed"
        if not isinstance(call.arguments, dict):
            return "arguments_missing"
        checked = gate.check(
            ToolCallRequest(call.call_id, call.name, json.dumps(call.arguments, ensure_ascii=False))
        )
        if not isinstance(checked, ArgumentsAccepted):
            return "arguments_invalid_now"
    return None


def _result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _messages(run: _Run) -> list[dict[str, Any]] | None:
    messages: list[dict[str, Any]] = []
    if run.system:
        messages.append({"role": "system", "content": run.system})
    messages.append({"role": "user", "content": run.prompt})
    turns: dict[int, list[_Call]] = {}
    for call in sorted(run.calls.values(), key=lambda c: c.order):
        turns.setdefault(call.turn or 0, []).append(call)
    if not turns:
        if not run.output:
            return None
        messages.append({"role": "assistant", "content": run.output})
        return messages
    complete = all(c.has_result for c in run.calls.values()) and bool(run.output)
    counter = 0
    for index, key in enumerate(sorted(turns)):
        calls = turns[key]
        message = assistant_call_message([(c.name, c.arguments) for c in calls])
        for offset, entry in enumerate(message["tool_calls"]):
            entry["id"] = f"call_{counter + offset}"
        messages.append(message)
        if not complete:
            break  # without results, only the first turn's calls are a faithful target
        for offset, call in enumerate(calls):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": f"call_{counter + offset}",
                    "content": _result_text(call.result),
                }
            )
        counter += len(calls)
        if index == len(turns) - 1:
            messages.append({"role": "assistant", "content": run.output})
    return messages


def export_examples(
    records: Iterable[Mapping[str, Any]],
    registry: ToolRegistry,
    *,
    include_no_call: bool = False,
) -> tuple[list[Example], ExportStats]:
    """Turn audit records into examples.

    Args:
        records: Flattened records (`read_audit_records`).
        registry: The tools; their schemas go into every example and every
            exported call must still validate against them.
        include_no_call: Also export runs that answered without a call (off by
            default: the log cannot say whether a tool should have been called).

    Returns:
        The examples (in run order) and the drop statistics.
    """
    gate = ArgumentGate(registry)
    schemas: Sequence[dict[str, Any]] = registry.openai_schemas()
    stats = ExportStats()
    examples: list[Example] = []
    for run in _collect(records).values():
        stats.runs += 1
        problem = _run_problem(run, gate)
        if problem is None and not run.calls and not include_no_call:
            problem = "no_call"
        messages = None if problem else _messages(run)
        if problem or messages is None:
            stats.drop(problem or "nothing_to_learn")
            continue
        kind = (
            "no_tool"
            if not run.calls
            else "trajectory"
            if messages[-1].get("role") == "assistant"
            and any(m.get("role") == "tool" for m in messages)
            else ("parallel" if len(messages[-1].get("tool_calls") or []) > 1 else "single")
        )
        examples.append(
            {
                "messages": messages,
                "tools": list(schemas),
                "metadata": {"kind": kind, "source": "audit"},
            }
        )
        stats.exported += 1
    return examples, stats


def export_paths(
    paths: Sequence[str | os.PathLike[str]],
    registry: ToolRegistry,
    *,
    include_no_call: bool = False,
) -> tuple[list[Example], ExportStats]:
    """`export_examples` over the records of the audit logs at `paths`."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such audit log: {', '.join(missing)}")
    return export_examples(read_audit_records(paths), registry, include_no_call=include_no_call)
