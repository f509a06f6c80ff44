"""`agentrt adapter deploy|list|rollback|restore`: adapters on a live vLLM server, behind an eval gate.

Exit codes: 0 promoted, rolled back, restored, or nothing to do; 1 the new
version was measured worse (and unloaded), the server would not do what
was asked, or the store failed part-way; 2 refused before the server was changed (an adapter that cannot
work, bad flags, nothing to roll back).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.cli.gate_options import fail_usage, print_json

if TYPE_CHECKING:
    from runtime.deploy.deployer import DeployOutcome
    from runtime.deploy.registry import AdapterVersion, SQLAdapterRegistry
    from runtime.finetune.evaluate import EvalItem

STORE_ENV = "AGENTRT_ADAPTER_STORE"


def add_store_option(parser: argparse.ArgumentParser, flag: str = "--store") -> None:
    """The adapter store flag (`--store` here, `--adapter-store` on `run`)."""
    parser.add_argument(
        flag,
        dest="adapter_store",
        metavar="URL",
        default=os.environ.get(STORE_ENV) or None,
        help=f"adapter store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB (env {STORE_ENV}; "
        "default sqlite:///.agentrt/adapters.db, next to the approvals database)",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "adapter",
        help="deploy LoRA adapters to a vLLM server behind an eval gate; list, roll back",
        description="Exit 0: done (or nothing to do). Exit 1: measured worse and unloaded, or "
        "the server refused. Exit 2: refused before the server was changed.",
    )
    actions = parser.add_subparsers(dest="adapter_command", metavar="ACTION", required=True)

    deploy = actions.add_parser(
        "deploy",
        help="load DIR as NAME@vN, measure it against what serves NAME, promote it if not worse",
    )
    deploy.add_argument("adapter_dir", type=Path, metavar="DIR", help="adapter directory")
    _server_options(deploy, required=True)
    deploy.add_argument("--name", required=True, help="the name clients ask for (--model NAME)")
    deploy.add_argument("--eval", type=Path, action="append", required=True, metavar="DATA",
                        help="held-out items (JSON lines, as for `agentrt eval --data`); "
                        "repeatable")  # fmt: skip
    deploy.add_argument("--module", help="tool module whose schemas replace the items' tools")
    deploy.add_argument("--base-model", type=Path, metavar="DIR",
                        help="the Hugging Face directory the server serves (default: the root "
                        "/v1/models reports, when it is a directory here)")  # fmt: skip
    deploy.add_argument("--base-alias", action="append", default=[], metavar="NAME",
                        help="another name of the served base, as adapters record it in "
                        "base_model_name_or_path (repeatable)")  # fmt: skip
    deploy.add_argument("--max-lora-rank", type=int, default=16, metavar="R",
                        help="the server's --max-lora-rank (vLLM's default: 16)")  # fmt: skip
    deploy.add_argument("--server-path", metavar="PATH",
                        help="DIR as the server sees it (another machine, a container mount)")  # fmt: skip
    deploy.add_argument("--max-tokens", type=int, default=192, help="per eval reply")
    deploy.add_argument("--concurrency", type=int, default=8,
                        help="eval requests in flight per model (vLLM batches them)")  # fmt: skip
    deploy.add_argument("--model-timeout", type=float, default=120.0, metavar="SECONDS",
                        help="give up on one eval request after SECONDS")  # fmt: skip
    deploy.add_argument("--keep-previous", type=int, default=1, metavar="N",
                        help="retired versions kept loaded for an instant rollback (default 1)")  # fmt: skip
    deploy.add_argument("--out", type=Path, metavar="FILE",
                        help="write the outcome with every item's two replies as JSON")  # fmt: skip
    deploy.set_defaults(handler=_deploy)

    listing = actions.add_parser("list", help="versions, what serves each name, eval figures")
    listing.add_argument("name", nargs="?", help="only this adapter name")
    _server_options(listing, required=False)
    listing.set_defaults(handler=_list)

    for action, text in (
        ("rollback", "serve the previous version of NAME again (no server restart)"),
        ("restore", "load the serving version of NAME again after a server restart"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name", metavar="NAME")
        _server_options(sub, required=False)
        sub.set_defaults(handler=_rollback if action == "rollback" else _restore)


def _server_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    default = os.environ.get("AGENTRT_BASE_URL")
    parser.add_argument(
        "--base-url",
        required=required and not default,
        default=default,
        help="the vLLM server, e.g. http://127.0.0.1:8000/v1 (env AGENTRT_BASE_URL)"
        + ("" if required else "; default: the server the version was deployed to"),
    )
    parser.add_argument("--api-key", default=os.environ.get("AGENTRT_API_KEY") or None)
    add_store_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _open_store(args: argparse.Namespace, *, create: bool) -> SQLAdapterRegistry | None:
    """The adapter store of `--store`; None when it does not exist and `create` is False.

    Raises:
        RegistryError: Not a store URL.
        StoreError: PostgreSQL unreachable, or migrated by a newer agentrt.
    """
    from runtime.deploy.registry import open_existing_registry, open_registry

    if create:
        return open_registry(args.adapter_store)
    return open_existing_registry(args.adapter_store)


def _items(paths: list[Path], module: str | None) -> list[EvalItem]:
    import dataclasses

    from runtime.finetune.eval_runner import read_items

    items = [item for path in paths for item in read_items(path)]
    if module:
        from runtime.module_loader import load_module
        from runtime.tools import ToolRegistry

        schemas = ToolRegistry.from_module(load_module(module)).openai_schemas()
        items = [dataclasses.replace(item, tools=list(schemas)) for item in items]
    if not items:
        raise ValueError("the --eval data holds no items")
    return items


def _exit_code(outcome: DeployOutcome) -> int:
    from runtime.deploy.deployer import DeployStatus

    if outcome.ok:
        return 0
    return 2 if outcome.status is DeployStatus.REFUSED else 1


def _show(outcome: DeployOutcome, as_json: bool) -> int:
    if as_json:
        print_json(outcome.to_dict())
    else:
        stream = sys.stdout if outcome.ok else sys.stderr
        print(f"[{outcome.status.value}] {outcome.message}", file=stream)
        if outcome.gate is not None:
            print(_gate_table(outcome), file=stream)
    return _exit_code(outcome)


def _gate_table(outcome: DeployOutcome) -> str:
    gate = outcome.gate
    assert gate is not None
    served = outcome.version.served_name if outcome.version else "new"
    rows = [
        f"| metric | {gate.against} | {served} | only {gate.against} | only {served} | p |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for test in gate.tests:
        rows.append(
            f"| {test['metric']} ({test['items']} items) | {_pct(test['a_rate'])} | "
            f"{_pct(test['b_rate'])} | {test['a_only']} | {test['b_only']} | "
            f"{test['p_value']:.4f} |"
        )
    return "\n".join(rows)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"


def _deploy(args: argparse.Namespace) -> int:
    from runtime.deploy.deployer import DeployOptions, deploy_adapter
    from runtime.deploy.registry import RegistryError
    from runtime.deploy.server import AdapterServer
    from runtime.storage import StoreError

    try:
        for flag in ("max_lora_rank", "concurrency", "max_tokens"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")
        if args.keep_previous < 0 or not args.model_timeout > 0:
            raise ValueError("--keep-previous must be 0 or more, --model-timeout positive")
        items = _items(args.eval, args.module)
        registry = _open_store(args, create=True)
    except (ValueError, OSError, RegistryError, StoreError) as exc:
        return fail_usage(f"adapter deploy: {exc}")
    assert registry is not None
    options = DeployOptions(
        max_lora_rank=args.max_lora_rank,
        base_model=args.base_model,
        base_aliases=tuple(args.base_alias),
        server_path=args.server_path,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
        timeout_s=args.model_timeout,
        api_key=args.api_key or "not-needed",
        keep_previous=args.keep_previous,
    )

    async def run() -> DeployOutcome:
        async with AdapterServer(args.base_url, api_key=args.api_key) as server:
            return await deploy_adapter(
                args.adapter_dir, args.name, items, server=server, registry=registry,
                options=options,
            )  # fmt: skip

    try:
        outcome = asyncio.run(run())
    except StoreError as exc:
        return _store_failed("deploy", exc)
    finally:
        registry.close()
    if args.out:
        import json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(outcome.to_dict(predictions=True), indent=2) + "\n")
    return _show(outcome, args.json)


def _list(args: argparse.Namespace) -> int:
    from runtime.deploy.registry import RegistryError
    from runtime.deploy.server import AdapterServer, AdapterServerError
    from runtime.storage import StoreError

    try:
        registry = _open_store(args, create=False)
        versions: list[AdapterVersion] = []
        if registry is not None:
            with registry:
                versions = registry.versions(args.name)
    except (RegistryError, StoreError) as exc:
        return fail_usage(f"adapter list: {exc}")
    on_server: set[str] | None = None
    if args.base_url:

        async def listed() -> set[str]:
            async with AdapterServer(args.base_url, api_key=args.api_key) as server:
                return {card.id for card in await server.models()}

        try:
            on_server = asyncio.run(listed())
        except AdapterServerError as exc:
            print(f"agentrt adapter list: {exc}", file=sys.stderr)
    rows = []
    for version in versions:
        row = version.to_dict()
        row["on_server"] = None if on_server is None else version.served_name in on_server
        rows.append(row)
    if args.json:
        serving = {v.name: v.served_name for v in versions if v.status.value == "serving"}
        print_json({"serving": serving, "versions": rows})
        return 0
    if not rows:
        print("no adapter versions recorded")
        return 0
    print("| version | status | loaded | full call | abstention | overall | vs | sha256 | path |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        evaluation = row["evaluation"] or {}
        figures = evaluation.get("candidate") or {}
        loaded = "yes" if row["loaded"] else "no"
        if row["on_server"] is not None:
            loaded += " (listed)" if row["on_server"] else " (not listed)"
        marker = " ◀ serves " + row["name"] if row["status"] == "serving" else ""
        print(
            f"| {row['served_name']}{marker} | {row['status']} | {loaded} | "
            f"{_pct(figures.get('full_call'))} | {_pct(figures.get('abstention'))} | "
            f"{_pct(figures.get('overall'))} | {evaluation.get('against', '–')} | "
            f"{row['digest'][:12]} | {row['path']} |"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    return _change(args, "rollback")


def _restore(args: argparse.Namespace) -> int:
    return _change(args, "restore")


def _change(args: argparse.Namespace, action: str) -> int:
    from runtime.deploy.deployer import restore_adapter, rollback_adapter
    from runtime.deploy.registry import RegistryError
    from runtime.deploy.server import AdapterServer
    from runtime.storage import StoreError

    try:
        registry = _open_store(args, create=False)
    except (RegistryError, StoreError) as exc:
        return fail_usage(f"adapter {action}: {exc}")
    if registry is None:
        return fail_usage(f"adapter {action}: no adapter store yet (nothing was deployed)")
    with registry:
        try:
            serving = registry.serving(args.name)
        except StoreError as exc:
            return fail_usage(f"adapter {action}: {exc}")
        if serving is None:
            return fail_usage(f"adapter {action}: {args.name} has no serving version")
        base_url = args.base_url or serving.base_url

        async def run() -> DeployOutcome:
            async with AdapterServer(base_url, api_key=args.api_key) as server:
                change = rollback_adapter if action == "rollback" else restore_adapter
                return await change(args.name, server=server, registry=registry)

        try:
            outcome = asyncio.run(run())
        except StoreError as exc:
            return _store_failed(action, exc)
    return _show(outcome, args.json)


def _store_failed(action: str, exc: Exception) -> int:
    """The store failed part-way: the server may have changed (exit 1), the message says how."""
    print(
        f"agentrt: error: adapter {action}: {exc}; `agentrt adapter list --base-url URL` shows "
        "what the server has loaded",
        file=sys.stderr,
    )
    return 1
