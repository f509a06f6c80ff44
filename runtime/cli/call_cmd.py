"""`agentrt call`: one call through the whole gate, without a model."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
from typing import Any

from runtime.calls import CallStatus, ToolCallRequest
from runtime.cli.gate_options import (
    Stages,
    UsageError,
    add_gate_options,
    add_module_option,
    build_stages,
    fail_usage,
    print_json,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="run one tool call through parse, validation, policy and sandbox",
        description=(
            "Prints one JSON object with status, tool, result or error, and decision when a "
            "policy ran. Exit code 0 only for status ok. A call that needs a human is kept in "
            "the approvals database; after `agentrt approvals approve ID`, "
            "`agentrt call --resume ID` runs it (exactly once)."
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


async def _call(stages: Stages, args: argparse.Namespace) -> int:
    from runtime.pipeline import ToolCallPipeline

    pipeline = ToolCallPipeline(
        stages.registry,
        stages.executor,
        policy=stages.policy,
        audit=stages.audit,
        agent_name=stages.context.agent,
    )
    try:
        if args.resume:
            if stages.approvals is None:
                return fail_usage("--resume needs --policy (the approvals come from it)")
            record = stages.approvals.get(args.resume)
            outcome = await pipeline.run_approved(record, stages.approvals, record.call_context())
        else:
            request = ToolCallRequest(
                id=f"call-{secrets.token_hex(8)}", name=args.tool, arguments=args.args
            )
            context = dataclasses.replace(stages.context, run_id=request.id)
            outcome = await pipeline.process(request, context)
            if outcome.status is CallStatus.PENDING_APPROVAL and stages.approvals is not None:
                record = stages.approvals.create(
                    call_id=request.id,
                    tool=request.name,
                    arguments=outcome.arguments or {},
                    decision=outcome.decision,  # type: ignore[arg-type]
                    context=context,
                    run_id=request.id,
                )
                outcome = dataclasses.replace(outcome, approval_id=record.id)
    finally:
        await stages.aclose()
    print_json(outcome.to_dict())
    return 0 if outcome.status is CallStatus.OK else 1
