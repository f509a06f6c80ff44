"""`agentrt approvals list|show|approve|reject|abandon`: decide pending tool calls.

Approving only changes the stored state; the run that asked resumes through
the library (`ApprovalStore.claim_for_execution`), which runs the call once.
Edited arguments (`approve ID --args JSON`) are re-checked
(`runtime.approvals.recheck`) against the policy (`--policy DIR`, default the
shipped default policy) as an approved call, and through the `ArgumentGate`
(the tool's JSON Schema) when `--module M` names the module that defines the
tool; the resumed run validates them again before executing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

_DEFAULT_DB = ".agentrt/approvals.db"  # runtime.approvals.store.DEFAULT_APPROVALS_DB


def register(subparsers: Any) -> None:
    """Add the `approvals` command and its actions."""
    parser = subparsers.add_parser("approvals", help="list and decide calls awaiting approval")
    parser.add_argument("--db", default=_DEFAULT_DB, help=f"approval store (default {_DEFAULT_DB})")
    parser.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get("AGENTRT_STORE") or None,
        help="shared state store instead of --db: sqlite:///PATH or postgresql://... "
        "(env AGENTRT_STORE)",
    )
    # The same options after the action; SUPPRESS keeps them from overwriting the ones above.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help="approval store")
    common.add_argument("--store", default=argparse.SUPPRESS, metavar="URL", help="state store")
    actions = parser.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="list approvals")
    listing.add_argument("--status", help="pending, approved, rejected, expired, executing, ...")
    listing.add_argument("--run", help="only this run id")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", parents=[common], help="print one approval as JSON")
    show.add_argument("id", help="approval id or a unique prefix (6+ characters)")
    show.set_defaults(handler=_show)

    approve = actions.add_parser("approve", parents=[common], help="approve a pending call")
    approve.add_argument("id")
    approve.add_argument("--args", metavar="JSON", help="edited arguments to run instead")
    approve.add_argument(
        "--policy",
        metavar="DIR",
        help="policy to re-check edited arguments (default: the shipped default policy)",
    )
    approve.add_argument("--module", metavar="M", help="module defining the tool (schema check)")
    approve.add_argument("--by", help="who approves (recorded)")
    approve.add_argument("--note")
    approve.set_defaults(handler=_approve)

    reject = actions.add_parser("reject", parents=[common], help="reject a pending call")
    reject.add_argument("id")
    reject.add_argument("--reason")
    reject.add_argument("--by")
    reject.set_defaults(handler=_reject)

    abandon = actions.add_parser(
        "abandon", parents=[common], help="close a call that crashed mid-execution, never re-run"
    )
    abandon.add_argument("id")
    abandon.add_argument("--reason")
    abandon.add_argument("--by")
    abandon.set_defaults(handler=_abandon)


def _store(args: argparse.Namespace) -> Any:
    from runtime.approvals.store import ApprovalStore
    from runtime.storage import StoreError

    try:
        if args.store:
            return ApprovalStore.open(args.store)
        return ApprovalStore(Path(args.db))
    except (StoreError, ValueError) as exc:  # unreachable, newer schema, or not a store URL
        print(f"agentrt approvals: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _print_record(record: Any) -> None:
    print(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))


def _fail(action: str, exc: Exception, code: int = 1) -> int:
    print(f"agentrt approvals {action}: {exc}", file=sys.stderr)
    return code


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError

    try:
        records = _store(args).list(status=args.status, run_id=args.run)
    except (ApprovalError, ValueError) as exc:
        return _fail("list", exc, 2)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
        return 0
    if not records:
        print("no approvals")
        return 0
    print(f"{'ID':32}  {'STATUS':9}  {'TOOL':20}  {'RUN':16}  {'EXPIRES':20}")
    for r in records:
        print(
            f"{r.id:32}  {r.status:9}  {r.tool[:20]:20}  {r.run_id[:16]:16}  {_when(r.expires_at)}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError

    try:
        _print_record(_store(args).get(args.id))
    except ApprovalError as exc:
        return _fail("show", exc)
    return 0


def _approve(args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError, ApprovalRecheckFailed
    from runtime.approvals.recheck import EditedArgumentsInvalid, approval_recheck
    from runtime.arguments import ArgumentGate
    from runtime.cli.gate_options import UsageError, build_policy, load_registry
    from runtime.cli.policy_cmd import parse_json_object
    from runtime.policy.engine import PolicySet
    from runtime.policy.ratelimit import InMemoryRateLimitStore

    edited = None
    recheck = None
    try:
        if args.args is not None or args.policy is not None:
            edited = parse_json_object(args.args) if args.args is not None else None
            policy = build_policy(args.policy)
            if isinstance(policy, PolicySet):  # a re-check consumes no real budget
                policy = PolicySet(
                    policy.policies, rate_limits=InMemoryRateLimitStore(), sources=policy.sources
                )
            gate = ArgumentGate(load_registry(args.module)) if args.module else None
            recheck = approval_recheck(policy, gate)
        record = _store(args).approve(
            args.id, by=args.by, note=args.note, arguments=edited, recheck=recheck
        )
    except ApprovalRecheckFailed as exc:
        print(json.dumps({"error": str(exc), "decision": exc.decision.to_dict()}, indent=2))
        return 1
    except (EditedArgumentsInvalid, UsageError, ValueError) as exc:
        return _fail("approve", exc, 2)
    except ApprovalError as exc:
        return _fail("approve", exc)
    if edited is not None and not args.module:
        print(
            "note: edited arguments will be validated against the tool's schema when the "
            "run resumes",
            file=sys.stderr,
        )
    _print_record(record)
    return 0


def _reject(args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError

    try:
        _print_record(_store(args).reject(args.id, by=args.by, reason=args.reason))
    except ApprovalError as exc:
        return _fail("reject", exc)
    return 0


def _abandon(args: argparse.Namespace) -> int:
    from runtime.approvals import ApprovalError

    try:
        _print_record(_store(args).abandon(args.id, by=args.by, reason=args.reason))
    except ApprovalError as exc:
        return _fail("abandon", exc)
    return 0
