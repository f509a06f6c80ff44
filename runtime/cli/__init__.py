"""The `agentrt` command line: one module per sub-command.

Each sub-command module exposes `register(subparsers)`, which adds its parser
and sets `handler` (a function taking the parsed arguments and returning the
exit code). Modules import their heavy dependencies inside the handler so
`agentrt --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMANDS = (
    "tools",
    "call",
    "run",
    "demo",
    "serve_model",
    "bench",
    "sandbox",
    "policy",
    "approvals",
    "audit",
    "dataset",
    "finetune",
    "eval",
    "adapter",
    "rag",
    "mcp",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentrt",
        description="Run tool-using LLM agents behind a strict gate, policies and sandboxes.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"runtime.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"runtime.cli.{name}_cmd":
                continue  # a sub-command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
