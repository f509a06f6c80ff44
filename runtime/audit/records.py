"""The audit record format: canonical JSON, the hash chain's line layout, keys, files.

One record is one line of UTF-8 JSON::

    {"event":"policy.decided","fields":{...},"prev_hash":"<64 hex>","seq":7,
     "ts":"2025-01-31T12:00:00.123456Z","hash":"<64 hex>"}

`hash` is the SHA-256 of the *canonical* JSON of the record without `hash`
(sorted keys, no whitespace, UTF-8, no NaN — see `canonical_json`). The line
is exactly that canonical text with `,"hash":"<hex>"` inserted before the
closing brace, so a verifier can either parse the line, drop `hash`,
re-canonicalise and hash, or — much faster — hash the line's bytes minus that
fixed 75-byte suffix. Both give the same digest. `prev_hash` is the previous
record's `hash` (`GENESIS_HASH` for the first record of a log); `seq` starts
at 1 and grows by one per record across rotated files.

Files of one log named `PATH` (the active file):

- `PATH.000001`, `PATH.000002`, ... rotated segments, oldest first; the chain
  runs from the lowest segment through `PATH` itself.
- `PATH.checkpoints` HMAC-signed checkpoints, one JSON line each.
- `PATH.key` the generated HMAC key, only when none was configured.
- `PATH.lock` the writer's `flock` lock file.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pydantic

from runtime.audit.events import Field

__all__ = [
    "GENESIS_HASH",
    "HMAC_KEY_ENV",
    "AuditRecord",
    "Checkpoint",
    "HmacKeyError",
    "LineParts",
    "LogFiles",
    "canonical_json",
    "checkpoint_mac",
    "derive_key",
    "discover_logs",
    "encode_record",
    "json_safe",
    "key_id",
    "resolve_hmac_key",
    "split_line",
]

GENESIS_HASH = "0" * 64
GENESIS_HASH_BYTES = GENESIS_HASH.encode("ascii")
HMAC_KEY_ENV = "AGENTRT_AUDIT_HMAC_KEY"
FORMAT_VERSION = 1

# One cached encoder: `json.dumps(..., sort_keys=True, ...)` builds a new
# JSONEncoder per call, which costs more than the encoding of a small record.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# Its C core, built once: `_ENCODER.encode` builds a new one (and a circular
# reference table) per call, about half the cost of encoding a record. Without
# the table it is stateless, so threads can share it; a circular value ends in
# RecursionError, and `canonical_json` then encodes it through `json_safe`.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE: Any = (
    _c_make_encoder(
        None,  # no circular-reference table
        _ENCODER.default,
        json.encoder.encode_basestring,
        None,  # no indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    if _c_make_encoder is not None
    else None
)
# The C string encoder `_ENCODER` itself uses for ensure_ascii=False.
_encode_string: Any = json.encoder.encode_basestring
_HASH_SUFFIX_START = b',"hash":"'
_SUFFIX_LEN = len(_HASH_SUFFIX_START) + 64 + 2  # ,"hash":"<64 hex>"}
_PREV_KEY = b',"prev_hash":"'
_SEQ_KEY = b'","seq":'
_SURROGATE = re.compile("[\ud800-\udfff]")
_SEGMENT_RE = re.compile(r"^(?P<base>.+)\.(?P<n>\d{6,})$")


# -- canonical JSON -----------------------------------------------------------


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Return `value` as plain JSON types, deterministically.

    Tuples become lists, sets sorted lists, enums their value, datetimes ISO
    text, bytes a size-and-hash marker, non-finite floats their name, lone
    surrogates U+FFFD, and anything else `str(value)`.
    """
    if _depth > 64:
        return "<too deep>"
    if value is None or isinstance(value, bool | int):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, str):
        if isinstance(value, enum.Enum):
            return json_safe(value.value, _depth + 1)
        return _clean_surrogates(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {_clean_surrogates(str(k)): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [json_safe(v, _depth + 1) for v in value]
        return sorted(items, key=lambda item: canonical_json(item))
    if isinstance(value, enum.Enum):
        return json_safe(value.value, _depth + 1)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return {"redacted": "bytes", "len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return _clean_surrogates(str(value))


def _clean_surrogates(text: str) -> str:
    # JSON text from a model may hold lone surrogates ("\ud800"), which UTF-8
    # cannot encode; replace them so every record stays valid UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def canonical_json(value: Any) -> bytes:
    """Encode `value` canonically: sorted keys, compact, UTF-8, no NaN.

    Values that are not plain JSON (tuples, sets, NaN, lone surrogates, ...)
    are first converted by `json_safe`, so the result is always valid strict
    JSON and the same input always gives the same bytes.
    """
    try:
        if _C_ENCODE is not None:
            return "".join(_C_ENCODE(value, 0)).encode("utf-8")
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        return _ENCODER.encode(json_safe(value)).encode("utf-8")


# -- the line layout ----------------------------------------------------------


def encode_record(
    seq: int, ts: str, event: str, fields_json: bytes, prev_hash: str
) -> tuple[bytes, str]:
    """Build one record line (with trailing newline) and its hash.

    Args:
        seq: The record's sequence number.
        ts: UTC time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
        event: The step name, e.g. `policy.decided`.
        fields_json: `canonical_json` of the (already redacted) fields.
        prev_hash: The previous record's hash.

    Returns:
        The line and the hex SHA-256 of its canonical body.
    """
    # Concatenating in sorted-key order equals canonical_json() of the whole
    # record (a test pins this) at a fraction of the cost.
    body = b"".join(
        (
            b'{"event":',
            _encode_string(event).encode("utf-8"),
            b',"fields":',
            fields_json,
            _PREV_KEY,
            prev_hash.encode("ascii"),
            _SEQ_KEY,
            str(seq).encode("ascii"),
            b',"ts":"',
            ts.encode("ascii"),
            b'"}',
        )
    )
    digest = hashlib.sha256(body).hexdigest()
    line = b"".join((body[:-1], _HASH_SUFFIX_START, digest.encode("ascii"), b'"}\n'))
    return line, digest


class LineParts(NamedTuple):
    """What the chain needs from one line, read without parsing its JSON.

    Hashes stay ASCII bytes: verification compares millions of them.
    """

    seq: int
    prev_hash: bytes
    hash: bytes
    hash_ok: bool


# Building a NamedTuple through its generated __new__ is a Python call; the
# C-level tuple constructor is several times cheaper on the verify hot path.
_new_tuple: Any = tuple.__new__


def split_line(line: bytes) -> LineParts | None:
    """Read `seq`, `prev_hash` and `hash` from a record line and re-hash its body.

    Args:
        line: One line, with or without its trailing newline.

    Returns:
        The parts (`hash_ok` tells whether the body matches `hash`), or None
        when the line does not have the record layout.
    """
    end = len(line) - 1 if line[-1:] == b"\n" else len(line)
    cut = end - _SUFFIX_LEN
    if cut < 2 or line[cut : cut + 9] != _HASH_SUFFIX_START or line[end - 2 : end] != b'"}':
        return None
    prev_at = line.rfind(_PREV_KEY, 0, cut)
    if prev_at < 0 or line[prev_at + 78 : prev_at + 86] != _SEQ_KEY:
        return None
    seq_end = line.find(b",", prev_at + 86, cut)
    try:
        seq = int(line[prev_at + 86 : seq_end])
    except ValueError:
        return None
    claimed = line[cut + 9 : end - 2]
    body_hash = hashlib.sha256(line[:cut])
    body_hash.update(b"}")
    ok = body_hash.hexdigest().encode("ascii") == claimed
    return _new_tuple(LineParts, (seq, line[prev_at + 14 : prev_at + 78], claimed, ok))  # type: ignore[no-any-return]


# -- the schema, for readers --------------------------------------------------


class AuditRecord(pydantic.BaseModel):
    """One audit record as read back from a log (CLI output, query results)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    seq: int
    ts: str
    event: str
    fields: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_line(cls, line: bytes | str) -> AuditRecord:
        """Parse one log line (raises `pydantic.ValidationError` or `ValueError`)."""
        return cls.model_validate_json(line)

    def canonical_hash(self) -> str:
        """Recompute `hash` from the other fields (the slow, parse-based way)."""
        body = self.model_dump(exclude={"hash"})
        return hashlib.sha256(canonical_json(body)).hexdigest()

    @property
    def tool(self) -> str | None:
        return _str_or_none(self.fields.get(Field.TOOL_NAME))

    @property
    def status(self) -> str | None:
        return _str_or_none(self.fields.get(Field.STATUS))

    @property
    def decision(self) -> str | None:
        return _str_or_none(self.fields.get(Field.DECISION))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


CheckpointReason = Literal["interval", "rotation", "close", "manual"]


class Checkpoint(pydantic.BaseModel):
    """An HMAC-signed statement "the chain reached `seq` with `hash` at `ts`".

    Attributes:
        n: Checkpoint number within the log, from 1 (a gap shows a deleted line).
        seq: The last record covered.
        hash: That record's hash.
        ts: When the checkpoint was written (UTC).
        reason: `interval`, `rotation`, `close` or `manual`.
        segment: For a rotation, the name the finished file was renamed to.
        key_id: Identifies the signing key without revealing it.
        v: Format version.
        mac: HMAC-SHA256 over the canonical JSON of all other fields.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    n: int
    seq: int
    hash: str
    ts: str
    reason: CheckpointReason
    segment: str | None = None
    key_id: str
    v: int = FORMAT_VERSION
    mac: str

    def signed_payload(self) -> bytes:
        return canonical_json(self.model_dump(exclude={"mac"}))

    def mac_ok(self, checkpoint_key: bytes) -> bool:
        return hmac.compare_digest(self.mac, checkpoint_mac(checkpoint_key, self.signed_payload()))


def checkpoint_mac(checkpoint_key: bytes, payload: bytes) -> str:
    """HMAC-SHA256 (hex) of a checkpoint's canonical payload."""
    return hmac.digest(checkpoint_key, payload, "sha256").hex()


# -- keys ---------------------------------------------------------------------


class HmacKeyError(RuntimeError):
    """The audit HMAC key cannot be read or created."""


def derive_key(master: bytes, purpose: str) -> bytes:
    """Derive a purpose-bound key so one secret never signs two kinds of data."""
    return hmac.digest(master, b"agentrt-audit/" + purpose.encode("ascii"), "sha256")


def key_id(master: bytes) -> str:
    """A short public identifier of `master` (safe to print and log)."""
    return derive_key(master, "key-id")[:8].hex()


def resolve_hmac_key(
    log_path: Path, key: bytes | str | None = None, *, create: bool = True
) -> bytes | None:
    """Find the audit HMAC master key.

    Order: the `key` argument, the `AGENTRT_AUDIT_HMAC_KEY` environment
    variable, then the key file `<log>.key`. When none exists and `create` is
    true, a random 256-bit key is written to `<log>.key` with mode 0600. A key
    kept next to the log only guards against accidental edits: to make
    checkpoints trustworthy against someone who can write the log, configure
    the key from a secret store instead.

    Returns:
        The key bytes, or None when none was found and `create` is false.

    Raises:
        HmacKeyError: The key file is unreadable, empty, or readable by others.
    """
    if key is not None:
        return key.encode("utf-8") if isinstance(key, str) else bytes(key)
    from_env = os.environ.get(HMAC_KEY_ENV)
    if from_env:
        return from_env.encode("utf-8")
    key_path = log_path.with_name(log_path.name + ".key")
    try:
        return _read_key_file(key_path)
    except FileNotFoundError:
        if not create:
            return None
    return _create_key_file(key_path)


def _read_key_file(key_path: Path) -> bytes:
    fd = os.open(key_path, os.O_RDONLY)
    try:
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise HmacKeyError(
                f"audit key file {key_path} is accessible to other users; run `chmod 600 {key_path}`"
            )
        data = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    if not data:
        raise HmacKeyError(f"audit key file {key_path} is empty; delete it to generate a new key")
    return data


def _create_key_file(key_path: Path) -> bytes:
    key_path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode("ascii")
    try:
        # O_EXCL: two processes racing to create the key must not both win.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(key_path)
    except OSError as exc:
        raise HmacKeyError(f"cannot create audit key file {key_path}: {exc.strerror}") from exc
    try:
        os.write(fd, data + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return data


# -- files --------------------------------------------------------------------


class LogFiles(NamedTuple):
    """The files of one log, in chain order."""

    base: Path
    files: list[Path]
    checkpoints: Path

    @property
    def key_path(self) -> Path:
        return self.base.with_name(self.base.name + ".key")


def segment_number(path: Path) -> int | None:
    """The rotation number of `PATH.000042`-style names, else None."""
    match = _SEGMENT_RE.match(path.name)
    return int(match["n"]) if match else None


def segments_of(base: Path) -> list[Path]:
    """Rotated segments of the log `base`, oldest first."""
    pattern = re.compile(re.escape(base.name) + r"\.(\d{6,})")
    found: list[tuple[int, Path]] = []
    if base.parent.is_dir():
        for entry in os.scandir(base.parent):
            match = pattern.fullmatch(entry.name)
            if match:
                found.append((int(match[1]), base.parent / entry.name))
    return [path for _, path in sorted(found)]


def discover_logs(paths: Iterable[str | os.PathLike[str]]) -> list[LogFiles]:
    """Group the given paths into logs, adding each log's rotated segments.

    A path may name the active file (its segments and checkpoint file are
    found next to it) or one segment (`PATH.000003`: then only the segments
    given are read, plus the active file if it was given too).
    """
    groups: dict[Path, set[Path]] = {}
    order: list[Path] = []
    for raw in paths:
        path = Path(raw)
        number = segment_number(path)
        base = path.with_name(path.name.rsplit(".", 1)[0]) if number is not None else path
        if base not in groups:
            groups[base] = set()
            order.append(base)
        if number is None:
            segments = segments_of(base)
            groups[base].update(segments)
            if segments and not path.exists():
                # A crash between rotating the active file away and creating
                # the next one leaves only segments: that log is still whole.
                continue
        groups[base].add(path)
    logs: list[LogFiles] = []
    for base in order:
        members = groups[base]
        ordered = sorted((p for p in members if p != base), key=lambda p: segment_number(p) or 0)
        if base in members:
            ordered.append(base)
        logs.append(LogFiles(base, ordered, base.with_name(base.name + ".checkpoints")))
    return logs


def iso_now() -> str:
    """UTC now as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
