"""A pattern means what JSON Schema says, through the whole stack (issue 18).

With `zip_code: Annotated[str, Field(pattern=r"^\\d{5}$")]`, Python's `re`
accepted `"12345\\n"` (its `$` matches before a final newline) and NKo or
Arabic-Indic digits (its `\\d` is any Unicode digit): the policy then decided on
them and the tool ran. Read as ECMA-262, each ends at the gate as
`invalid_arguments`: the policy is never asked, the tool never runs, and the
audit log has no `tool.validated` record for the call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pytest

from runtime import CallContext, CallStatus, ToolCallRequest, tool
from runtime.audit.events import Event, Field
from runtime.audit.query import iter_records
from runtime.audit.verify import verify
from runtime.policy.decision import PolicyDecision, allow_all
from runtime.stack import build_stack

sent: list[str] = []


@tool
def send(zip_code: Annotated[str, pydantic.Field(pattern=r"^\d{5}$")]) -> str:
    """Send a parcel.

    Args:
        zip_code: Five digits.
    """
    sent.append(zip_code)
    return f"sent to {zip_code}"


class RecordingPolicy:
    """Allows every call and remembers each one it was asked about."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        self.asked.append(dict(arguments))
        return allow_all().decide(tool, arguments, context)

    def decide_approved(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        return self.decide(tool, arguments, context)

    def preview(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool = False,
    ) -> PolicyDecision:
        return self.decide(tool, arguments, context)


@pytest.fixture(autouse=True)
def _reset() -> None:
    sent.clear()


@pytest.mark.parametrize(
    "zip_code",
    ["12345\n", "߀߁߂߃߄", "١٢٣٤٥"],
    ids=["trailing-newline", "nko-digits", "arabic-indic-digits"],
)
async def test_a_zip_code_python_would_accept_is_invalid_arguments(
    tmp_path: Path, zip_code: str
) -> None:
    log = tmp_path / "audit.jsonl"
    policy = RecordingPolicy()
    stack = build_stack(
        [send], policy=policy, sandbox="inprocess", audit_log=log, approvals_db=None
    )
    async with stack:
        pipeline = stack.pipeline()
        bad = await pipeline.process(
            ToolCallRequest("bad", "send", json.dumps({"zip_code": zip_code})), stack.context
        )
        good = await pipeline.process(
            ToolCallRequest("good", "send", json.dumps({"zip_code": "12345"})), stack.context
        )
    assert bad.status is CallStatus.INVALID_ARGUMENTS
    assert bad.error is not None and "$.zip_code" in bad.error.message
    assert good.status is CallStatus.OK  # the same stack runs a real zip code
    assert policy.asked == [{"zip_code": "12345"}]
    assert sent == ["12345"]
    events: dict[str, list[str]] = {}
    for _line, record in iter_records([log]):
        call_id = record["fields"].get(Field.TOOL_CALL_ID)
        if call_id is not None:
            events.setdefault(call_id, []).append(record["event"])
    assert events["bad"] == [Event.TOOL_PROPOSED, Event.TOOL_REJECTED]
    assert Event.TOOL_VALIDATED in events["good"]
    assert verify([log]).ok
