"""`agentrt demo`: the main job, end to end, shown live."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.cli.gate_options import (
    UsageError,
    add_mcp_option,
    audit_target,
    build_policy,
    fail_usage,
    warn_refused_mcp_tools,
)


def register(subparsers: Any) -> None:
    from runtime.cli.embedded_model import add_embedded_model_options
    from runtime.cli.run_cmd import add_model_options, add_model_timeout_option

    parser = subparsers.add_parser(
        "demo",
        help="run the demo agent over the built-in tools, showing every call live",
    )
    add_model_options(parser)
    parser.add_argument("--module", "-m", default="tools", help=argparse.SUPPRESS)
    parser.add_argument(
        "--policy",
        default=None,
        metavar="DIR",
        help="policy directory (default: the shipped default policy; 'none' for no policy)",
    )
    parser.add_argument("--sandbox", choices=["docker", "inprocess"], default=None)
    parser.add_argument("--audit-log", default=None, metavar="PATH")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--agent", default="demo-agent")
    add_mcp_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="use the scripted test server instead of the embedded model (a deterministic tour)",
    )
    add_embedded_model_options(parser)
    add_model_timeout_option(parser)
    parser.set_defaults(handler=_handle)


@dataclasses.dataclass
class _Row:
    request: int
    tool: str
    arguments: str
    gate: str = "…"
    decision: str = ""
    result: str = ""
    started: float = dataclasses.field(default_factory=time.perf_counter)
    ms: str = ""


class _LiveCalls:
    """Observer that renders each call's progress through the stages as a table."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live

        self.console = console
        self.rows: dict[str, _Row] = {}
        self.request = 0
        self.live = Live(self._table(), console=console, auto_refresh=False, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(expand=True, show_lines=False)
        for name, style in (
            ("#", "dim"),
            ("tool", "bold"),
            ("arguments", ""),
            ("gate", ""),
            ("policy", ""),
            ("result", ""),
            ("ms", "dim"),
        ):
            table.add_column(name, style=style, overflow="fold")
        for row in self.rows.values():
            table.add_row(
                str(row.request),
                row.tool,
                row.arguments,
                row.gate,
                row.decision,
                row.result,
                row.ms,
            )
        return table

    def __call__(self, stage: str, request: Any, info: Any) -> None:
        row = self.rows.get(request.id)
        if row is None:
            row = self.rows[request.id] = _Row(
                self.request, request.name or "?", request.arguments[:60]
            )
        if stage == "validated":
            row.gate = "[green]valid[/]"
        elif stage == "rejected":
            row.gate = f"[red]{info['status'].value}[/]"
            row.result = info["error"].message[:90]
        elif stage == "decided":
            decision = info["decision"]
            colour = {"allow": "green", "deny": "red"}.get(decision.decision, "yellow")
            row.decision = f"[{colour}]{decision.decision}[/] {','.join(decision.rule_ids)}"
        elif stage == "started":
            row.result = "[cyan]running…[/]"
        elif stage == "finished":
            outcome = info["outcome"]
            row.ms = f"{outcome.duration_ms:.1f}"
            if outcome.status.value == "ok":
                row.result = f"[green]ok[/] {json.dumps(outcome.result)[:80]}"
            elif not outcome.status.was_rejected:
                message = outcome.error.message if outcome.error else ""
                row.result = f"[red]{outcome.status.value}[/] {message[:80]}"
            elif outcome.status.value == "denied" and outcome.error is not None:
                row.result = f"[red]not executed[/] {outcome.error.message[:70]}"
        self.live.update(self._table(), refresh=True)


def paths_shown(answers: list[dict[str, Any]]) -> dict[str, bool]:
    """Which paths through the runtime the model's own calls took in this run."""
    rejected = {"invalid_arguments", "unknown_tool"}
    corrected = False
    for item in answers:
        calls = item["calls"]
        first_bad = next((i for i, c in enumerate(calls) if c in rejected), None)
        if first_bad is not None and "ok" in calls[first_bad + 1 :]:
            corrected = True
    return {
        "a call ran in the sandbox": any("ok" in item["calls"] for item in answers),
        "the gate rejected a call and the model corrected it": corrected,
        "the policy denied a call or held it for a human (never executed)": any(
            {"denied", "pending_approval"} & set(item["calls"]) for item in answers
        ),
        "a request answered without a tool": any(
            not item["calls"] and item["status"] == "completed" for item in answers
        ),
    }


def _handle(args: argparse.Namespace) -> int:
    from runtime.demo import demo_workspace

    try:
        with demo_workspace() as workspace:  # removed however the demo ends
            return asyncio.run(_demo(args, workspace))
    except UsageError as exc:
        return fail_usage(str(exc))


async def _demo(args: argparse.Namespace, workspace: Path) -> int:
    from rich.console import Console

    from runtime.agent import RunLimits
    from runtime.cli.prompt_options import prompt_from_args, settings_from_args
    from runtime.demo import DEMO_REQUESTS, SYSTEM_PROMPT, demo_stack, scripted_demo_model
    from runtime.model.client import OpenAICompatibleClient
    from runtime.model.local_server import (
        LocalModelServer,
        LocalServerError,
        local_server_available,
    )
    from runtime.stack import StackError
    from runtime.testing import ScriptedServer

    console = Console()
    if args.policy is None:  # shipped inside the package: found from a wheel install too
        from runtime.policy.loader import default_policy_dir

        args.policy = str(default_policy_dir())
    if args.sandbox in (None, "docker"):
        from runtime.sandbox.docker_executor import probe_docker

        problem = await asyncio.to_thread(probe_docker)
        if problem is not None:
            raise UsageError(
                f"{problem.message}\n(scripts/demo.sh sets Docker up; or run the demo with "
                f"--sandbox inprocess, which runs the built-in tools in this process)"
            )
    try:
        stages = demo_stack(
            workspace,
            policy=build_policy(args.policy),
            sandbox=args.sandbox or "docker",
            audit_log=audit_target(args.audit_log),
            tenant=args.tenant,
            agent=args.agent,
            module=args.module,
            mcp=args.mcp,
        )
    except StackError as exc:
        raise UsageError(str(exc)) from None
    server: ScriptedServer | None = None
    local: LocalModelServer | None = None
    try:
        warn_refused_mcp_tools(await stages.open())
        if args.max_tokens is None:
            args.max_tokens = 160  # small local models run on; the demo keeps turns short
        settings, answer_settings = settings_from_args(args)
        adapter = None
        if not (args.base_url or args.scripted or not local_server_available()):
            from runtime.cli.embedded_model import embedded_adapter

            adapter = embedded_adapter(args)  # its manifest says which prompt it was trained on
        choice = prompt_from_args(
            args, stages.registry, default_system=SYSTEM_PROMPT, adapter=adapter
        )

        if args.base_url:
            base_url, model = args.base_url, args.model or "default"
            console.print(f"[bold]model[/]: {model} at {base_url}")
        elif args.scripted or not local_server_available():
            if not args.scripted:
                console.print(
                    "[yellow]the embedded model server is not installed (scripts/demo.sh installs "
                    "it); using the scripted test server[/]"
                )
            server = ScriptedServer(handler=scripted_demo_model, model="scripted-demo").start()
            base_url, model = server.base_url, server.model
            console.print(
                "[bold]model[/]: the scripted test server replaying a tool-calling model "
                "(a deterministic tour of every path through the gate)"
            )
        else:
            from runtime.cli.embedded_model import describe, embedded_server

            local = embedded_server(
                args, log_path=Path(tempfile.gettempdir()) / "agentrt-demo-model.log"
            )
            console.print("[dim]starting the embedded model server (llama.cpp, SmolLM2-135M)…[/]")
            try:
                await asyncio.to_thread(local.start)
            except LocalServerError as exc:
                raise UsageError(str(exc)) from None
            base_url, model = local.base_url, local.model_alias
            console.print(
                f"[bold]model[/]: {describe(local)} at {base_url}, served by llama.cpp on this machine"
            )
            if local.adapter is None:
                console.print(
                    "[dim]the bare 135M model rarely calls a tool; the general adapter (the default "
                    "without --base) or `agentrt finetune` on your tools fixes that[/]"
                )
    except BaseException:  # nothing ran yet: close what was opened, leave no server behind
        await stages.finish()
        if server is not None:
            server.stop()
        raise
    console.print(
        f"[bold]sandbox[/]: {stages.executor.name}   [bold]policy[/]: {args.policy or 'none (allow all)'}"
        f"   [bold]workspace[/]: {workspace}"
    )
    client = OpenAICompatibleClient(
        base_url,
        model,
        api_key=args.api_key,
        stream=args.stream,
        timeout=args.model_timeout,
        call_form=args.call_form,
    )
    live = _LiveCalls(console)
    agent = stages.agent(
        client,
        prompt=choice.prompt,
        retrieval=choice.retrieval,
        settings=settings,
        answer_settings=answer_settings,
        limits=RunLimits(max_turns=args.max_turns),
        name=args.agent,
        observer=live,
    )
    answers: list[dict[str, Any]] = []
    try:
        prewarm = getattr(stages.executor, "prewarm", None)
        if prewarm is not None:
            console.print("[dim]warming sandbox containers…[/]")
            await prewarm(stages.registry, wait=True)
        with live.live:
            for index, request in enumerate(DEMO_REQUESTS, start=1):
                live.request = index
                result = await agent.run(request.prompt, tenant=args.tenant)
                answers.append(
                    {
                        "request": request.prompt,
                        "status": result.status.value,
                        "answer": result.output or result.error or "",
                        "calls": [c.status.value for c in result.tool_calls],
                    }
                )
    finally:
        await client.aclose()
        closing_problem = await stages.finish()
        if server is not None:
            server.stop()
        if local is not None:
            local.stop()
    console.print()
    console.rule("answers")
    for index, item in enumerate(answers, start=1):
        console.print(f"[bold]{index}. {item['request']}[/]  [dim]({item['status']})[/]")
        console.print(f"   {item['answer']}")
    shown = paths_shown(answers)
    console.rule("what this run showed")
    for label, seen in shown.items():
        mark = "[green]yes[/]" if seen else "[yellow]not this time[/]"
        console.print(f"  {mark}  {label}")
    if not all(shown.values()):
        console.print(
            "[dim]the model decides what happens; a path it did not take is reported, never "
            "scripted (--scripted replays a tour of every path)[/]"
        )
    verified_ok = True
    audit_path = getattr(stages.audit, "path", None)
    if audit_path is not None:
        from runtime.audit.verify import verify
        from runtime.cli.audit_cmd import _print_verify

        console.rule(f"agentrt audit verify {audit_path}")
        report = await asyncio.to_thread(verify, [audit_path])
        _print_verify(report)
        verified_ok = report.ok
    if closing_problem is not None:
        from runtime.cli.gate_options import warn_not_audited

        warn_not_audited(closing_problem)
        verified_ok = False
    if args.json:
        print(json.dumps({"answers": answers, "shown": shown, "audit_ok": verified_ok}))
    # A run the policy paused for a human ended as it should: the demo takes no approvals.
    finished = all(item["status"] in ("completed", "pending_approval") for item in answers)
    return 0 if finished and verified_ok else 1
