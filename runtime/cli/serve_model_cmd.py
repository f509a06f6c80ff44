"""`agentrt serve-model`: the embedded llama.cpp model server, in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from runtime.cli.gate_options import fail_usage


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve-model",
        help="serve the bundled SmolLM2-135M (or a GGUF file) on 127.0.0.1, OpenAI-compatible",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--model-path", type=Path, default=None, help="a GGUF file (default: bundled)"
    )
    parser.add_argument("--adapter", type=Path, default=None,
                        help="a LoRA adapter in GGUF form (default: the shipped general "
                        "tool-calling adapter)")  # fmt: skip
    parser.add_argument("--base", action="store_true",
                        help="serve the bare model, without the general adapter")  # fmt: skip
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--log", type=Path, default=None, help="append the server's output here")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for health")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from runtime.model.adapters import GeneralAdapterError, general_adapter_gguf
    from runtime.model.local_server import LocalModelServer, LocalServerError

    adapter = args.adapter
    if adapter is None and not args.base and args.model_path is None:
        try:
            adapter = general_adapter_gguf()
        except GeneralAdapterError as exc:
            return fail_usage(str(exc))
    server = LocalModelServer(
        model_path=args.model_path,
        adapter=adapter,
        port=args.port,
        n_ctx=args.n_ctx,
        log_path=args.log,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start(timeout_s=args.timeout)
    except LocalServerError as exc:
        return fail_usage(str(exc))
    print(
        f"serving {server.model_alias} at {server.base_url} (pid {server.pid}); Ctrl-C stops it",
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            if not server.healthy():
                print("the model server stopped answering", flush=True)
                return 1
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0
