"""Which paths the demo reports as shown, from the runs' own outcomes."""

from __future__ import annotations

from runtime.cli.demo_cmd import paths_shown

POLICY = "the policy denied a call or held it for a human (never executed)"


def _answer(status: str, *calls: str) -> dict[str, object]:
    return {"status": status, "calls": list(calls)}


def test_each_path_is_reported_only_when_a_run_took_it() -> None:
    nothing = paths_shown([_answer("completed", "invalid_arguments")])
    assert not any(nothing.values())
    shown = paths_shown(
        [
            _answer("completed", "ok"),
            _answer("completed", "invalid_arguments", "ok"),
            _answer("pending_approval", "pending_approval"),
            _answer("completed"),
        ]
    )
    assert all(shown.values()), shown
    assert paths_shown([_answer("completed", "denied")])[POLICY]
    # a rejected call followed by another rejection is not a correction
    assert not paths_shown([_answer("completed", "unknown_tool", "invalid_arguments")])[
        "the gate rejected a call and the model corrected it"
    ]
    # a run that ended without completing answered nothing without a tool
    assert not paths_shown([_answer("model_error")])["a request answered without a tool"]
