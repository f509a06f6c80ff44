"""`agentrt serve-model`: the embedded llama.cpp model server, in the foreground.

While it serves, the server is judged by its process (an exit ends the
command at once) and a tolerant probe: an HTTP request the server answers
without the model's lock, every `PROBE_EVERY_S`, allowed `PROBE_TIMEOUT_S`;
only `PROBE_FAILURES` failures in a row (over a minute of no answer at all)
stop it. A server busy with a long completion still answers the probe, so
it is never stopped mid-request.

Exit codes: 0 stopped by Ctrl-C / SIGTERM; 1 the server exited or stopped
answering; 2 it could not start (bad flags, missing model or adapter).
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from runtime.cli.gate_options import fail_usage

PROBE_EVERY_S = 5.0
PROBE_TIMEOUT_S = 10.0
PROBE_FAILURES = 5


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
    parser.add_argument("--no-tool-grammar", action="store_true",
                        help="decode without the tools' grammar (by default a call always names "
                        "an offered tool and matches its schema)")  # fmt: skip
    parser.add_argument("--no-ground-arguments", action="store_true",
                        help="serve calls as decoded (by default the optional arguments the "
                        "request states are filled in and those it does not are dropped)")  # fmt: skip
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
        tool_grammar=not args.no_tool_grammar,
        ground_arguments=not args.no_ground_arguments,
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
        if not _watch(server, stop):
            return 1
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0


def _watch(server: Any, stop: threading.Event) -> bool:
    """Serve until `stop` is set (True) or the server is dead or unreachable (False)."""
    failures = 0
    while not stop.wait(PROBE_EVERY_S):
        if not server.alive():
            where = f"; see {server.log_path}" if server.log_path else ""
            print(f"the model server exited (code {server.returncode}){where}", flush=True)
            return False
        if server.responsive(timeout_s=PROBE_TIMEOUT_S):
            failures = 0
            continue
        failures += 1
        if failures >= PROBE_FAILURES and not stop.is_set():
            print(
                f"the model server did not answer {failures} probes in a row "
                f"({PROBE_TIMEOUT_S:g} s each, every {PROBE_EVERY_S:g} s); stopping it",
                flush=True,
            )
            return False
    return True
