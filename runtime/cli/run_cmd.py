"""`agentrt run`: one agent run against an OpenAI-compatible model server.

Exit codes: 0 the run completed; 1 it stopped otherwise (`max_turns`,
`pending_approval`, `model_error`, ...: the output says which); 2 it was
refused before the model was asked (bad flags, a `--tool-choice` naming no
tool, `--resume` without `--policy`, a run that cannot be resumed, or a
deployed adapter whose promoted version the server has not loaded); 3 a
call ran, and the run is printed, but the audit log could not record all of
it (the call shows `audited: false`), or the log could not be closed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING, Any

from runtime.cli.adapter_cmd import add_store_option
from runtime.cli.embedded_model import add_embedded_model_options, embedded_server
from runtime.cli.gate_options import (
    EXIT_NOT_AUDITED,
    NO_POLICY,
    UsageError,
    add_gate_options,
    add_module_option,
    build_stages,
    fail_usage,
    print_json,
    warn_not_audited,
    warn_refused_mcp_tools,
)
from runtime.cli.prompt_options import (
    add_prompt_options,
    add_sampling_options,
    prompt_from_args,
    settings_from_args,
)
from runtime.model.client import DEFAULT_TIMEOUT_S, DEFAULT_TURN_TIMEOUT_S

if TYPE_CHECKING:
    from runtime.deploy.resolve import ResolvedModel
    from runtime.stack import Stack


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Model server, sampling, prompt and limit flags (shared with `demo`)."""
    parser.add_argument(
        "--base-url",
        default=os.environ.get("AGENTRT_BASE_URL"),
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (env AGENTRT_BASE_URL)",
    )
    parser.add_argument(
        "--model", default=os.environ.get("AGENTRT_MODEL"), help="served model or adapter name"
    )
    parser.add_argument("--api-key", default=os.environ.get("AGENTRT_API_KEY", "not-needed"))
    add_sampling_options(parser)
    parser.add_argument("--stream", action="store_true", help="stream the reply (SSE)")
    parser.add_argument(
        "--call-form",
        choices=["plain", "every-key"],
        default=os.environ.get("AGENTRT_CALL_FORM", "plain"),
        help="the form a --base-url server's adapter writes calls in: every-key for an "
        "adapter trained so (its agentrt_adapter.json says), served by vLLM; a name deployed "
        "with `agentrt adapter deploy` uses the form its serving version was deployed with, "
        "and the embedded server follows its adapter by itself (env AGENTRT_CALL_FORM)",
    )
    parser.add_argument("--max-turns", type=int, default=10)
    add_prompt_options(parser)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run an agent on one prompt",
        description="Exit 0: the run completed. Exit 1: it stopped for another reason "
        "(printed). Exit 2: refused before the model was asked (one sentence on stderr). "
        "Exit 3: printed, but the audit log could not record all of it.",
    )
    add_module_option(parser)
    add_model_options(parser)
    add_gate_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--audit-conversation",
        action="store_true",
        help="also record the request and the final answer in the audit log (for dataset export)",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a run that stopped for approvals, once they are decided",
    )
    add_model_timeout_option(parser)
    add_embedded_model_options(parser)
    add_store_option(parser, "--adapter-store")
    parser.add_argument("prompt", nargs="?", help="the user's request")
    parser.set_defaults(handler=_handle)


def add_model_timeout_option(parser: argparse.ArgumentParser) -> None:
    """`--model-timeout SECONDS`: one request to the model server (see `OpenAICompatibleClient`)."""
    parser.add_argument(
        "--model-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"give up on one model request after SECONDS (default {DEFAULT_TIMEOUT_S:g}); "
        f"failed requests are retried within a turn deadline of "
        f"{DEFAULT_TURN_TIMEOUT_S:g} s (or SECONDS if longer)",
    )


