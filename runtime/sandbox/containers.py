"""One sandbox container: start it hardened, talk to its worker, remove it.

Every Docker SDK call is blocking, so `DockerAPI` runs them on its own thread
pool and the event loop only awaits futures. The worker is reached over a unix
socket in a per-container host directory bind-mounted at `/run/agentrt`: no
attach socket is ever held, which sidesteps the kill hang of moby/moby#41827
and costs ~0.1 ms a message instead of ~8 ms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from runtime.calls import ErrorInfo
from runtime.sandbox.hardening import SandboxConfig, container_spec
from runtime.sandbox.worker import SOCKET_NAME

log = logging.getLogger(__name__)
T = TypeVar("T")
BUILD_HINT = "build it with `agentrt sandbox build-image`"


class SandboxUnavailable(Exception):
    """No call can run: the daemon is down, the image is missing, the worker cannot start.

    Attributes:
        kind: Machine-readable reason (`docker_unavailable`, `image_missing`, ...).
        message: What went wrong and how to fix it.
    """

    def __init__(self, kind: str, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details

    def error_info(self) -> ErrorInfo:
        return ErrorInfo(type=self.kind, message=self.message, details=self.details)


class ChannelClosed(Exception):
    """The worker went away before sending the record the host waited for."""


class RecordTooLarge(Exception):
    """A record from the worker passed the host's size limit."""


class ProtocolError(Exception):
    """A record from the worker is not what the protocol allows."""


