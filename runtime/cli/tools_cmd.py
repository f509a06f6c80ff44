"""`agentrt tools list|schema --module M`: what a tool module offers."""

from __future__ import annotations

import argparse
from typing import Any

from runtime.cli.gate_options import (
    UsageError,
    add_module_option,
    fail_usage,
    load_registry,
    print_json,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tools", help="list tools or print their schemas")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per tool")
    add_module_option(listing)
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=_list)
    schema = actions.add_parser("schema", help="print the OpenAI `tools` array")
    add_module_option(schema)
    schema.add_argument("--tool", help="only this tool")
    schema.set_defaults(handler=_schema)


def _list(args: argparse.Namespace) -> int:
    try:
        registry = load_registry(args.module)
    except UsageError as exc:
        return fail_usage(str(exc))
    if args.json:
        print_json(
            [
                {
                    "name": item.name,
                    "description": item.description,
                    "parameters": sorted(item.parameters.get("properties", {})),
                    "requires_sandbox": item.requires_sandbox,
                }
                for item in registry
            ]
        )
        return 0
    width = max(len(item.name) for item in registry)
    for item in registry:
        params = ", ".join(item.parameters.get("properties", {}))
        print(f"{item.name:<{width}}  ({params})  {item.description}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    try:
        registry = load_registry(args.module)
    except UsageError as exc:
        return fail_usage(str(exc))
    if args.tool:
        found = registry.get(args.tool)
        if found is None:
            return fail_usage(f"no tool {args.tool!r}; valid tools: {', '.join(registry.names)}")
        print_json([found.openai_schema()])
        return 0
    print_json(registry.openai_schemas())
    return 0
