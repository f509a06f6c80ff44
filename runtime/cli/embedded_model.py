"""The embedded model for `run` and `demo`: llama.cpp with the shipped general adapter.

Without `--base-url`, these commands start the embedded llama.cpp server on
127.0.0.1 for the duration of the command, serving the bundled SmolLM2-135M
with the general tool-calling adapter (`runtime/model/general_adapter/`),
another `--adapter FILE.gguf`, or with `--base` the bare model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runtime.cli.gate_options import UsageError


def add_embedded_model_options(parser: argparse.ArgumentParser) -> None:
    """`--adapter GGUF` and `--base`: what the embedded model server loads."""
    parser.add_argument(
        "--adapter",
        default=None,
        metavar="GGUF",
        help="LoRA adapter for the embedded model (default: the shipped general adapter)",
    )
    parser.add_argument(
        "--base", action="store_true", help="the bare embedded model, without the adapter"
    )
    parser.add_argument(
        "--no-tool-grammar",
        action="store_true",
        help="embedded model: decode without the tools' grammar (by default a call always "
        "names an offered tool and matches its schema)",
    )
    parser.add_argument(
        "--no-ground-arguments",
        action="store_true",
        help="embedded model: serve calls as decoded (by default the optional arguments the "
        "request states are filled in and those it does not are dropped)",
    )


def embedded_adapter(args: argparse.Namespace) -> Path | None:
    """The adapter the embedded server should load, checked before it starts."""
    from runtime.model.adapters import GeneralAdapterError, general_adapter_gguf

    if args.adapter and args.base:
        raise UsageError("give --adapter or --base, not both")
    if args.adapter:
        path = Path(args.adapter)
        if not path.is_file():
            raise UsageError(f"--adapter {path}: no such file (a GGUF LoRA adapter)")
        return path
    if args.base:
        return None
    try:
        return general_adapter_gguf()
    except GeneralAdapterError as exc:
        raise UsageError(str(exc)) from None


def embedded_server(args: argparse.Namespace, *, log_path: Path | None = None) -> Any:
    """A `LocalModelServer` (not started) for the flags, or a clear refusal."""
    from runtime.model.local_server import LocalModelServer, local_server_available

    if not local_server_available():
        raise UsageError(
            "no --base-url given and the embedded model server is not installed: "
            "pip install 'agent-runtime[local]' (scripts/demo.sh does), or pass "
            "--base-url URL --model NAME"
        )
    return LocalModelServer(
        adapter=embedded_adapter(args),
        log_path=log_path,
        tool_grammar=not getattr(args, "no_tool_grammar", False),
        ground_arguments=not getattr(args, "no_ground_arguments", False),
    )


def describe(server: Any) -> str:
    """ "smollm2-135m + general adapter" and the like, for the console."""
    adapter = server.adapter
    if adapter is None:
        return f"{server.model_alias} (bare, untuned)"
    from runtime.model.adapters import general_adapter_dir

    if Path(adapter).parent == general_adapter_dir():
        return f"{server.model_alias} + the general tool-calling adapter"
    return f"{server.model_alias} + {adapter}"
