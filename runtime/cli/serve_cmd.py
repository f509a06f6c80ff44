"""`agentrt serve`: the runtime as an HTTP service (FastAPI on uvicorn), one replica per process.

Replicas share approvals, paused runs, rate-limit windows and run records
through `--store` (PostgreSQL for more than one host). Each replica writes
its own audit log (`--audit-log`, one file per replica: a log has one writer).
`--mcp FILE` adds MCP servers' pinned tools (`SERVER.TOOL`) when it starts;
their sessions, shared by every run of the replica, close when it stops.
Once it listens, it prints one line to stdout:
`agentrt serve: listening on http://HOST:PORT` (with `--port 0`, the port chosen).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from typing import Any

from runtime.cli.adapter_cmd import add_store_option as add_adapter_store_option
from runtime.cli.gate_options import (
    UsageError,
    add_mcp_option,
    add_module_option,
    add_store_option,
    audit_target,
    fail_usage,
    warn_refused_mcp_tools,
)

DEFAULT_STORE = "sqlite:///.agentrt/state.db"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve runs and approvals over HTTP (several replicas share --store)",
        description="An ASGI service: POST /v1/runs, approvals, SSE events, /metrics, the "
        "approvals page at /approvals. Exit 2: refused to start (one sentence on stderr).",
    )
    add_module_option(parser)
    parser.add_argument(
        "--policy",
        metavar="DIR",
        default=os.environ.get("AGENTRT_POLICY_DIR") or None,
        help="policy directory or file (default: the shipped least-privilege policy)",
    )
    add_store_option(parser)
    parser.add_argument(
        "--tokens",
        metavar="FILE",
        required=True,
        help="YAML: tokens: [{token: ..., tenant: ...}, ...] (optional expires: ISO 8601)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--sandbox", choices=["docker", "inprocess"], default="docker")
    parser.add_argument("--workspace", metavar="DIR", default=None)
    parser.add_argument("--allow-unsandboxed", action="store_true")
    add_mcp_option(parser)
    parser.add_argument(
        "--audit-log",
        metavar="PATH",
        default=None,
        help="this replica's audit log (default .agentrt/audit/audit.jsonl; one per replica)",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("AGENTRT_BASE_URL"),
        help="OpenAI-compatible model server, e.g. http://vllm:8000/v1 (env AGENTRT_BASE_URL)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("AGENTRT_MODEL"),
        help="served model or adapter name; a name deployed with `agentrt adapter deploy` is "
        "sent as the version serving it when each run starts (see --adapter-store)",
    )
    parser.add_argument("--api-key", default=os.environ.get("AGENTRT_API_KEY", "not-needed"))
    parser.add_argument(
        "--call-form",
        choices=["plain", "every-key"],
        default=os.environ.get("AGENTRT_CALL_FORM", "plain"),
        help="the form the served adapter writes calls in: every-key for an adapter trained "
        "so (its agentrt_adapter.json says); a name deployed with `agentrt adapter deploy` "
        "uses the form its serving version was deployed with (env AGENTRT_CALL_FORM)",
    )
    add_adapter_store_option(parser, "--adapter-store")
    parser.add_argument(
        "--similar-requests",
        type=int,
        metavar="K",
        help="show the K synthesised requests most like each request before it (default: "
        "what the deployed version --model names was trained with, else 0)",
    )
    parser.add_argument("--max-turns", type=int, default=10)
    parser.add_argument(
        "--replica", default=None, help="this replica's name in run records (default HOST:PID)"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)"
    )
    parser.add_argument(
        "--resume-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to resume paused runs whose approvals were decided elsewhere "
        "(agentrt approvals, expiry, a replica that died); 0 turns it off",
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        if bool(args.base_url) != bool(args.model):
            raise UsageError("--base-url and --model go together")
        try:
            import uvicorn  # noqa: F401

            from runtime.service.tokens import TokenError, Tokens
        except ImportError:
            raise UsageError(
                "agentrt serve needs the service extra: pip install 'agent-runtime[service]'"
            ) from None
        try:
            tokens = Tokens.load(args.tokens)
        except TokenError as exc:
            raise UsageError(str(exc)) from None
        listener = _listen(args.host, args.port)
    except UsageError as exc:
        return fail_usage(str(exc))
    import asyncio

    return asyncio.run(_serve(args, tokens, listener))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    return sock


async def _serve(args: argparse.Namespace, tokens: Any, listener: socket.socket) -> int:
    import uvicorn

    from runtime.approvals.claim_locks import ClaimLocks, FileClaimLocks, PostgresClaimLocks
    from runtime.deploy.registry import RegistryError
    from runtime.service.api import create_app
    from runtime.service.runner import RunService
    from runtime.service.runs import RunStore
    from runtime.stack import StackError, build_stack
    from runtime.storage import StoreError
    from runtime.storage.sql import PostgresDatabase

    store = args.store or DEFAULT_STORE
    try:
        stack = build_stack(
            args.module,
            policy=args.policy,
            sandbox=args.sandbox,
            workspace=args.workspace,
            allow_unsandboxed=args.allow_unsandboxed,
            pool_size=2 if args.sandbox == "docker" else 0,
            audit_log=audit_target(args.audit_log),
            store=store,
            mcp=args.mcp,
        )
    except (StackError, StoreError) as exc:
        listener.close()
        return fail_usage(str(exc))
    # The MCP servers' pinned tools join the registry now; each server starts at
    # its first call and stops when the stack closes at shutdown.
    try:
        warn_refused_mcp_tools(await stack.open())
    except BaseException:
        await stack.finish()
        listener.close()
        raise
    assert stack.state is not None
    database = stack.state.database
    locks: ClaimLocks
    if isinstance(database, PostgresDatabase):
        locks = PostgresClaimLocks(database)
    else:
        path = database.url.path or Path(".agentrt/state.db")
        locks = FileClaimLocks(path.with_name(path.name + ".runs"))
    model = deployed = None
    if args.base_url:
        from runtime.deploy.resolve import DeployedModel
        from runtime.model.client import OpenAICompatibleClient

        model = OpenAICompatibleClient(
            args.base_url, args.model, api_key=args.api_key, call_form=args.call_form
        )
        deployed = DeployedModel(model, store=args.adapter_store, api_key=args.api_key)
    host, port = listener.getsockname()[:2]
    replica = args.replica or f"{socket.gethostname()}:{os.getpid()}:{port}"
    problem = None
    try:
        if deployed is not None:
            await deployed.open()
    except (StoreError, RegistryError) as exc:
        problem = f"--adapter-store: {exc}"
    try:
        if problem is None:
            runs = RunStore(database)
            service = RunService(
                stack,
                runs,
                locks,
                model,
                deployed=deployed,
                replica=replica,
                max_turns=args.max_turns,
                similar_requests=args.similar_requests,
            )
    except (StoreError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        if deployed is not None:
            await deployed.aclose()
        locks.close()
        await stack.finish()
        listener.close()
        return fail_usage(problem)

    async def shutdown() -> None:
        if deployed is not None:
            await deployed.aclose()
        if model is not None:
            await model.aclose()
        locks.close()
        problem = await stack.finish()
        if problem is not None:
            sys.stderr.write(f"agentrt serve: warning: {problem}\n")

    audit = getattr(stack.audit, "path", None)
    app = create_app(
        service,
        tokens,
        audit_log=Path(audit) if audit is not None else None,
        max_body_bytes=args.max_body_bytes,
        on_shutdown=shutdown,
        resume_interval_s=args.resume_interval or None,
    )
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    print(f"agentrt serve: listening on http://{host}:{port}", flush=True)
    await server.serve(sockets=[listener])
    return 0
