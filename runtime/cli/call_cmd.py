"""`agentrt call`: one call through the whole gate, without a model.

Exit codes: 0 the call ended `ok`; 1 it ended with any other status (the JSON
says which); 2 it was refused before any call was made (bad flags, or a
`--resume` of an approval that is unknown, still pending or was rejected);
3 it ended, and its JSON is printed, but the audit log could not record all
of it (disk full while the tool ran: `audited: false` and `audit_error` say
what is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from runtime.calls import CallStatus, ToolCallRequest
from runtime.cli.gate_options import (
    EXIT_NOT_AUDITED,
    UsageError,
    add_gate_options,
    add_module_option,
    build_stages,
    fail_usage,
    print_json,
    warn_not_audited,
    warn_refused_mcp_tools,
)

if TYPE_CHECKING:
    from runtime.approvals.store import ApprovalStore
    from runtime.pipeline import CallOutcome, ToolCallPipeline
    from runtime.stack import Stack


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="run one tool call through parse, validation, policy and sandbox",
        description=(
            "Prints one JSON object with status, tool, result or error, and decision when a "
            "policy ran. Exit code 0 only for status ok. A call that needs a human is kept in "
            "the approvals database; after `agentrt approvals approve ID`, "
            "`agentrt call --resume ID` runs it (exactly once). Exit 2: refused before any "
            "call was made (one sentence on stderr). Exit 3: the call ended and is printed, "
            "but the audit log could not record all of it (`audited: false`)."
        ),
    )
    add_module_option(parser)
    parser.add_argument("--tool", help="tool name")
    parser.add_argument("--args", default="{}", help="arguments as a JSON object string")
    parser.add_argument("--resume", metavar="APPROVAL_ID", help="run a call a human approved")
    add_gate_options(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        if not args.tool and not args.resume:
            raise UsageError("give --tool (and --args), or --resume APPROVAL_ID")
        stages = build_stages(args)
    except UsageError as exc:
        return fail_usage(str(exc))
    return asyncio.run(_call(stages, args))


async def _call(stages: Stack, args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError

    pipeline = stages.pipeline()
    try:
        warn_refused_mcp_tools(await stages.open())
        if args.resume:
            if stages.approvals is None:
                return fail_usage("--resume needs --policy (the approvals come from it)")
            try:
                outcome = await _resume(pipeline, stages.approvals, args.resume)
            except ApprovalError as exc:
                return fail_usage(str(exc))
        else:
            request = ToolCallRequest(
                id=f"call-{secrets.token_hex(8)}", name=args.tool, arguments=args.args
            )
            context = dataclasses.replace(stages.context, run_id=request.id)
            outcome = await pipeline.process(request, context)
            if outcome.status is CallStatus.PENDING_APPROVAL and stages.approvals is not None:
                from runtime.approvals.resume import pause

                ids = await pause(stages.approvals, [outcome], context, run_id=request.id)
                outcome = dataclasses.replace(outcome, approval_id=ids[request.id])
    finally:
        problem = await stages.finish()
    if problem is not None and outcome.status is CallStatus.AUDIT_ERROR:
        warn_not_audited(problem)  # nothing ran: the status already says the log failed
    elif problem is not None and outcome.audited:
        outcome = dataclasses.replace(
            outcome, audit_error=f"its records were written, but {problem}"
        )
    print_json(outcome.to_dict())
    if not outcome.audited:
        warn_not_audited(outcome.audit_error or "")
        return EXIT_NOT_AUDITED
    return 0 if outcome.status is CallStatus.OK else 1


async def _resume(
    pipeline: ToolCallPipeline, approvals: ApprovalStore, approval_id: str
) -> CallOutcome:
    """Run (or report) the call a human decided on; refuses one nobody decided yet.

    Raises:
        ApprovalError: No such approval, or it is still pending.
    """
    from runtime.approvals import ApprovalError, ApprovalStatus
    from runtime.approvals.resume import run_approved

    record = approvals.get(approval_id)
    if record.status is ApprovalStatus.PENDING:
        raise ApprovalError(
            f"approval {record.id} is still pending: a human must decide first "
            f"(`agentrt approvals approve {record.id}` or `... reject {record.id}`)",
            record.status,
        )
    return await run_approved(pipeline, record, approvals, record.call_context())
