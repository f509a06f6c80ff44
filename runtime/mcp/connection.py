"""One MCP server for one session: started lazily, reused, restarted, timed out, removed.

`McpConnection` owns a server's transport and SDK `ClientSession` in a task
of its own (the SDK's context managers must be entered and left in one
task). The first request starts the server; later ones reuse it. Each start
lists the server's tools once, and a call that names the definition it was
pinned with is sent only when the server, as started, still publishes
exactly that definition. A server
found dead before a call (its connection closed: it crashed, or was killed)
is started again, after a back-off that doubles with each consecutive
failure. A call that outlives its timeout, or a server that does not finish
`initialize` in time, ends with a clear error and the server is stopped:
an unresponsive server may be stuck for good, and its container is removed
rather than left to hold resources. Closing removes the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TextIO

import mcp_types as types
from mcp import ClientSession, MCPError

from runtime.mcp.config import HttpServer, StdioServer
from runtime.mcp.launch import container_name, docker_run_args
from runtime.mcp.pins import Definition, check_pins
from runtime.sandbox.hardening import BindMount

__all__ = ["Backoff", "McpConnection", "McpServerError"]

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 5.0
STDERR_TAIL = 2000


class McpServerError(Exception):
    """A server could not be started or answered no result.

    Attributes:
        kind: `start_failed`, `start_timeout`, `crashed`, `call_timeout`, `protocol`,
            or `pin_mismatch` (the server no longer publishes the pinned definition).
        message: One sentence saying what happened and what happens next.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclasses.dataclass
class Backoff:
    """Delay before restarting a server: `first_s`, doubled per consecutive failure, capped."""

    first_s: float = 0.5
    max_s: float = 10.0

    def delay(self, failures: int) -> float:
        return 0.0 if failures <= 0 else min(self.first_s * 2 ** (failures - 1), self.max_s)


Streams = tuple[Any, Any]
TransportFactory = Callable[[], AbstractAsyncContextManager[Streams]]
Listed = Callable[[Mapping[str, Definition]], None]


