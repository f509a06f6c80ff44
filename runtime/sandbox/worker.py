"""The worker that runs inside a sandbox container: one tool call per request.

The Docker executor starts it as ``python3 -I /opt/agentrt/lib/runtime/sandbox/worker.py``
in a hardened container. It imports only the standard library until it has
connected to the host, then the runtime. All records travel as JSON lines over
a unix socket the host bind-mounts at `/run/agentrt/s`; the tool's stdout and
stderr go to pipes read here, so nothing a tool prints can pose as a record.

Protocol (every record has a type ``t``)::

    worker -> host  {"t": "hello", "pid": N} or {"t": "hello", "startup_error": {...}}
    host -> worker  {"t": "init", "module": NAME, "file": PATH|null, "stream_cap": N,
                     "output_limit": N, "result_limit": N}
    worker -> host  {"t": "ready", "import_error": {...}|null}
    host -> worker  {"t": "call", "id": NONCE, "tool": NAME, "module": NAME, "arguments": {...},
                     "last": BOOL}
    worker -> host  {"t": "result", "id": NONCE, "status": ..., "result"|"error": ...,
                     "stdout": ..., "stderr": ..., "stdout_bytes": N, "stderr_bytes": N}

After a call marked ``last`` the worker exits; otherwise (per-session mode) it
kills every process the call left behind and waits for the next request.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

LIB_DIR = "/opt/agentrt/lib"
SITE_DIR = "/opt/agentrt/site"
MODS_DIR = "/opt/agentrt/mods"
CHANNEL_DIR = "/run/agentrt"
SOCKET_NAME = "s"
EXIT_OUTPUT = 3  # a stream passed output_limit; a record was sent if a call was running
EXIT_PROTOCOL = 4  # the host sent something the worker cannot read
_PIDS_EVENTS = ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")


def _pids_limit_hits() -> int:
    """How often this container's pids limit refused a fork (cgroup `pids.events`)."""
    for path in _PIDS_EVENTS:
        try:
            with open(path, encoding="ascii") as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "max":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


