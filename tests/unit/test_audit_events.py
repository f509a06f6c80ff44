"""The audit vocabulary: one name per key, and the names are a stable format."""

from __future__ import annotations

from runtime.audit.events import CALL_END_EVENTS, Event, Field, is_call_end
from runtime.finetune import export


def _values(namespace: type) -> list[str]:
    return [value for name, value in vars(namespace).items() if name.isupper()]


def test_every_name_is_distinct() -> None:
    for namespace in (Event, Field):
        values = _values(namespace)
        assert len(values) == len(set(values)), namespace.__name__


def test_the_names_written_to_disk_do_not_change() -> None:
    # Logs outlive releases and collectors read the GenAI names: renaming a
    # constant's value is a format change, not a refactoring.
    assert (Field.TOOL_NAME, Field.TOOL_CALL_ID, Field.CONVERSATION_ID) == (
        "gen_ai.tool.name",
        "gen_ai.tool.call.id",
        "gen_ai.conversation.id",
    )
    assert (Field.STATUS, Field.DECISION, Field.REASON, Field.RULE_IDS) == (
        "agentrt.status",
        "agentrt.decision",
        "agentrt.reason",
        "agentrt.rule_ids",
    )
    assert (Event.TOOL_DENIED, Event.EXECUTION_FINISHED) == ("tool.denied", "execution.finished")


def test_call_end_records() -> None:
    assert Event.RUN_FINISHED not in CALL_END_EVENTS
    assert Event.POLICY_DECIDED not in CALL_END_EVENTS
    assert is_call_end(Event.TOOL_DENIED, {Field.STATUS: "denied"})
    assert not is_call_end(Event.TOOL_DENIED, {})
    assert not is_call_end(Event.RUN_FINISHED, {Field.STATUS: "completed"})


def test_the_dataset_export_reads_the_keys_the_runtime_writes() -> None:
    # `runtime.finetune.export` still spells its keys itself; until it imports
    # `Field`, this keeps the two from drifting apart.
    assert (export.PROMPT_FIELD, export.OUTPUT_FIELD) == (Field.PROMPT, Field.OUTPUT)
    assert (export.RUN_ID, export.CALL_ID, export.TOOL_NAME) == (
        Field.RUN_ID,
        Field.TOOL_CALL_ID,
        Field.TOOL_NAME,
    )
    assert (export.ARGUMENTS, export.RESULT) == (Field.ARGUMENTS, Field.RESULT)


def test_records_are_built_only_by_the_event_builders() -> None:
    # One builder per event in `runtime.audit.events`: no writer outside the
    # audit package (whose readers key tables by `Field`) assembles a record
    # from `Field` keys, and no module writes an `Event` by hand.
    import ast
    from pathlib import Path

    import runtime

    root = Path(runtime.__file__).parent
    # The audit benchmark writes one synthetic record merged from three builders.
    allowed_writes = {root / "cli" / "bench_audit.py"}
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "audit" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                path.parent.name != "audit"
                and isinstance(node, ast.Dict)
                and any(
                    isinstance(key, ast.Attribute)
                    and isinstance(key.value, ast.Name)
                    and key.value.id == "Field"
                    for key in node.keys
                )
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: a record dict")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "write"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and isinstance(node.args[0].value, ast.Name)
                and node.args[0].value.id == "Event"
                and path not in allowed_writes
            ):
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: writes an Event")
    assert offenders == []


def test_each_call_builder_makes_its_event_and_the_end_records_carry_a_status() -> None:
    from runtime.audit import events
    from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult
    from runtime.policy.decision import PolicyDecision

    call = events.call_fields("t", "c1", CallContext(tenant="acme", run_id="r1"))
    assert call[Field.TENANT] == "acme" and Field.PRINCIPAL not in call  # no None values
    error = ErrorInfo("schema", "bad")
    built = [
        events.tool_proposed(call, "x" * 5000),
        events.tool_validated(call, {"a": 1}),
        events.tool_rejected(call, "invalid_arguments", error, {"a": "b"}),
        events.policy_decided(call, PolicyDecision("deny", ("r",), "no")),
        events.tool_denied(call, ("r",), error),
        events.approval_requested(call),
        events.approval_granted(call, "ap1", {"a": 1}, edited=True),
        events.approval_closed(call, "ap1", error, expired=False),
        events.approval_closed(call, "ap1", error, expired=True),
        events.execution_started(call, "docker"),
        events.execution_finished(
            call, ExecutionResult(CallStatus.OK, result=3, sandbox={"container_id": "c"}), "docker"
        ),
    ]
    assert [r.event for r in built] == [
        Event.TOOL_PROPOSED,
        Event.TOOL_VALIDATED,
        Event.TOOL_REJECTED,
        Event.POLICY_DECIDED,
        Event.TOOL_DENIED,
        Event.APPROVAL_REQUESTED,
        Event.APPROVAL_GRANTED,
        Event.APPROVAL_REJECTED,
        Event.APPROVAL_EXPIRED,
        Event.EXECUTION_STARTED,
        Event.EXECUTION_FINISHED,
    ]
    assert len(built[0].fields[Field.ARGUMENTS_RAW]) == events.RAW_ARGUMENTS_CAP
    for record in built:
        assert is_call_end(record.event, record.fields) == (record.event in CALL_END_EVENTS)
        assert record.fields[Field.TOOL_CALL_ID] == "c1"
    assert built[-1].fields[Field.SANDBOX_CONTAINER_ID] == "c"
    assert built[-1].fields[Field.RESULT] == 3
