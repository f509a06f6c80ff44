"""`agentrt call`: one call through the whole gate, without a model."""

from __future__ import annotations

import argparse
import asyncio
import secrets
from typing import Any

from runtime.calls import CallStatus, ToolCallRequest
from runtime.cli.gate_options import (
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
            "policy ran. Exit code 0 only for status ok."
        ),
    )
    add_module_option(parser)
    parser.add_argument("--tool", required=True, help="tool name")
    parser.add_argument("--args", default="{}", help="arguments as a JSON object string")
    add_gate_options(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        stages = build_stages(args)
    except UsageError as exc:
        return fail_usage(str(exc))
    return asyncio.run(_call(stages, args.tool, args.args))


async def _call(stages: Any, tool: str, arguments: str) -> int:
    from runtime.pipeline import ToolCallPipeline

    pipeline = ToolCallPipeline(
        stages.registry,
        stages.executor,
        policy=stages.policy,
        audit=stages.audit,
        agent_name=stages.context.agent,
    )
    request = ToolCallRequest(id=f"call-{secrets.token_hex(8)}", name=tool, arguments=arguments)
    try:
        outcome = await pipeline.process(request, stages.context)
    finally:
        await stages.aclose()
    print_json(outcome.to_dict())
    return 0 if outcome.status is CallStatus.OK else 1