class DockerAPI:
    """The Docker SDK's low-level client behind a dedicated thread pool.

    Args:
        base_url: Daemon address (`unix:///var/run/docker.sock`); None reads
            DOCKER_HOST like the docker CLI.
        max_workers: Threads for concurrent Docker calls.
        timeout_s: Per-request HTTP timeout.
    """

    def __init__(
        self, base_url: str | None = None, *, max_workers: int = 8, timeout_s: int = 60
    ) -> None:
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="agentrt-docker"
        )
        self._client: Any = None
        self._closed = False
        self._creating: dict[str, concurrent.futures.Future[Any]] = {}

    @property
    def address(self) -> str:
        return self._base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking SDK call on the Docker threads."""
        if self._closed:
            raise SandboxUnavailable("closed", "the Docker connection is closed")
        future = self._threads.submit(functools.partial(fn, *args, **kwargs))
        return await asyncio.wrap_future(future)

    async def connect(self) -> Any:
        """Open the client (negotiating the API version) once; return it.

        Raises:
            SandboxUnavailable: The daemon cannot be reached.
        """
        if self._client is None:
            try:
                self._client = await self.call(self.open_blocking)
            except Exception as exc:
                raise self.unavailable(exc) from None
        return self._client

    def open_blocking(self) -> Any:
        """A new low-level client (blocking; negotiates the API version with the daemon)."""
        import docker

        if self._base_url:
            return docker.APIClient(
                base_url=self._base_url, version="auto", timeout=self._timeout_s
            )
        return docker.from_env(version="auto", timeout=self._timeout_s).api

    def unavailable(self, exc: BaseException) -> SandboxUnavailable:
        """Describe a failure to talk to the daemon, saying how to fix it."""
        return SandboxUnavailable(
            "docker_unavailable",
            f"cannot reach the Docker daemon at {self.address} ({type(exc).__name__}: {exc}); "
            f"start it (`dockerd &` as root, or `sudo systemctl start docker`) or point "
            f"DOCKER_HOST at a running engine",
        )

    def translate(self, exc: Exception, *, image: str | None = None) -> SandboxUnavailable:
        """Turn an SDK exception into a `SandboxUnavailable` that says what to do."""
        import docker.errors
        import requests

        if isinstance(exc, docker.errors.ImageNotFound) or (
            isinstance(exc, docker.errors.NotFound) and "image" in str(exc).lower()
        ):
            tag = f" --tag {image}" if image else ""
            return SandboxUnavailable(
                "image_missing",
                f"sandbox image {image!r} not found; build it with "
                f"`agentrt sandbox build-image{tag}`",
            )
        if isinstance(exc, docker.errors.APIError):
            explanation = exc.explanation or str(exc)
            return SandboxUnavailable("docker_error", f"Docker refused the sandbox: {explanation}")
        if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | OSError):
            return self.unavailable(exc)
        if isinstance(exc, docker.errors.DockerException):
            return self.unavailable(exc)
        return SandboxUnavailable("docker_error", f"{type(exc).__name__}: {exc}")

    async def create(self, spec: dict[str, Any], name: str) -> str:
        """Create a container; its name lets `remove` find it even if this is cancelled."""
        client = await self.connect()
        if self._closed:
            raise SandboxUnavailable("closed", "the Docker connection is closed")
        future = self._threads.submit(functools.partial(client.create_container, name=name, **spec))
        self._creating[name] = future
        future.add_done_callback(lambda _: self._creating.pop(name, None))
        try:
            created = await asyncio.wrap_future(future)
        except Exception as exc:
            raise self.translate(exc, image=spec.get("image")) from None
        return str(created["Id"])

    async def start(self, ref: str, *, image: str | None = None) -> None:
        client = await self.connect()
        try:
            await self.call(client.start, ref)
        except Exception as exc:
            raise self.translate(exc, image=image) from None

    async def kill(self, ref: str) -> None:
        """SIGKILL the container; already stopped or gone is fine."""
        import docker.errors

        client = await self.connect()
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            await self.call(client.kill, ref)

    async def remove(self, ref: str) -> None:
        """Force-remove a container by id or name, after any create of that name finished."""
        import docker.errors

        pending = self._creating.get(ref)
        if pending is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wrap_future(pending)
        client = await self.connect()
        try:
            await self.call(client.remove_container, ref, force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal already in progress
                return
            raise

    async def state(self, ref: str) -> dict[str, Any] | None:
        """The container's `State` (Running, ExitCode, OOMKilled...), None if it is gone."""
        import docker.errors

        client = await self.connect()
        try:
            info = await self.call(client.inspect_container, ref)
        except docker.errors.NotFound:
            return None
        state: dict[str, Any] = info.get("State") or {}
        return state

    async def wait_exit(self, ref: str, timeout_s: float) -> dict[str, Any] | None:
        """Wait until the container stops (bounded), then return its `State`."""
        client = await self.connect()
        with contextlib.suppress(Exception):
            await self.call(client.wait, ref, timeout=timeout_s)
        return await self.state(ref)

    async def logs_tail(self, ref: str, lines: int = 20) -> str:
        client = await self.connect()
        try:
            data = await self.call(client.logs, ref, tail=lines)
        except Exception:
            return ""
        return bytes(data).decode("utf-8", "replace").strip()

    async def list(self, labels: list[str], *, all: bool = True) -> list[dict[str, Any]]:
        client = await self.connect()
        found: list[dict[str, Any]] = await self.call(
            client.containers, all=all, filters={"label": labels}
        )
        return found

    def close(self) -> None:
        self._closed = True
        self._threads.shutdown(wait=False, cancel_futures=False)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()


def channel_root() -> Path:
    """This user's private directory for worker sockets (mode 0700)."""
    root = Path(tempfile.gettempdir()) / f"agentrt-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        # someone else squats the name: use a fresh private directory instead
        return Path(tempfile.mkdtemp(prefix="agentrt-"))
    if info.st_mode & 0o077:
        root.chmod(0o700)
    return root


