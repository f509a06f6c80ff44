"""Warm pools: started containers whose worker already waits, one pool per sandbox config.

A container can only serve tools whose settings it was created with (image,
limits, network, mounts, the tool's module), so pools are keyed by the
resolved `SandboxConfig`. Each container leaves its pool exactly once; the
pool starts a replacement in the background. A pool of size 0 is the cold
path: every call waits for a container started just for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from runtime.sandbox.containers import Disposer, SandboxContainer, SandboxUnavailable
from runtime.sandbox.hardening import SandboxConfig

Starter = Callable[[SandboxConfig], Awaitable[SandboxContainer]]
# failures the next start would repeat: fail every waiter and fail fast for a while
_PERSISTENT = frozenset({"image_missing", "docker_unavailable", "docker_error", "worker_start"})


def _copy(exc: SandboxUnavailable) -> SandboxUnavailable:
    # each waiter raises its own instance: one exception raised in many tasks shares a traceback
    return SandboxUnavailable(exc.kind, exc.message, exc.details)


class WarmPool:
    """Ready containers for one sandbox config; each is handed out once.

    Args:
        config: What every container of this pool is created with.
        size: Containers kept ready; 0 means none (cold starts on demand).
        starter: Starts one container and waits until its worker is ready.
        disposer: Takes containers the pool no longer wants.
        retry_after_s: After a start fails in a way the next one would repeat
            (image missing, daemon down), calls fail fast with that error for
            this long instead of retrying.
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        size: int,
        starter: Starter,
        disposer: Disposer,
        retry_after_s: float = 5.0,
    ) -> None:
        self.config = config
        self.size = size
        self._starter = starter
        self._disposer = disposer
        self._retry_after_s = retry_after_s
        self._ready: collections.deque[SandboxContainer] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[SandboxContainer]] = collections.deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._closed = False
        self._failed_at: float | None = None
        self.last_error: SandboxUnavailable | None = None
        self.started = 0
        self.handed_out = 0

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    @property
    def starting_count(self) -> int:
        return len(self._starting)

    def _failing(self) -> bool:
        return (
            self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_after_s
        )

    def fill(self) -> None:
        """Start containers in the background until `size` are ready or starting."""
        if self._closed or (self._failing() and not self._waiters):
            return
        need = self.size + len(self._waiters) - len(self._ready) - len(self._starting)
        loop = asyncio.get_running_loop()
        for _ in range(max(need, 0)):
            task = loop.create_task(self._start_one())
            self._starting.add(task)

    async def _start_one(self) -> None:
        task = asyncio.current_task()
        try:
            box = await self._starter(self.config)
        except SandboxUnavailable as exc:
            self._fail(exc)
            return
        except Exception as exc:
            self._fail(SandboxUnavailable("docker_error", f"{type(exc).__name__}: {exc}"))
            return
        finally:
            if task is not None:
                self._starting.discard(task)
        self.started += 1
        self._failed_at = None
        self.last_error = None
        self._offer(box)

    def _fail(self, exc: SandboxUnavailable) -> None:
        self.last_error = exc
        persistent = exc.kind in _PERSISTENT or self._closed
        if persistent:
            self._failed_at = time.monotonic()
        # a transient failure (a slow start) costs one waiter; others keep their starts
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_copy(exc))
                if not persistent:
                    break
        self._changed.set()

    def _offer(self, box: SandboxContainer) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(box)
                return
        if not self._closed and len(self._ready) < self.size and box.alive:
            self._ready.append(box)
            self._changed.set()
        else:
            self._disposer.dispose(box)

    async def acquire(self) -> tuple[SandboxContainer, bool]:
        """Take a container for one call (or one session); True if it was already warm.

        Raises:
            SandboxUnavailable: No container can be started.
        """
        if self._closed:
            raise SandboxUnavailable("closed", "the Docker executor is closed")
        while self._ready:
            box = self._ready.popleft()
            if box.alive:
                self.handed_out += 1
                self.fill()
                return box, True
            self._disposer.dispose(box)  # its worker died while waiting
        if self.last_error is not None and self._failing():
            raise _copy(self.last_error)
        waiter: asyncio.Future[SandboxContainer] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.fill()
        try:
            box = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._offer(waiter.result())  # handed over just as the caller gave up
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        self.handed_out += 1
        return box, False

    async def wait_ready(self, count: int | None = None) -> None:
        """Wait until `count` (default: `size`) containers are ready.

        Raises:
            SandboxUnavailable: Starting failed.
        """
        target = self.size if count is None else count
        self.fill()
        while len(self._ready) < target:
            if self.last_error is not None and self._failing():
                raise _copy(self.last_error)
            self.fill()  # a transient failure may have left a gap
            self._changed.clear()
            await self._changed.wait()

    def stats(self) -> dict[str, Any]:
        return {
            "key": self.config.key,
            "size": self.size,
            "ready": len(self._ready),
            "starting": len(self._starting),
            "waiting": len(self._waiters),
            "started": self.started,
            "handed_out": self.handed_out,
            "last_error": self.last_error.message if self.last_error else None,
        }

    async def close(self) -> None:
        """Stop refilling, cancel starts (their containers are removed) and drain."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        await asyncio.gather(*list(self._starting), return_exceptions=True)
        while self._ready:
            self._disposer.dispose(self._ready.popleft())
        self._fail(SandboxUnavailable("closed", "the Docker executor is closed"))


class PoolSet:
    """Warm pools by sandbox config, least recently used first out past `max_pools`.

    Args:
        size: Ready containers per pool (0: cold path only).
        max_pools: Distinct configs kept warm at once.
        starter: Starts one container for a config.
        disposer: Removes containers nobody needs.
    """

    def __init__(self, *, size: int, max_pools: int, starter: Starter, disposer: Disposer) -> None:
        self.size = size
        self._max_pools = max(max_pools, 1)
        self._starter = starter
        self._disposer = disposer
        self._pools: collections.OrderedDict[str, WarmPool] = collections.OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, config: SandboxConfig) -> WarmPool:
        """The pool for `config`, created (and filled in the background) on first use."""
        pool = self._pools.get(config.key)
        if pool is not None:
            self._pools.move_to_end(config.key)
            return pool
        pool = WarmPool(config, size=self.size, starter=self._starter, disposer=self._disposer)
        self._pools[config.key] = pool
        while len(self._pools) > self._max_pools:
            _, evicted = self._pools.popitem(last=False)
            task = asyncio.get_running_loop().create_task(evicted.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return pool

    def stats(self) -> list[dict[str, Any]]:
        return [pool.stats() for pool in self._pools.values()]

    async def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
