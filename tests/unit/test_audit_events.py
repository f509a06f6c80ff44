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