class _Capture:
    """One of the tool's output streams: fd 1 or 2 becomes a pipe drained by a thread.

    Only the first `cap` bytes are kept; passing `limit` calls `on_overflow`,
    which never returns, so a tool printing without end is stopped early.
    """

    def __init__(self, fd: int, cap: int, limit: int, on_overflow: Callable[[str], None]) -> None:
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)  # children the tool starts inherit the pipe too
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.name = "stdout" if fd == 1 else "stderr"
        self._fd = read_end
        self._cap = cap
        self._limit = limit
        self._on_overflow = on_overflow
        self._lock = threading.Lock()
        self._head = bytearray()
        self._total = 0
        threading.Thread(target=self._pump, name=f"capture-{self.name}", daemon=True).start()

    def _pump(self) -> None:
        while True:
            select.select([self._fd], [], [])
            with self._lock:
                if not self._read_available():
                    return

    def _read_available(self) -> bool:
        """Read what the pipe holds now; False at end of file. Caller holds the lock."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._total += len(data)
            room = self._cap - len(self._head)
            if room > 0:
                self._head += data[:room]
            if self._total > self._limit:
                self._on_overflow(self.name)

    def take(self) -> tuple[str, int]:
        """Everything written so far (head only) and the byte count; then start afresh."""
        with self._lock:
            self._read_available()
            text = self._head.decode("utf-8", "replace")
            total = self._total
            self._head = bytearray()
            self._total = 0
        return text, total


class _Worker:
    def __init__(self, sock: socket.socket, diag: int) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._diag = diag
        self._pid = os.getpid()
        self._send_lock = threading.Lock()
        self._call_id: str | None = None
        self._module: Any = None
        self._import_error: dict[str, Any] | None = None
        self._captures: tuple[_Capture, _Capture] | None = None
        self._result_limit = 8 * 1024 * 1024
        self._output_limit = 8 * 1024 * 1024

    def send(self, record: dict[str, Any]) -> None:
        with self._send_lock:
            self._sock.sendall(_encode(record))

    def finish_call(self, record: dict[str, Any]) -> bool:
        """Send the one result of the running call; False if one was already sent."""
        with self._send_lock:
            if self._call_id is None or record.get("id") != self._call_id:
                return False
            self._call_id = None
            self._sock.sendall(_encode(record))
            return True

    def receive(self) -> dict[str, Any] | None:
        line = self._reader.readline()
        if not line:
            return None
        try:
            record = json.loads(line)
        except ValueError:
            self._fail(f"unreadable record from the host: {line[:200]!r}")
        if not isinstance(record, dict):
            self._fail("a record from the host is not an object")
        return record

    def _fail(self, message: str) -> NoReturn:
        os.write(self._diag, f"agentrt worker: {message}\n".encode())
        os._exit(EXIT_PROTOCOL)

    def _overflow(self, stream: str) -> None:
        """A stream passed its limit: report it for the running call and stop."""
        if os.getpid() != self._pid:
            os._exit(EXIT_OUTPUT)  # a forked copy of the tool: only the worker reports
        call_id = self._call_id
        if call_id is not None:
            message = (
                f"the tool wrote more than {self._output_limit} bytes to {stream}; it was stopped"
            )
            error = {"type": "output", "message": message}
            with contextlib.suppress(OSError):
                self.finish_call(_record(call_id, "resource_exceeded", error=error))
        os._exit(EXIT_OUTPUT)

    def init(self, request: dict[str, Any]) -> None:
        cap = int(request.get("stream_cap", 65536))
        self._output_limit = limit = int(request.get("output_limit", self._output_limit))
        self._result_limit = int(request.get("result_limit", self._result_limit))
        sys.stdout.flush()
        sys.stderr.flush()
        self._captures = (
            _Capture(1, cap, limit, self._overflow),
            _Capture(2, cap, limit, self._overflow),
        )
        try:
            self._module = _import_tool_module(str(request["module"]), request.get("file"))
            _prepare_tools(self._module)
        except BaseException as exc:  # the module's own failure, reported at call time
            self._import_error = _error(exc)
        self.send({"t": "ready", "import_error": self._import_error})

    def call(self, request: dict[str, Any]) -> None:
        call_id = str(request.get("id", ""))
        self._call_id = call_id
        hits_before = _pids_limit_hits()
        record = self._run(
            call_id,
            str(request.get("tool", "")),
            request.get("arguments") or {},
            request.get("module"),
        )
        if os.getpid() != self._pid:
            os._exit(0)  # the tool forked and this copy returned: only the worker reports
        if record.get("status") == "tool_error" and _pids_limit_hits() > hits_before:
            error = record.get("error") or {}
            record = _record(
                call_id,
                "resource_exceeded",
                error={
                    "type": "pids",
                    "message": "the tool hit the sandbox's process limit "
                    f"({error.get('type', 'error')}: {error.get('message', '')})",
                    "details": error.get("details", []),
                },
            )
        self._attach_output(record)
        self.finish_call(record)

    def _run(
        self, call_id: str, name: str, arguments: Any, module_name: str | None
    ) -> dict[str, Any]:
        if self._import_error is not None:
            error = dict(self._import_error)
            error["message"] = f"the tool's module failed to import: {error['message']}"
            return _record(call_id, "sandbox_error", error=error)
        module = self._module
        if module_name and module_name != getattr(module, "__name__", None):
            try:  # a submodule of the pre-imported package (cached when __init__ imported it)
                import importlib

                module = importlib.import_module(module_name)
            except BaseException as exc:
                error = _error(exc)
                error["message"] = f"the tool's module failed to import: {error['message']}"
                return _record(call_id, "sandbox_error", error=error)
        found = _find_tool(module, name)
        if found is None:
            error = {"type": "tool_not_found", "message": f"no tool {name!r} in the module"}
            return _record(call_id, "sandbox_error", error=error)
        try:
            if found.is_async:
                import asyncio

                result = asyncio.run(found.invoke(arguments))
            else:
                result = found.invoke_sync(arguments)
            body = json.dumps(result, ensure_ascii=False, allow_nan=False)
        except BaseException as exc:  # the tool's failure is a value, SystemExit included
            if os.getpid() != self._pid:
                os._exit(0)
            resource = _resource_error(exc)
            if resource is not None:
                return _record(
                    call_id, "resource_exceeded", error={**_error(exc), "type": resource}
                )
            return _record(call_id, "tool_error", error=_error(exc))
        if len(body) > self._result_limit:
            message = f"the result is {len(body)} bytes; the limit is {self._result_limit}"
            return _record(
                call_id, "resource_exceeded", error={"type": "output", "message": message}
            )
        return _record(call_id, "ok", result=result)

    def _attach_output(self, record: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if self._captures is None:
            return
        for capture in self._captures:
            text, total = capture.take()
            record[capture.name] = text
            record[f"{capture.name}_bytes"] = total

    def serve(self) -> int:
        while True:
            request = self.receive()
            if request is None:
                return 0  # the host closed the channel: the session is over
            kind = request.get("t")
            if kind == "init":
                self.init(request)
            elif kind == "call":
                self.call(request)
                if request.get("last", True):
                    return 0
                _kill_leftovers()
            else:
                self._fail(f"unknown record type {kind!r}")


def _encode(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "replace") + b"\n"  # lone surrogates from a tool


def _resource_error(exc: BaseException) -> str | None:
    """Which sandbox limit an exception shows, if any.

    Python ignores SIGXFSZ, so the file-size limit arrives as EFBIG rather than
    as a signal; the memory limit normally arrives as an OOM kill instead.
    """
    for item in (exc, exc.__cause__, exc.__context__):
        if isinstance(item, MemoryError):
            return "oom"
        if isinstance(item, OSError) and item.errno == errno.EFBIG:
            return "fsize"
    return None


def _record(call_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"t": "result", "id": call_id, "status": status, **fields}


def _error(exc: BaseException) -> dict[str, Any]:
    """Describe an exception as the executor does in-process (traceback truncated)."""
    from runtime.calls import error_from_exception

    return error_from_exception(exc).to_dict()


def _import_tool_module(name: str, file: str | None) -> Any:
    import importlib
    import importlib.util

    if file is None:
        return importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _find_tool(module: Any, name: str) -> Any:
    from runtime.tools import Tool

    for value in vars(module).values():
        if isinstance(value, Tool) and value.name == name:
            return value
    return None


def _prepare_tools(module: Any) -> None:
    """Build now the argument models calls would otherwise build (tools with non-plain types)."""
    from runtime.tools import Tool

    for value in vars(module).values():
        if isinstance(value, Tool) and value.plain_arguments is None:
            value.model  # noqa: B018


def _kill_leftovers() -> None:
    """Per-session mode: end what the call left running before the next call starts.

    kill(-1) reaches every process this user may signal except the caller and
    the container's init, which is exactly the tool's leftovers.
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    # kill() returns before the targets are gone: wait (bounded) until no live
    # process but this one and init remains, so the next call never sees them.
    deadline = time.monotonic() + 2.0
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.001)


def _leftovers() -> bool:
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            return True
    return False


def main() -> int:
    """Connect to the host, import the runtime, then serve requests."""
    sys.dont_write_bytecode = True  # the runtime and tool modules are mounted read-only
    sys.path[:0] = [LIB_DIR, SITE_DIR]
    sys.path.append(MODS_DIR)  # last, so a tool module cannot shadow the runtime or stdlib
    diag = os.dup(2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(f"{CHANNEL_DIR}/{SOCKET_NAME}")
    worker = _Worker(sock, diag)
    try:
        # pay for pydantic and the Tool class now, not during a call; the host
        # built and checked every schema, so tools here are built without one
        import runtime.calls
        import runtime.tools

        runtime.tools.defer_schemas()
    except BaseException as exc:
        import traceback

        text = "".join(traceback.format_exception(exc))[-4000:]
        startup_error = {"type": type(exc).__name__, "message": str(exc), "details": [text]}
        worker.send({"t": "hello", "startup_error": startup_error})
        return 5
    worker.send({"t": "hello", "pid": os.getpid()})
    return worker.serve()


if __name__ == "__main__":
    os._exit(main())  # skip atexit hooks and non-daemon threads a tool may have left