class Channel:
    """The host end of one worker's unix socket: a directory, a listener, one connection.

    The directory's parent is private to this user; the directory itself is
    0711 and the socket 0666 so the container's unprivileged user can connect.
    Only the first connection is served, so a tool cannot open a second one.
    """

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self._limit = limit
        self._connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        self._connected = asyncio.get_running_loop().create_future()
        self._server: asyncio.base_events.Server | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, root: Path, *, limit: int, prefix: str = "c") -> Channel:
        directory = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        os.chmod(directory, 0o711)  # a local inode change, not I/O worth a thread
        channel = cls(directory, limit)
        path = directory / SOCKET_NAME
        channel._server = await asyncio.start_unix_server(channel._accept, path=path, limit=limit)
        os.chmod(path, 0o666)
        return channel

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connected.done():
            writer.close()  # a second connection can only come from the tool
            return
        self._connected.set_result((reader, writer))
        if self._server is not None:
            self._server.close()

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once the worker connected; False if `timeout_s` passed first."""
        if not self._connected.done():
            await asyncio.wait([self._connected], timeout=timeout_s)
        if not self._connected.done():
            return False
        self._reader, self._writer = self._connected.result()
        return True

    @property
    def alive(self) -> bool:
        """False once the worker closed its end (it exited) or the host closed ours."""
        if self._reader is None or self._writer is None:
            return False
        return not (self._reader.at_eof() or self._writer.is_closing())

    async def send(self, record: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ChannelClosed("the channel is not open")
        data = json.dumps(record, ensure_ascii=False, allow_nan=False).encode() + b"\n"
        self._writer.write(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None

    async def receive(self) -> dict[str, Any]:
        """Read one record.

        Raises:
            ChannelClosed: The worker closed the socket first.
            RecordTooLarge: The record passed the size limit.
            ProtocolError: The record is not a JSON object.
        """
        if self._reader is None:
            raise ChannelClosed("the worker never connected")
        try:
            line = await self._reader.readline()
        except (asyncio.LimitOverrunError, ValueError):
            raise RecordTooLarge(f"a record passed {self._limit} bytes") from None
        except (ConnectionError, OSError) as exc:
            raise ChannelClosed(str(exc)) from None
        if not line.endswith(b"\n"):
            raise ChannelClosed("the worker closed its channel")
        try:
            record = json.loads(line)
        except ValueError:
            raise ProtocolError(f"unreadable record: {line[:200]!r}") from None
        if not isinstance(record, dict):
            raise ProtocolError("a record is not a JSON object")
        return record

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._writer is not None:
            self._writer.close()
        elif self._connected.done() and not self._connected.cancelled():
            self._connected.result()[1].close()
        else:
            self._connected.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)


class ContainerEngine(Protocol):
    """What runs containers: `DockerAPI`, or `CrunAPI` (the OCI runtime without the daemons)."""

    @property
    def address(self) -> str: ...

    async def create(self, spec: dict[str, Any], name: str) -> str: ...

    async def start(self, ref: str, *, image: str | None = None) -> None: ...

    async def kill(self, ref: str) -> None: ...

    async def remove(self, ref: str) -> None: ...

    async def state(self, ref: str) -> dict[str, Any] | None: ...

    async def wait_exit(self, ref: str, timeout_s: float) -> dict[str, Any] | None: ...

    async def logs_tail(self, ref: str, lines: int = 20) -> str: ...

    async def list(self, labels: list[str], *, all: bool = True) -> list[dict[str, Any]]: ...

    def translate(self, exc: Exception, *, image: str | None = None) -> SandboxUnavailable: ...

    def close(self) -> None: ...


@dataclasses.dataclass(eq=False)
class SandboxContainer:
    """A started container whose worker has imported the tool's module and waits."""

    id: str
    name: str
    config: SandboxConfig
    channel: Channel
    engine: ContainerEngine
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    calls: int = 0

    @property
    def alive(self) -> bool:
        return self.channel.alive


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Output caps sent to the worker at start-up."""

    stream_cap: int = 64 * 1024
    output_limit: int = 8 * 1024 * 1024
    result_limit: int = 8 * 1024 * 1024

    @property
    def record_limit(self) -> int:
        # a record carries the result plus two capped streams, each up to 6x when escaped
        return self.result_limit + 12 * self.stream_cap + 64 * 1024


async def start_container(
    api: ContainerEngine,
    config: SandboxConfig,
    *,
    name: str,
    labels: dict[str, str],
    root: Path,
    settings: WorkerSettings,
    startup_timeout_s: float,
    disposer: Disposer,
    channel_prefix: str = "c",
) -> SandboxContainer:
    """Create and start one hardened container and wait until its worker is ready.

    On any failure, cancellation included, the container is removed (by name,
    after a create still in flight finishes) before the exception propagates.

    Raises:
        SandboxUnavailable: Docker refused, the image is missing, or the worker
            could not start.
    """
    channel = await Channel.open(root, limit=settings.record_limit, prefix=channel_prefix)
    try:
        spec = container_spec(config, channel_dir=str(channel.directory), labels=labels)
        container_id = await api.create(spec, name)
        await api.start(container_id, image=config.image)
        await _handshake(api, channel, container_id, config, settings, startup_timeout_s)
    except BaseException:
        channel.close()
        disposer.remove(name, api)
        raise
    return SandboxContainer(id=container_id, name=name, config=config, channel=channel, engine=api)


async def _remove_quietly(api: ContainerEngine, ref: str) -> None:
    try:
        await api.remove(ref)
    except Exception as exc:
        log.warning("could not remove sandbox container %s: %s", ref, exc)


async def _handshake(
    api: ContainerEngine,
    channel: Channel,
    container_id: str,
    config: SandboxConfig,
    settings: WorkerSettings,
    timeout_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # poll the container between waits so a worker that dies at once fails fast
    while not await channel.wait_connected(min(1.0, max(deadline - loop.time(), 0.01))):
        state = await api.state(container_id)
        if not state or not state.get("Running"):
            raise await _start_failure(api, container_id, state)
        if loop.time() >= deadline:
            raise SandboxUnavailable(
                "start_timeout", f"the sandbox worker did not connect within {timeout_s:g} s"
            )
    try:
        async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
            hello = await channel.receive()
            if "startup_error" in hello:
                error = hello.get("startup_error") or {}
                raise SandboxUnavailable(
                    "worker_start",
                    f"the sandbox worker cannot import the runtime in image {config.image!r} "
                    f"({error.get('type')}: {error.get('message')}); rebuild the image: "
                    f"{BUILD_HINT}",
                    tuple(str(line) for line in error.get("details") or ()),
                )
            await channel.send(
                {
                    "t": "init",
                    "module": config.module.name,
                    "file": config.module.file,
                    "stream_cap": settings.stream_cap,
                    "output_limit": settings.output_limit,
                    "result_limit": settings.result_limit,
                }
            )
            ready = await channel.receive()
    except TimeoutError:
        raise SandboxUnavailable(
            "start_timeout", f"the sandbox worker was not ready within {timeout_s:g} s"
        ) from None
    except (ChannelClosed, RecordTooLarge, ProtocolError):
        raise await _start_failure(api, container_id, None) from None
    if ready.get("t") != "ready":
        raise SandboxUnavailable("worker_start", f"unexpected start-up record {ready.get('t')!r}")


async def _start_failure(
    api: ContainerEngine, container_id: str, state: dict[str, Any] | None
) -> SandboxUnavailable:
    state = state or await api.wait_exit(container_id, 5.0) or {}
    logs = await api.logs_tail(container_id)
    return SandboxUnavailable(
        "worker_start",
        f"the sandbox worker exited during start-up (exit code {state.get('ExitCode')}"
        f"{', out of memory' if state.get('OOMKilled') else ''}): "
        f"{logs.splitlines()[-1] if logs else 'no output'}; check the image ({BUILD_HINT})",
        (logs,) if logs else (),
    )


class Disposer:
    """Removes containers in the background; `wait()` returns once all are gone.

    Callers hand a container over in a `finally` and return at once: removal
    (~30-100 ms) stays off the call's latency, yet every removal is owned and
    awaited at shutdown.
    """

    def __init__(self, api: ContainerEngine) -> None:
        self._api = api
        self._tasks: set[asyncio.Task[None]] = set()

    def dispose(self, box: SandboxContainer) -> None:
        box.channel.close()
        self.remove(box.id, box.engine)

    def remove(self, ref: str, engine: ContainerEngine | None = None) -> None:
        """Remove `ref` in the background through `engine` (default: the Docker one)."""
        api = engine or self._api
        task = asyncio.get_running_loop().create_task(_remove_quietly(api, ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