def deployed_model(args: argparse.Namespace) -> ResolvedModel:
    """The name to send for `--model`: a deployed adapter's promoted `NAME@vN`, if loaded.

    A name the adapter store does not know (or no store at all) is sent as
    given; a known one only when the server lists what it resolves to, in the
    call form and with the worked requests that version was deployed with.

    Raises:
        UsageError: The store names a version the server has not loaded.
    """
    from runtime.deploy.registry import RegistryError, SQLAdapterRegistry, open_existing_registry
    from runtime.deploy.resolve import AdapterNotLoaded, ResolvedModel, resolve_model
    from runtime.deploy.server import AdapterServer, AdapterServerError
    from runtime.storage import StoreError

    try:
        registry = open_existing_registry(args.adapter_store)
    except (RegistryError, StoreError) as exc:
        raise UsageError(f"adapter store: {exc}") from None
    if registry is None:
        return ResolvedModel(str(args.model))

    async def resolve(registry: SQLAdapterRegistry) -> ResolvedModel:
        async with AdapterServer(args.base_url, api_key=args.api_key) as server:
            return await resolve_model(args.model, registry=registry, server=server)

    with registry:
        try:
            return asyncio.run(resolve(registry))
        except (AdapterNotLoaded, AdapterServerError, StoreError) as exc:
            raise UsageError(str(exc)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _handle(args: argparse.Namespace) -> int:
    try:
        if args.base_url and not args.model:
            raise UsageError("--base-url needs --model (or AGENTRT_MODEL)")
        if args.model and not args.base_url:
            raise UsageError(
                "--model names a model on a server: give --base-url too (without both, the "
                "embedded model runs)"
            )
        if args.base_url and (args.adapter or args.base):
            raise UsageError("--adapter and --base choose the embedded model; not with --base-url")
        if args.base_url:
            resolved = deployed_model(args)
            args.model = resolved.name
            args.call_form = resolved.call_form or args.call_form
            if args.similar_requests is None:  # as the deployed version learned, if it is one
                args.similar_requests = resolved.similar_requests
        local = None if args.base_url else embedded_server(args)
        settings = settings_from_args(args)
        if args.max_turns < 1:
            raise UsageError("--max-turns must be at least 1")
        if not args.prompt and not args.resume:
            raise UsageError("give a PROMPT, or --resume RUN_ID")
        if args.resume and (str(args.policy).lower() == NO_POLICY or not args.approvals_db):
            raise UsageError(
                "--resume needs a policy (not --policy none) and --approvals-db: paused runs "
                "are kept with the approvals the policy asked for"
            )
        stages = build_stages(args, pool_size=2)
        try:
            choice = prompt_from_args(
                args, stages.registry, adapter=local.adapter if local is not None else None
            )
        except UsageError:
            asyncio.run(stages.aclose())  # close the audit log cleanly: nothing ran
            raise
    except UsageError as exc:
        return fail_usage(str(exc))
    if local is not None:
        from runtime.model.local_server import LocalServerError

        try:
            local.start()
        except LocalServerError as exc:
            asyncio.run(stages.aclose())
            return fail_usage(f"the embedded model server did not start: {exc}")
        args.base_url, args.model = local.base_url, local.model_alias
    try:
        return asyncio.run(_run(args, stages, settings, choice))
    finally:
        if local is not None:
            local.stop()


async def _run(
    args: argparse.Namespace, stages: Stack, settings: tuple[Any, Any], choice: Any
) -> int:
    from runtime.agent import ResumeError, RunLimits, RunStatus
    from runtime.model.client import OpenAICompatibleClient

    client = OpenAICompatibleClient(
        args.base_url,
        args.model,
        api_key=args.api_key,
        stream=args.stream,
        timeout=args.model_timeout,
        call_form=args.call_form,
    )
    try:
        warn_refused_mcp_tools(await stages.open())
        try:
            agent = stages.agent(
                client,
                prompt=choice.prompt,
                retrieval=choice.retrieval,
                settings=settings[0],
                answer_settings=settings[1],
                limits=RunLimits(max_turns=args.max_turns),
                name=stages.context.agent or "agentrt-run",
                audit_conversation=args.audit_conversation,
            )
        except ValueError as exc:  # the flags were checked above; anything else it refuses
            return fail_usage(str(exc))
        prewarm = getattr(stages.executor, "prewarm", None)
        if prewarm is not None:
            await prewarm(stages.registry)
        if args.resume:
            try:
                result = await agent.resume(args.resume)
            except ResumeError as exc:
                return fail_usage(f"cannot resume: {exc}")
        else:
            result = await agent.run(
                args.prompt,
                tenant=stages.context.tenant,
                principal=stages.context.principal,
                context=stages.context.extra,
            )
    finally:
        await client.aclose()
        problem = await stages.finish()
    if args.json:
        print_json(result.to_dict())
    else:
        for call in result.tool_calls:
            detail = call.error.message if call.error else str(call.result)[:200]
            print(f"  {call.tool} → {call.status.value}: {detail}")
        if result.error:
            print(f"[{result.status.value}] {result.error}")
        if result.approval_ids:
            print(
                f"approve with `agentrt approvals approve ID`, then `agentrt run --resume {result.run_id}`"
            )
        print(result.output)
    unaudited = [call for call in result.tool_calls if not call.audited]
    for call in unaudited:
        warn_not_audited(f"{call.tool}: {call.audit_error}")
    if problem is not None:
        warn_not_audited(problem)
    if unaudited or (problem is not None and result.status is not RunStatus.AUDIT_ERROR):
        return EXIT_NOT_AUDITED
    return 0 if result.status is RunStatus.COMPLETED else 1
