"""The state of a run paused for approvals, as the approval store keeps it.

Saved in the same transaction as the run's pending calls, so a run that
stopped for a human can be resumed by another process (`Agent.resume`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from runtime.calls import CallContext

__all__ = ["SAVED_RUN_VERSION", "SavedRun"]

SAVED_RUN_VERSION = 1


@dataclasses.dataclass(slots=True)
class SavedRun:
    """A paused run: its conversation, counters and the calls waiting for humans.

    Attributes:
        run_id: The run.
        messages: The full history up to the paused turn.
        turns: Model replies received so far.
        usage: Tokens so far (`prompt_tokens`, `completion_tokens`).
        failures: Failed turns per tool (the retry budget spent).
        pending_call_ids: The calls of the paused turn that wait for a human.
        context: Who the run is for (tenant, agent, principal, extra).
        resumed: Set once the decided calls ran: a second resume must not
            replay the conversation.
    """

    run_id: str
    messages: list[dict[str, Any]]
    context: CallContext
    turns: int = 0
    usage: dict[str, int] = dataclasses.field(default_factory=dict)
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    pending_call_ids: list[str] = dataclasses.field(default_factory=list)
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept in the store (`ApprovalStore.save_run_state`)."""
        out: dict[str, Any] = {
            "version": SAVED_RUN_VERSION,
            "run_id": self.run_id,
            "messages": self.messages,
            "turns": self.turns,
            "usage": dict(self.usage),
            "failures": dict(self.failures),
            "pending_call_ids": list(self.pending_call_ids),
            "context": self.context.to_dict(),
        }
        if self.resumed:
            out["resumed"] = True
        return out

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> SavedRun:
        """Read what `to_json` wrote."""
        return cls(
            run_id=saved["run_id"],
            messages=list(saved["messages"]),
            context=CallContext(**saved["context"]),
            turns=int(saved.get("turns", 0)),
            usage=dict(saved.get("usage", {})),
            failures=dict(saved.get("failures", {})),
            pending_call_ids=list(saved.get("pending_call_ids", [])),
            resumed=bool(saved.get("resumed", False)),
        )
