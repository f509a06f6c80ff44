"""`HashChainSink`: the hash-chained, checkpointed JSON-lines audit log writer.

One sink owns one log (see `runtime.audit.records` for the file layout).
`write()` redacts the fields, encodes one canonical line, chains it to the
previous record and appends it with a single `os.write` under a lock, so lines
from many threads or asyncio tasks never interleave; a second process (or a
second sink) opening the same log is refused through `flock` on `PATH.lock`.

Durability (`fsync=`): `always` fsyncs every record inside `write()` (which
then blocks for a disk flush); `batch` (default) leaves the fsync to a
background thread every `fsync_every` records or `fsync_interval_s`, so a
`write()` costs only the `write(2)` and a process crash loses nothing while a
power loss loses at most that batch; `off` never fsyncs (after a power loss
a checkpoint may then outlive the records it covers, and `verify` reports a
truncation).

Checkpoints (HMAC-signed: last seq, hash, time) go to `PATH.checkpoints` at
every rotation, every `checkpoint_every` records or `checkpoint_interval_s`
(whichever comes first, written by the background thread after the log's
fsync so a checkpoint never covers records the disk has not got), on
`checkpoint()` and on `close()`. Rotation renames the full active file to
`PATH.000001`, `PATH.000002`, ...; the chain continues in the new file.

Reopening a log resumes its chain from the last record, read from the file's
tail. A torn final line (a crash mid-append) is cut off and recorded in an
`audit.recovered` record, so the evidence of the crash stays in the chain.

Run-scoped fields bound with `audit_context()` (structlog contextvars) are
merged into every record written in that context; only `gen_ai.*`,
`agentrt.*` and `error.*` keys are taken, so an application's own structlog
context does not leak into the audit log.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import structlog

from runtime.audit.events import audit_recovered, write
from runtime.audit.records import (
    FORMAT_VERSION,
    GENESIS_HASH,
    HmacKeyError,
    canonical_json,
    checkpoint_mac,
    derive_key,
    encode_record,
    iso_now,
    key_id,
    resolve_hmac_key,
    segment_number,
    segments_of,
    split_line,
)
from runtime.audit.redaction import Redactor
from runtime.audit.sink import AuditWriteError

__all__ = [
    "AUDIT_LOG_ENV",
    "DEFAULT_AUDIT_LOG",
    "AuditLogLockedError",
    "FsyncPolicy",
    "HashChainSink",
    "audit_context",
    "default_audit_log_path",
]

FsyncPolicy = Literal["always", "batch", "off"]
DEFAULT_AUDIT_LOG = Path(".agentrt/audit/audit.jsonl")
AUDIT_LOG_ENV = "AGENTRT_AUDIT_LOG"
_CONTEXT_PREFIXES = ("gen_ai.", "agentrt.", "error.")
_TAIL_BLOCK = 64 * 1024


def default_audit_log_path() -> Path:
    """`$AGENTRT_AUDIT_LOG`, else `.agentrt/audit/audit.jsonl` under the working directory."""
    return Path(os.environ.get(AUDIT_LOG_ENV) or DEFAULT_AUDIT_LOG)


class AuditLogLockedError(AuditWriteError):
    """Another process (or another sink in this one) is writing the same log."""


@contextlib.contextmanager
def audit_context(fields: Mapping[str, Any]) -> Iterator[None]:
    """Bind run-scoped audit fields (e.g. `agentrt.run_id`) for the enclosed code.

    Uses structlog's contextvars, so the fields follow asyncio tasks created
    inside the block and also appear in the application's own structlog logs.
    """
    with structlog.contextvars.bound_contextvars(**dict(fields)):
        yield


class HashChainSink:
    """An `AuditSink` writing a tamper-evident, hash-chained JSON-lines log.

    Args:
        path: The active log file; parent directories are created (0700).
        hmac_key: Master key for argument HMACs and checkpoint signatures.
            Default: `$AGENTRT_AUDIT_HMAC_KEY`, else the key file `PATH.key`,
            generated (0600) when missing.
        redact_paths: Dotted paths from policy `audit.redact`.
        store_results: Store redacted tool results and stdout/stderr, not only
            their size and SHA-256.
        redactor: A fully configured `Redactor` (overrides the two above).
        fsync: `always`, `batch` (default) or `off`.
        fsync_every: Batch size in records for `batch`.
        fsync_interval_s: Longest time unsynced records wait in `batch`.
        max_bytes: Rotate the active file before it would exceed this size.
        checkpoint_every: Sign a checkpoint after this many records.
        checkpoint_interval_s: ... or after this long with new records.

    Raises:
        AuditLogLockedError: Another writer holds the log.
        AuditWriteError: The log cannot be opened, or its tail is corrupt.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hmac_key: bytes | str | None = None,
        redact_paths: Iterable[str] = (),
        store_results: bool = False,
        redactor: Redactor | None = None,
        fsync: FsyncPolicy = "batch",
        fsync_every: int = 1000,
        fsync_interval_s: float = 0.2,
        max_bytes: int = 64 * 1024 * 1024,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 10.0,
    ) -> None:
        if fsync not in ("always", "batch", "off"):
            raise ValueError(f"fsync must be 'always', 'batch' or 'off', not {fsync!r}")
        self.path = Path(path)
        self._fsync = fsync
        self._fsync_every = max(1, fsync_every)
        self._fsync_interval_s = fsync_interval_s
        self._max_bytes = max_bytes
        self._checkpoint_every = max(1, checkpoint_every)
        self._checkpoint_interval_s = checkpoint_interval_s
        # `_lock` orders records; `_sync_lock` serialises fsync and checkpoint
        # file writes, so a slow fsync in the background never blocks write().
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._fd = -1
        self._cp_fd = -1
        self._lock_fd = -1
        self._closed = False
        self._stopping = False
        self._failure: str | None = None
        self._generation = 0
        self._size = 0
        self._seq = 0
        self._hash = GENESIS_HASH
        self._synced_seq = 0
        self._cp_n = 0
        self._cp_seq = 0
        self._cp_time = time.monotonic()
        self._cp_size = 0
        self._segment_n = 0
        self._ts_second = -1
        self._ts_prefix = ""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_fd = self._take_lock()
            master = resolve_hmac_key(self.path, hmac_key, create=True)
            assert master is not None  # create=True always yields a key
            self._cp_key = derive_key(master, "checkpoint")
            self._key_id = key_id(master)
            self._redactor = redactor or Redactor(
                redact_paths=redact_paths, hmac_key=master, store_results=store_results
            )
            recovery = self._resume()
            self._open_files()
        except AuditWriteError:
            self._release()
            raise
        except (OSError, HmacKeyError) as exc:
            self._release()
            raise AuditWriteError(f"cannot open audit log {self.path}: {_describe(exc)}") from exc
        self._thread = threading.Thread(
            target=self._background, name=f"agentrt-audit-{self.path.name}", daemon=True
        )
        self._thread.start()
        if recovery:
            write(self, audit_recovered(**recovery))

    # -- public -------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The sequence number of the last record written."""
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._hash

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def set_redact_paths(self, redact_paths: Iterable[str]) -> None:
        """Replace the policy redaction paths (e.g. after a policy reload)."""
        self._redactor = self._redactor.with_redact_paths(redact_paths)

    def add_redact_paths(self, redact_paths: Iterable[str]) -> None:
        """Also redact `redact_paths` (a policy's `audit.redact`), keeping the current ones."""
        current = self._redactor.redact_paths
        added = tuple(path for path in redact_paths if path not in current)
        if added:
            self._redactor = self._redactor.with_redact_paths((*current, *added))

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        """Redact, chain and append one record.

        Raises:
            AuditWriteError: The record was not appended (disk full,
                unwritable file, closed sink); the caller must not run the tool.
        """
        context = structlog.contextvars.get_contextvars()
        if context:
            merged = {k: v for k, v in context.items() if k.startswith(_CONTEXT_PREFIXES)}
            if merged:
                merged.update(fields)
                fields = merged
        try:
            fields_json = canonical_json(self._redactor.redact_fields(fields))
        except Exception as exc:  # an unencodable value must not let a call run unaudited
            raise AuditWriteError(f"cannot encode audit record {event!r}: {exc!r}") from exc
        name = event if type(event) is str else str(event)
        with self._lock:
            if self._closed:
                raise AuditWriteError(f"audit log {self.path} is closed")
            if self._failure is not None:
                raise AuditWriteError(self._failure)
            seq = self._seq + 1
            line, digest = encode_record(seq, self._timestamp(), name, fields_json, self._hash)
            try:
                if self._fd < 0:
                    self._open_active()
                elif self._size and self._size + len(line) > self._max_bytes:
                    self._rotate()
                self._append(line)
                if self._fsync == "always":
                    self._fsync_fd(self._fd)
            except OSError as exc:
                raise AuditWriteError(self._explain(exc)) from exc
            self._seq = seq
            self._hash = digest
            if self._fsync == "always":
                self._synced_seq = seq
            elif (
                seq - self._synced_seq == self._fsync_every
                or seq - self._cp_seq == self._checkpoint_every
            ):
                self._wake.set()

    def checkpoint(self) -> None:
        """Flush, fsync and sign a checkpoint now (e.g. before a backup)."""
        try:
            self._sync_once(reason="manual")
        except OSError as exc:
            raise AuditWriteError(self._explain(exc)) from exc

    def close(self) -> None:
        """Fsync, sign a final `close` checkpoint and release the log. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
        self._wake.set()
        self._thread.join()
        try:
            with self._lock, self._sync_lock:
                if self._fd >= 0 and self._seq and self._failure is None:
                    if self._fsync != "off":
                        os.fsync(self._fd)
                    self._write_checkpoint(self._seq, self._hash, "close")
        except OSError as exc:
            raise AuditWriteError(self._explain(exc)) from exc
        finally:
            self._release()

    def __enter__(self) -> HashChainSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- opening and resuming -----------------------------------------------

    def _take_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AuditLogLockedError(
                f"audit log {self.path} is already being written by another writer "
                f"(pid {holder}); stop it or give this process its own --audit-log path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return fd

    def _resume(self) -> dict[str, Any]:
        """Continue the existing chain; returns the facts of a recovery record, if any
        (the arguments of `events.audit_recovered`)."""
        segments = segments_of(self.path)
        self._segment_n = (segment_number(segments[-1]) or 0) if segments else 0
        recovery: dict[str, Any] = {}
        candidates = [self.path, *reversed(segments)]
        for index, candidate in enumerate(candidates):
            if not candidate.exists():
                continue
            last, good_end, size = _read_tail(candidate)
            if size > good_end:
                if index != 0:
                    raise AuditWriteError(
                        f"rotated audit segment {candidate} ends in a torn line; "
                        f"run `agentrt audit verify {self.path}` and move the log aside"
                    )
                with open(candidate, "rb") as handle:
                    handle.seek(good_end)
                    torn = handle.read()
                os.truncate(candidate, good_end)
                recovery = {
                    "reason": "torn_tail",
                    "dropped_bytes": len(torn),
                    "dropped_sha256": hashlib.sha256(torn).hexdigest(),
                }
            if last is None:
                continue
            parts = split_line(last)
            if parts is None or not parts.hash_ok:
                raise AuditWriteError(
                    f"cannot resume audit log: the last record of {candidate} does not verify; "
                    f"run `agentrt audit verify {self.path}` and move the log aside"
                )
            self._seq, self._hash = parts.seq, parts.hash.decode("ascii")
            break
        self._synced_seq = self._seq
        cp_path = self.path.with_name(self.path.name + ".checkpoints")
        if cp_path.exists():
            last, good_end, size = _read_tail(cp_path)
            if size > good_end:
                os.truncate(cp_path, good_end)
            if last is not None:
                try:
                    checkpoint = json.loads(last)
                    self._cp_n, self._cp_seq = int(checkpoint["n"]), int(checkpoint["seq"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise AuditWriteError(
                        f"cannot resume audit log: the last checkpoint in {cp_path} is unreadable; "
                        "move the log and its checkpoints aside"
                    ) from exc
        if self._cp_seq > self._seq:
            # The log lost records a signed checkpoint vouches for. Keep going
            # (fail-closed would stop every tool) but say so in the chain;
            # `verify` reports the truncation as a problem regardless.
            recovery.update(
                {
                    "reason": "behind_checkpoint",
                    "checkpoint_seq": self._cp_seq,
                    "resumed_seq": self._seq,
                }
            )
            self._cp_seq = self._seq
        return recovery

    def _open_files(self) -> None:
        self._open_active()
        cp_path = self.path.with_name(self.path.name + ".checkpoints")
        self._cp_fd = os.open(cp_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._cp_size = os.fstat(self._cp_fd).st_size

    def _open_active(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(fd).st_size
        self._fd = fd

    def _release(self) -> None:
        for name in ("_fd", "_cp_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)

    # -- appending ----------------------------------------------------------

    def _timestamp(self) -> str:
        # strftime per record costs ~1 µs; the second only changes once a second.
        now = time.time_ns()
        second, rest = divmod(now, 1_000_000_000)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._ts_prefix}.{rest // 1000:06d}Z"

    def _append(self, line: bytes) -> None:
        written = 0
        try:
            while written < len(line):
                count = os.write(self._fd, line[written:])
                if count == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count
        except OSError:
            if written:
                # Cut the partial line so the next successful write does not
                # leave garbage mid-file (which verify would call tampering).
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError as trunc_exc:
                    self._failure = (
                        f"audit log {self.path} holds a partial record that could not be "
                        f"removed ({trunc_exc.strerror}); tool execution is stopped"
                    )
            raise
        self._size += written

    def _rotate(self) -> None:
        with self._sync_lock:
            fd, self._fd = self._fd, -1
            self._generation += 1
            try:
                if self._fsync != "off":
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._synced_seq = self._seq
            segment = self.path.with_name(f"{self.path.name}.{self._segment_n + 1:06d}")
            os.rename(self.path, segment)
            self._segment_n += 1
            # Create the next file before the slow fsyncs: a crash in between
            # then leaves the usual layout (verify and resume cope either way).
            self._open_active()
            _fsync_dir(self.path.parent)
            self._write_checkpoint(self._seq, self._hash, "rotation", segment.name)

    # -- checkpoints and the background flusher -----------------------------

    def _background(self) -> None:
        tick = min(self._fsync_interval_s, self._checkpoint_interval_s)
        while True:
            self._wake.wait(tick)
            self._wake.clear()
            if self._stopping:
                return
            # A failed fsync already stopped the sink (`_fsync_fd`); a failed
            # checkpoint append (disk full) is retried on the next tick.
            with contextlib.suppress(OSError):
                self._sync_once(reason="interval")

    def _sync_once(self, *, reason: Literal["interval", "manual"]) -> None:
        with self._lock:
            if self._fd < 0 or self._cp_fd < 0:
                return
            seq, digest, fd, generation = self._seq, self._hash, self._fd, self._generation
        with self._sync_lock:
            if generation != self._generation:
                return  # a rotation fsynced and checkpointed in the meantime
            if seq > self._synced_seq and self._fsync == "batch":
                self._fsync_fd(fd)
                self._synced_seq = seq
            elapsed = time.monotonic() - self._cp_time
            due = seq > self._cp_seq and (
                seq - self._cp_seq >= self._checkpoint_every
                or elapsed >= self._checkpoint_interval_s
            )
            if reason == "manual" and seq:
                self._write_checkpoint(seq, digest, "manual")
            elif due:
                self._write_checkpoint(seq, digest, "interval")

    def _fsync_fd(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages:
            # nothing written since can be trusted to be on disk, so stop.
            self._failure = f"fsync of audit log {self.path} failed: {_describe(exc)}"
            raise

    def _write_checkpoint(
        self, seq: int, digest: str, reason: str, segment: str | None = None
    ) -> None:
        """Append one signed checkpoint; the caller holds `_sync_lock`."""
        payload: dict[str, Any] = {
            "hash": digest,
            "key_id": self._key_id,
            "n": self._cp_n + 1,
            "reason": reason,
            "segment": segment,
            "seq": seq,
            "ts": iso_now(),
            "v": FORMAT_VERSION,
        }
        payload["mac"] = checkpoint_mac(self._cp_key, canonical_json(payload))
        line = canonical_json(payload) + b"\n"
        try:
            written = os.write(self._cp_fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write to the checkpoint file")
        except OSError:
            # A partial checkpoint line would read as a forged one: cut it.
            with contextlib.suppress(OSError):
                os.ftruncate(self._cp_fd, self._cp_size)
            raise
        self._cp_size += len(line)
        if self._fsync != "off":
            os.fsync(self._cp_fd)
        self._cp_n += 1
        self._cp_seq = seq
        self._cp_time = time.monotonic()

    def _explain(self, exc: OSError) -> str:
        reason = _describe(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "free disk space or point --audit-log at another volume"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "make the log directory writable or choose another --audit-log path"
        else:
            hint = "check the log's volume"
        return (
            f"cannot write audit log {self.path}: {reason}; tool execution is stopped "
            f"until the log can be written ({hint})"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_tail(path: Path) -> tuple[bytes | None, int, int]:
    """The last complete line of `path`, the offset just past it, and the file size.

    Reads backwards in blocks, so opening a large log costs one or two reads.
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        block = _TAIL_BLOCK
        # First find the last newline: everything after it is a torn line.
        good_end = 0
        position = size
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                good_end = start + newline + 1
                break
            position = start
        if good_end == 0:
            return None, 0, size
        end = good_end - 1  # the newline of the last complete line
        position = end
        pieces: list[bytes] = []
        while position > 0:
            start = max(0, position - block)
            handle.seek(start)
            chunk = handle.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                pieces.append(chunk[newline + 1 :])
                break
            pieces.append(chunk)
            position = start
        return b"".join(reversed(pieces)) + b"\n", good_end, size
