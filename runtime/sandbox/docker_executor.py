"""`DockerExecutor`: every approved call runs in a hardened, use-once container.

The executor takes a warm container (its worker already waiting, the tool's
module already imported) from the pool for the tool's sandbox config, sends
the call over the container's private unix socket, enforces the tool's
wall-clock timeout from the host, and hands the container to a background
disposer the moment the result is in. Pools refill in the background.

Modes:
    per_call (default): one container per call, never reused.
    per_session: one container per (tenant, run_id, sandbox config), reused
        for that run's calls (one at a time) and removed at `end_run(run_id)`.
        Between calls the worker kills every process the call left behind;
        module-level state of the tool persists within the run. Calls without
        a run_id run per call.

Network is off unless the tool asks for it (`@tool(sandbox={"network": True})`)
and the `network_allowed(tool, context)` hook returns True. The default hook
grants it only when the policy decision for this very call granted `network`
(an allow rule with `grants: [network]`); without a policy, nothing gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult
from runtime.sandbox.containers import (
    ChannelClosed,
    Disposer,
    DockerAPI,
    ProtocolError,
    RecordTooLarge,
    SandboxContainer,
    SandboxUnavailable,
    WorkerSettings,
    channel_root,
    start_container,
)
from runtime.sandbox.executor import HostExecutor
from runtime.sandbox.hardening import (
    LABEL_EXECUTOR,
    NetworkHook,
    SandboxConfig,
    SandboxConfigError,
    SandboxLimits,
    container_labels,
    default_image,
    granted_by_policy,
    resolve_config,
    user_mount,
)
from runtime.sandbox.hardening import deny_network as deny_network  # re-export
from runtime.sandbox.oci import CrunAPI, unsupported_reason
from runtime.sandbox.pool import PoolSet, WarmPool
from runtime.sandbox.reaper import channel_prefix, owner_id, reap, reap_channel_dirs
from runtime.sandbox.worker import EXIT_OUTPUT
from runtime.tools import Mount, Tool

Mode = Literal["per_call", "per_session"]
Engine = Literal["docker", "crun", "auto"]
_MAX_TEXT = 4000
ENGINE_ENV = "AGENTRT_SANDBOX_ENGINE"
_reaped: set[str] = set()  # daemon addresses this process already reaped at start-up


# `Tool.runs_on_host` built-ins (e.g. search_docs) skip the sandbox by design.
_HOST = HostExecutor()


@dataclasses.dataclass(eq=False)
class _Session:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    box: SandboxContainer | None = None
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    closed: bool = False


class DockerExecutor:
    """Runs approved calls in hardened Docker containers taken from warm pools.

    Construct it, optionally `await prewarm(tools)`, use `execute`, call
    `end_run(run_id)` when an agent run ends, and `await aclose()` (or use
    `async with`) at shutdown, which removes every container it started.

    Args:
        image: Sandbox image; defaults to $AGENTRT_SANDBOX_IMAGE or
            `agentrt-sandbox:latest` (build it with `agentrt sandbox build-image`).
        mode: `per_call` (a fresh container per call) or `per_session`.
        pool_size: Warm containers kept per sandbox config; 0 disables the pool
            (every call starts its own container: the cold path).
        limits: Default limits; a tool's `sandbox=` overrides memory, cpus,
            pids_limit and tmpfs_size.
        network_allowed: Hook deciding whether a tool that asks for network
            gets it for this call; default: only when the policy granted it.
        docker_host: Daemon address; None reads DOCKER_HOST.
        max_pools: Distinct sandbox configs kept warm (least recently used
            beyond this are drained).
        start_concurrency: Containers started at once (each costs ~0.4 s of CPU).
        startup_timeout_s: Longest wait for a new container's worker.
        sandbox_wait_s: Longest a call waits for its container (a warm one,
            one started for it, or its run's session container busy with
            another call). Past it the call ends `sandbox_error`
            (`sandbox_wait`, "no sandbox within N s") without running: it is
            never reported as the tool's `timeout`.
        worker: Caps on the tool's output and result size.
        reap_on_start: Remove containers orphaned by dead processes on first use.
        session_idle_s: Per-session containers idle this long are removed when
            a new session starts (a backstop for runs never ended).
        engine: What starts containers without network: `docker` (dockerd),
            `crun` (the OCI runtime directly, with the same hardening: ~8x less
            CPU per container; needs root, crun and cgroup v1) or `auto` (crun
            where the host supports it, else docker). Containers granted
            network always start through Docker. Default: $AGENTRT_SANDBOX_ENGINE
            or `docker`.
    """

    name = "docker"

    def __init__(
        self,
        *,
        image: str | None = None,
        mode: Mode = "per_call",
        pool_size: int = 2,
        limits: SandboxLimits | None = None,
        network_allowed: NetworkHook | None = None,
        docker_host: str | None = None,
        max_pools: int = 8,
        start_concurrency: int = 2,
        startup_timeout_s: float = 60.0,
        sandbox_wait_s: float = 30.0,
        worker: WorkerSettings | None = None,
        reap_on_start: bool = True,
        session_idle_s: float = 900.0,
        mounts: Iterable[Mount] = (),
        engine: Engine | None = None,
    ) -> None:
        if mode not in ("per_call", "per_session"):
            raise ValueError(f"mode must be 'per_call' or 'per_session', not {mode!r}")
        if pool_size < 0:
            raise ValueError("pool_size must be >= 0")
        if not sandbox_wait_s > 0:
            raise ValueError("sandbox_wait_s must be a positive number of seconds")
        self.sandbox_wait_s = sandbox_wait_s
        self.image = image or default_image()
        self.mode: Mode = mode
        self.limits = limits or SandboxLimits()
        self.id = uuid.uuid4().hex
        self._network_allowed = network_allowed or granted_by_policy
        self._settings = worker or WorkerSettings()
        self._startup_timeout_s = startup_timeout_s
        self._reap_on_start = reap_on_start
        self._session_idle_s = session_idle_s
        self._api = DockerAPI(docker_host, max_workers=max(8, 2 * start_concurrency + 4))
        chosen = engine or os.environ.get(ENGINE_ENV) or "docker"
        if chosen == "auto":
            chosen = "crun" if unsupported_reason() is None else "docker"
        if chosen not in ("docker", "crun"):
            raise ValueError(f"engine must be 'docker', 'crun' or 'auto', not {chosen!r}")
        self.engine: Engine = "crun" if chosen == "crun" else "docker"
        self._crun = CrunAPI(self._api) if self.engine == "crun" else None
        self._disposer = Disposer(self._api)
        self._start_slots = asyncio.Semaphore(max(start_concurrency, 1))
        self._pools = PoolSet(
            size=pool_size,
            max_pools=max_pools,
            starter=self._start_container,
            disposer=self._disposer,
        )
        self._sessions: dict[tuple[str | None, str, str], _Session] = {}
        self._configs: dict[tuple[Tool, bool], SandboxConfig] = {}
        self._mounts = tuple(user_mount(m.source, m.target, m.read_only) for m in mounts)
        self._background: set[asyncio.Task[Any]] = set()
        self._names = itertools.count(1)
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._root: Any = None

    async def __aenter__(self) -> DockerExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect to the daemon and reap orphans (in the background). Idempotent.

        Raises:
            SandboxUnavailable: The daemon cannot be reached.
        """
        if self._started:
            return
        async with self._start_lock:
            if self._closed:
                raise SandboxUnavailable("closed", "the Docker executor is closed")
            if self._started:
                return
            await self._api.connect()
            if self._crun is not None:
                await self._crun.connect()
            self._root = channel_root()
            if self._reap_on_start and self._api.address not in _reaped:
                _reaped.add(self._api.address)
                self._spawn(reap(self._api))
                reap_channel_dirs(self._root)
            if self._crun is not None and self._reap_on_start and self._crun.address not in _reaped:
                _reaped.add(self._crun.address)
                self._spawn(reap(self._crun))
            self._started = True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def prewarm(
        self, tools: Iterable[Tool], context: CallContext | None = None, *, wait: bool = False
    ) -> None:
        """Fill the warm pools these tools will use, so their first calls are warm too.

        Args:
            tools: Tools about to be called (one pool per distinct sandbox config).
            context: The context the network hook sees; defaults to an empty one.
            wait: Return only once every pool is full.

        Raises:
            SandboxUnavailable: With `wait`, when containers cannot be started.
            SandboxConfigError: A tool's sandbox settings are invalid.
        """
        await self.start()
        pools = {}
        for item in tools:
            if item.runs_on_host:
                continue
            config = self._config_for(item, context or CallContext())
            pools[config.key] = self._pools.get(config)
        for pool in pools.values():
            pool.fill()
        if wait:
            await asyncio.gather(*(pool.wait_ready() for pool in pools.values()))

    async def wait_ready(self, tool: Tool, context: CallContext | None = None) -> None:
        """Wait until the pool serving `tool` is full (benchmarks, tests)."""
        await self.prewarm([tool], context, wait=True)

    async def settle(self) -> None:
        """Wait until every container handed back so far has been removed."""
        await self._disposer.wait()

    def stats(self) -> dict[str, Any]:
        """Pools, sessions and pending removals, for diagnostics."""
        return {
            "mode": self.mode,
            "engine": self.engine,
            "image": self.image,
            "pools": self._pools.stats(),
            "sessions": len(self._sessions),
            "disposing": self._disposer.pending,
        }

    def _config_for(self, tool: Tool, context: CallContext) -> SandboxConfig:
        try:
            network = bool(tool.sandbox.network and self._network_allowed(tool, context))
        except Exception as exc:  # a failing policy hook must not grant, nor crash the run
            raise SandboxConfigError(
                f"the network_allowed hook failed for tool {tool.name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        cached = self._configs.get((tool, network))
        if cached is None:
            cached = resolve_config(
                tool,
                defaults=self.limits,
                image=self.image,
                network=network,
                extra_mounts=self._mounts,
            )
            self._configs[(tool, network)] = cached
        return cached

    async def _start_container(self, config: SandboxConfig) -> SandboxContainer:
        async with self._start_slots:
            name = f"agentrt-{self.id[:10]}-{next(self._names)}"
            labels = container_labels(config, owner=owner_id(), executor_id=self.id)
            engine = self._crun if self._crun is not None and not config.network else self._api
            return await start_container(
                engine,
                config,
                name=name,
                labels=labels,
                root=self._root,
                settings=self._settings,
                startup_timeout_s=self._startup_timeout_s,
                disposer=self._disposer,
                channel_prefix=channel_prefix(),
            )

    async def execute(
        self, tool: Tool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        """Run one call in a sandbox and report how it ended; never raises for a tool failure."""
        if tool.runs_on_host:
            return await _HOST.execute(tool, arguments, context)
        started = time.perf_counter()
        session = self.mode == "per_session" and context.run_id is not None
        facts: dict[str, Any] = {
            "container_id": None,
            "mode": "per_session" if session else ("per_call" if self._pools.size else "cold"),
            "exit_code": None,
            "image": tool.sandbox.image or self.image,
        }
        try:
            await self.start()
            config = self._config_for(tool, context)
        except SandboxConfigError as exc:
            return _failed(ErrorInfo("sandbox_config", str(exc)), facts, started)
        except SandboxUnavailable as exc:
            return _failed(exc.error_info(), facts, started)
        if session:
            return await self._execute_in_session(tool, arguments, context, config, facts, started)
        pool = self._pools.get(config)
        try:
            async with self._waiting_for_sandbox(pool):
                box, warm = await pool.acquire()
        except SandboxUnavailable as exc:
            return _failed(exc.error_info(), facts, started)
        try:
            result, _ = await self._call(box, tool, arguments, last=True, facts=facts, warm=warm)
        finally:
            self._disposer.dispose(box)  # removal runs in the background, owned by aclose()
        return _timed(result, started)

    async def _execute_in_session(
        self,
        tool: Tool,
        arguments: Mapping[str, Any],
        context: CallContext,
        config: SandboxConfig,
        facts: dict[str, Any],
        started: float,
    ) -> ExecutionResult:
        assert context.run_id is not None
        key = (context.tenant, context.run_id, config.key)
        session = self._sessions.get(key)
        if session is None:
            self._expire_idle_sessions()
            session = self._sessions[key] = _Session()
        pool = self._pools.get(config)
        try:
            async with self._waiting_for_sandbox(pool, busy_session=True):
                await session.lock.acquire()
        except SandboxUnavailable as exc:
            return _failed(exc.error_info(), facts, started)
        try:
            warm = True
            if session.box is not None and not session.box.alive:
                self._disposer.dispose(session.box)
                session.box = None
            if session.box is None:
                try:
                    remaining = self.sandbox_wait_s - (time.perf_counter() - started)
                    async with self._waiting_for_sandbox(pool, budget=remaining):
                        session.box, warm = await pool.acquire()
                except SandboxUnavailable as exc:
                    return _failed(exc.error_info(), facts, started)
            box = session.box
            reusable = False
            try:
                result, reusable = await self._call(
                    box, tool, arguments, last=False, facts=facts, warm=warm
                )
            finally:
                session.last_used = time.monotonic()
                if not reusable or session.closed or self._closed:
                    session.box = None
                    self._disposer.dispose(box)
        finally:
            session.lock.release()
        return _timed(result, started)

    @contextlib.asynccontextmanager
    async def _waiting_for_sandbox(
        self, pool: WarmPool, *, busy_session: bool = False, budget: float | None = None
    ) -> AsyncIterator[None]:
        """Bound a call's wait for its container by `sandbox_wait_s`.

        Raises:
            SandboxUnavailable: `sandbox_wait`: the wait ran out; nothing ran.
        """
        limit = self.sandbox_wait_s if budget is None else max(budget, 0.0)
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            if busy_session:
                why = "this run's session container was busy with another call"
            else:
                stats = pool.stats()
                why = (
                    f"{stats['waiting']} call(s) waiting, {stats['starting']} container(s) starting"
                )
            raise SandboxUnavailable(
                "sandbox_wait",
                f"no sandbox within {self.sandbox_wait_s:g} s ({why}); the tool did not run. "
                f"Retry later, or give the DockerExecutor more warm containers (pool_size), "
                f"faster starts (start_concurrency) or a longer sandbox_wait_s",
            ) from None

    def _expire_idle_sessions(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if now - session.last_used > self._session_idle_s and not session.lock.locked():
                del self._sessions[key]
                session.closed = True
                if session.box is not None:
                    self._disposer.dispose(session.box)
                    session.box = None

    async def _call(
        self,
        box: SandboxContainer,
        tool: Tool,
        arguments: Mapping[str, Any],
        *,
        last: bool,
        facts: dict[str, Any],
        warm: bool,
    ) -> tuple[ExecutionResult, bool]:
        """Send one call to a ready container; the bool says whether it may serve another."""
        nonce = secrets.token_hex(16)
        facts = {
            **facts,
            "container_id": box.id,
            "image": box.config.image,
            "network": box.config.network,
            "warm": warm,
        }
        box.calls += 1
        request = {
            "t": "call",
            "id": nonce,
            "tool": tool.name,
            "module": box.config.module.name if box.config.module.file else tool.module_name,
            "arguments": dict(arguments),
            "last": last,
        }
        try:
            async with asyncio.timeout(tool.timeout_s):
                await box.channel.send(request)
                record = await box.channel.receive()
        except TimeoutError:
            facts["exit_code"] = await self._kill(box)
            message = f"tool {tool.name!r} ran longer than {tool.timeout_s:g} s and was killed"
            return _failed(ErrorInfo("timeout", message), facts, status=CallStatus.TIMEOUT), False
        except (TypeError, ValueError) as exc:  # arguments json.dumps refused; nothing was sent
            return _failed(ErrorInfo("arguments", str(exc)), facts), True
        except RecordTooLarge as exc:
            facts["exit_code"] = await self._kill(box)
            error = ErrorInfo("output", f"the tool's result record was too large: {exc}")
            return _failed(error, facts, status=CallStatus.RESOURCE_EXCEEDED), False
        except ProtocolError as exc:
            facts["exit_code"] = await self._kill(box)
            return _failed(ErrorInfo("protocol", str(exc)), facts), False
        except ChannelClosed:
            try:
                state = await box.engine.wait_exit(box.id, min(tool.timeout_s, 10.0))
            except Exception:  # the executor is closing or the daemon went away
                state = None
            if state and state.get("Running"):
                facts["exit_code"] = await self._kill(box)  # the tool closed the channel itself
            else:
                facts["exit_code"] = state.get("ExitCode") if state else None
            status, error = _exit_outcome(state, box.config)
            return _failed(error, facts, status=status), False
        if record.get("t") != "result" or record.get("id") != nonce:
            facts["exit_code"] = await self._kill(box)
            error = ErrorInfo("protocol", "the sandbox answered with a record for another call")
            return _failed(error, facts), False
        return _from_record(record, facts, self._settings.stream_cap)

    async def _kill(self, box: SandboxContainer) -> int | None:
        """SIGKILL now (removal follows in the background); return the exit code."""
        box.channel.close()
        try:
            await box.engine.kill(box.id)
            state = await box.engine.wait_exit(box.id, 5.0)
        except Exception:  # the disposer's forced removal still follows
            return None
        return state.get("ExitCode") if state else None

    async def end_run(self, run_id: str) -> None:
        """Remove the run's per-session containers (waiting for a call in progress)."""
        for key in [key for key in self._sessions if key[1] == run_id]:
            session = self._sessions.pop(key)
            session.closed = True
            async with session.lock:
                box, session.box = session.box, None
            if box is not None:
                box.channel.close()
                try:
                    await box.engine.remove(box.id)
                except Exception:
                    self._disposer.remove(box.id, box.engine)  # retried in the background

    async def aclose(self) -> None:
        """Drain pools and sessions and wait until every container this executor started is gone."""
        if self._closed:
            return
        self._closed = True
        await self._pools.close()
        for session in self._sessions.values():
            session.closed = True
            if session.box is not None and not session.lock.locked():
                self._disposer.dispose(session.box)
                session.box = None
        self._sessions.clear()
        await asyncio.gather(*list(self._background), return_exceptions=True)
        await self._disposer.wait()
        if self._started:
            # backstop: anything still labelled with this executor's id
            try:
                for engine in (self._api, self._crun):
                    if engine is None:
                        continue
                    for leftover in await engine.list([f"{LABEL_EXECUTOR}={self.id}"]):
                        await engine.remove(str(leftover.get("Id")))
            except Exception:
                pass
        self._api.close()
        if self._crun is not None:
            self._crun.close()


def probe_docker(image: str | None = None, docker_host: str | None = None) -> ErrorInfo | None:
    """Check (blocking, ~20 ms) that the daemon answers and the sandbox image exists.

    For choosing a default executor at start-up: None means the Docker
    executor can run; otherwise the error says what is missing and how to fix it.
    """
    import docker.errors

    api = DockerAPI(docker_host)
    image = image or default_image()
    try:
        client = api.open_blocking()
    except Exception as exc:
        return api.unavailable(exc).error_info()
    try:
        client.inspect_image(image)
    except (docker.errors.DockerException, OSError) as exc:
        return api.translate(exc, image=image).error_info()
    finally:
        client.close()
        api.close()
    return None


def _timed(result: ExecutionResult, started: float) -> ExecutionResult:
    return dataclasses.replace(result, duration_ms=(time.perf_counter() - started) * 1000)


def _failed(
    error: ErrorInfo,
    facts: dict[str, Any],
    started: float | None = None,
    *,
    status: CallStatus = CallStatus.SANDBOX_ERROR,
) -> ExecutionResult:
    result = ExecutionResult(status=status, error=error, sandbox=dict(facts))
    if status is CallStatus.RESOURCE_EXCEEDED:
        result.sandbox["resource"] = error.type
    return result if started is None else _timed(result, started)


def _exit_outcome(
    state: dict[str, Any] | None, config: SandboxConfig
) -> tuple[CallStatus, ErrorInfo]:
    """Why a worker ended without a result, from the container's final state."""
    if not state:
        return CallStatus.SANDBOX_ERROR, ErrorInfo(
            "container_gone", "the sandbox container disappeared during the call"
        )
    code = state.get("ExitCode")
    limits = config.limits
    exceeded = CallStatus.RESOURCE_EXCEEDED
    if state.get("OOMKilled"):
        return exceeded, ErrorInfo(
            "oom", f"the tool used more than its {limits.memory} memory limit and was killed"
        )
    if code == 128 + signal.SIGXFSZ:
        return exceeded, ErrorInfo(
            "fsize", f"the tool wrote a file larger than {limits.fsize_bytes} bytes"
        )
    if code == 128 + signal.SIGXCPU:
        return exceeded, ErrorInfo(
            "cpu", f"the tool used more than {limits.cpu_seconds} s of CPU time"
        )
    if code == EXIT_OUTPUT:
        return exceeded, ErrorInfo("output", "the tool wrote more output than the sandbox allows")
    how = f"exit code {code}"
    if isinstance(code, int) and code > 128:
        with contextlib.suppress(ValueError):
            how += f", {signal.Signals(code - 128).name}"
    return CallStatus.TOOL_ERROR, ErrorInfo(
        "worker_exit", f"the tool's process ended ({how}) before returning a result"
    )


def _text(value: Any, limit: int = _MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _error_from(raw: Any) -> ErrorInfo:
    """An error the worker reported; everything from the container is untrusted and capped."""
    if not isinstance(raw, dict):
        return ErrorInfo("error", "the sandbox reported an error without details")
    details = raw.get("details") or []
    if not isinstance(details, list):
        details = [details]
    return ErrorInfo(
        type=_text(raw.get("type", "error"), 200),
        message=_text(raw.get("message", "")),
        details=tuple(_text(item, 2 * _MAX_TEXT) for item in details[:4]),
    )


def _from_record(
    record: dict[str, Any], facts: dict[str, Any], stream_cap: int
) -> tuple[ExecutionResult, bool]:
    status_text = record.get("status")
    output: dict[str, Any] = {
        "stdout": _text(record.get("stdout", ""), stream_cap),
        "stderr": _text(record.get("stderr", ""), stream_cap),
    }
    for stream in ("stdout", "stderr"):
        count = record.get(f"{stream}_bytes")
        if isinstance(count, int):
            facts[f"{stream}_bytes"] = count
            facts[f"{stream}_truncated"] = count > stream_cap
    if status_text == "ok":
        return ExecutionResult(
            CallStatus.OK, result=record.get("result"), sandbox=facts, **output
        ), True
    statuses = {
        "tool_error": CallStatus.TOOL_ERROR,
        "resource_exceeded": CallStatus.RESOURCE_EXCEEDED,
        "sandbox_error": CallStatus.SANDBOX_ERROR,
    }
    status = statuses.get(str(status_text))
    if status is None:
        return _failed(ErrorInfo("protocol", f"unknown status {status_text!r}"), facts), False
    error = _error_from(record.get("error"))
    if status is CallStatus.RESOURCE_EXCEEDED:
        facts["resource"] = error.type
    # after an output overflow the worker exits; after anything else it can go on
    reusable = not (status is CallStatus.RESOURCE_EXCEEDED and error.type == "output")
    return ExecutionResult(status, error=error, sandbox=facts, **output), reusable