class McpConnection:
    """A lazily started, reused, restartable connection to one MCP server.

    Args:
        server_id: The id in the MCP servers file.
        config: Its configuration.
        mounts: Checked bind mounts for a stdio server.
        network: Start a stdio server with network access (asked and granted).
        backoff: Restart delays after failures.
        on_listed: Told what the server publishes each time it starts.
    """

    def __init__(
        self,
        server_id: str,
        config: StdioServer | HttpServer,
        *,
        mounts: tuple[BindMount, ...] = (),
        network: bool = False,
        backoff: Backoff | None = None,
        on_listed: Listed | None = None,
    ) -> None:
        self.server_id = server_id
        self.config = config
        self.mounts = mounts
        self.network = network
        self.backoff = backoff or Backoff()
        self.on_listed = on_listed
        self.starts = 0
        self.failures = 0
        self.container: str | None = None
        self.container_id: str | None = None
        self._session: ClientSession | None = None
        self._live: dict[str, Definition] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._last_failure = 0.0
        self._in_flight = 0
        self._stderr: TextIO | None = None

    @property
    def mode(self) -> str:
        """The sandbox mode recorded in the audit log."""
        return "mcp-docker" if isinstance(self.config, StdioServer) else "mcp-http"

    @property
    def running(self) -> bool:
        return self._session is not None

    # -- the requests ---------------------------------------------------------

    async def list_definitions(self) -> dict[str, Definition]:
        """Each published tool's definition (name, description, input schema), by name.

        Listed once per start of the server (starting it if needed).
        """
        _, live = await self._ready()
        return dict(live)

    async def call(
        self, name: str, arguments: dict[str, Any], *, pinned: Definition | None = None
    ) -> types.CallToolResult:
        """Forward one `tools/call`.

        Args:
            name: The tool's name on the server.
            arguments: Its arguments, already checked by the gate.
            pinned: The definition the call was gated with: the call is sent
                only if the server, as started, publishes exactly this.

        Raises:
            McpServerError: The server could not be started, publishes another
                definition than `pinned` (`pin_mismatch`; nothing was sent), died
                during the call (`crashed`) or did not answer in time
                (`call_timeout`); it was stopped and starts again on the next call.
        """
        session, live = await self._ready()
        if pinned is not None and (live.get(name) is None or live[name].sha256 != pinned.sha256):
            check = check_pins(
                self.server_id, {n: live[n] for n in (name,) if n in live}, {name: pinned}
            )
            raise McpServerError("pin_mismatch", check[0].reason)
        timeout = self.config.call_timeout_s
        self._in_flight += 1
        try:
            async with asyncio.timeout(timeout + 1.0):
                result = await session.call_tool(name, arguments, read_timeout_seconds=timeout)
        except (TimeoutError, MCPError) as exc:
            code = exc.code if isinstance(exc, MCPError) else types.REQUEST_TIMEOUT
            timed_out = code == types.REQUEST_TIMEOUT
            if isinstance(exc, MCPError) and not timed_out and code != types.CONNECTION_CLOSED:
                raise McpServerError(
                    "protocol", f"MCP server {self.server_id!r} refused the call: {exc.message}"
                ) from None
            tail = self._stderr_tail()
            await self._failed_if_current(session, kill=True)
            if timed_out:
                raise McpServerError(
                    "call_timeout",
                    f"MCP server {self.server_id!r} did not answer {name!r} within {timeout:g} s; "
                    f"the server was stopped and starts again on the next call",
                ) from None
            raise McpServerError(
                "crashed",
                f"MCP server {self.server_id!r} exited during the call to {name!r}"
                f"{f' (its stderr: {tail})' if tail else ''}; it starts again on the next call",
            ) from None
        finally:
            self._in_flight -= 1
        self.failures = 0
        return result

    # -- life cycle -------------------------------------------------------------

    async def _ready(self) -> tuple[ClientSession, dict[str, Definition]]:
        """The live session and what it published, started (or restarted) when needed."""
        async with self._lock:
            if self._session is not None and self._in_flight == 0 and not await self._alive():
                log.warning("MCP server %s is gone; restarting it", self.server_id)
                self.failures += 1
                self._last_failure = time.monotonic()
                await self._teardown(kill=True)
            if self._session is None:
                wait = self._last_failure + self.backoff.delay(self.failures) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._start()
            assert self._session is not None
            return self._session, self._live

    async def _alive(self) -> bool:
        assert self._session is not None
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self._session.send_ping()
        except (TimeoutError, MCPError):
            return False
        return True

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[ClientSession] = loop.create_future()
        self._stop = asyncio.Event()
        self.starts += 1
        # the server's stderr, kept for error messages; closed in `_teardown`
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        if isinstance(self.config, StdioServer):
            self.container = container_name(self.server_id)
        self._task = asyncio.create_task(
            self._hold(ready, self._stop), name=f"mcp-{self.server_id}"
        )
        timeout = self.config.start_timeout_s
        try:
            async with asyncio.timeout(timeout):
                self._session = await asyncio.shield(ready)
        except TimeoutError:
            ready.cancel()  # what the abandoned start reports later is not wanted
            await self._failed(kill=True)
            raise McpServerError(
                "start_timeout",
                f"MCP server {self.server_id!r} did not finish starting within {timeout:g} s; "
                f"it was stopped",
            ) from None
        except Exception as exc:
            tail = self._stderr_tail()
            await self._failed(kill=True)
            raise McpServerError(
                "start_failed",
                f"MCP server {self.server_id!r} could not be started: {exc}"
                f"{f' (its stderr: {tail})' if tail else ''}",
            ) from None
        if self.container is not None:
            self.container_id = await _container_id(self.container)
        try:
            async with asyncio.timeout(self.config.call_timeout_s):
                self._live = await _list_tools(self._session)
        except Exception as exc:  # a server that cannot list its tools is not usable
            await self._failed(kill=True)
            raise McpServerError(
                "protocol", f"MCP server {self.server_id!r} did not list its tools: {exc}"
            ) from None
        if self.on_listed is not None:
            self.on_listed(self._live)

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        """Enter the transport and session, hand the session out, and hold it until `stop`."""
        try:
            async with self._transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(
                    exc if isinstance(exc, Exception) else RuntimeError("start cancelled")
                )
            if not isinstance(exc, Exception):
                raise
            log.debug("MCP server %s connection ended: %s", self.server_id, exc)

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[Streams]:
        if isinstance(self.config, HttpServer):
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            client = create_mcp_http_client(headers=self.config.headers())
            async with client, streamable_http_client(self.config.url, http_client=client) as s:
                yield s[0], s[1]
            return
        from mcp import StdioServerParameters, stdio_client

        docker = shutil.which("docker")
        if docker is None:
            raise McpServerError(
                "start_failed", "the docker CLI is needed to run stdio MCP servers; install it"
            )
        assert self.container is not None and self._stderr is not None
        params = StdioServerParameters(
            command=docker,
            args=docker_run_args(
                self.server_id,
                self.config,
                name=self.container,
                network=self.network,
                mounts=self.mounts,
            ),
            env={key: value for key in ("DOCKER_HOST",) if (value := os.environ.get(key))},
        )
        async with stdio_client(params, errlog=self._stderr) as streams:
            yield streams[0], streams[1]

    async def _failed_if_current(self, session: ClientSession, *, kill: bool) -> None:
        """Count a failure and stop the server, unless another call restarted it meanwhile."""
        async with self._lock:
            if self._session is session:
                await self._failed(kill=kill)

    async def _failed(self, *, kill: bool = False) -> None:
        self.failures += 1
        self._last_failure = time.monotonic()
        await self._teardown(kill=kill)

    async def _teardown(self, *, kill: bool) -> None:
        """Stop the server: remove its container first when it may not stop by itself."""
        container, task, stop = self.container, self._task, self._stop
        self._session, self._task, self._stop = None, None, None
        self._live = {}
        if kill and container is not None:
            await _remove_container(container)
        if stop is not None:
            stop.set()
        if task is not None:
            try:
                async with asyncio.timeout(15):
                    await task
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            except Exception as exc:
                log.debug("MCP server %s stopped with %s", self.server_id, exc)
        if container is not None:
            await _remove_container(container)
        self.container = self.container_id = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            self._stderr.seek(0)
            text = self._stderr.read()
        except (OSError, ValueError):
            return ""
        return " ".join(text.split())[-STDERR_TAIL:]

    async def aclose(self) -> None:
        """Stop the server and remove its container."""
        async with self._lock:
            await self._teardown(kill=False)


async def _list_tools(session: ClientSession) -> dict[str, Definition]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return {
                tool.name: Definition(tool.name, tool.description or "", dict(tool.input_schema))
                for tool in tools
            }


async def _docker(*args: str) -> tuple[int, str]:
    docker = shutil.which("docker") or "docker"
    process = await asyncio.create_subprocess_exec(
        docker,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace").strip()


async def _remove_container(name: str) -> None:
    code, _ = await _docker("rm", "-f", name)
    if code != 0:
        log.debug("docker rm -f %s exited %d", name, code)


async def _container_id(name: str) -> str | None:
    code, out = await _docker("inspect", "--format", "{{.Id}}", name)
    return out if code == 0 and out else None
