"""Verify an audit log: hash chain, sequence, signed checkpoints, torn tails.

`verify()` streams every file of a log once (never loading it whole) and
checks, per record, that its `hash` matches its bytes, that `seq` is the
previous one plus one and that `prev_hash` is the previous record's hash;
then that every HMAC-signed checkpoint is authentic and matches the record it
names, and that no checkpoint covers records the log no longer has.

What it reports, and how it is classified:

- **problems** (tampering or corruption; `ok` is false): `edited` (a record's
  bytes do not match its hash), `rewritten` (a record was changed and
  re-hashed, or a run of records was rewritten up to a checkpoint),
  `deleted`, `swapped`, `inserted`, `reordered`, `malformed`, `truncated`
  (the log ends before its last checkpoint), `missing_head` (the first
  records or rotated segments are gone), `forged_checkpoint` (bad HMAC),
  `checkpoint_gap`, `malformed_checkpoint`.
- **notices** (not tampering): `torn_tail` (a final line cut short by a crash
  mid-append), `recovered` (a writer reopened the log after such a crash),
  `unanchored_tail` (records after the last checkpoint; a truncation there
  cannot be detected), `unclean_close`, `no_key` (checkpoint signatures not
  checked).

The first problem names the first bad record (its `seq`, file and line).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import pydantic

from runtime.audit.events import Event
from runtime.audit.records import (
    GENESIS_HASH_BYTES,
    Checkpoint,
    LogFiles,
    canonical_json,
    derive_key,
    discover_logs,
    key_id,
    resolve_hmac_key,
    split_line,
)

__all__ = ["Finding", "VerifyReport", "verify"]

_MAX_PROBLEMS = 100
_READ_BUFFER = 1 << 20
_RECOVERED = b'{"event":"' + Event.AUDIT_RECOVERED.encode("ascii") + b'",'


class Finding(pydantic.BaseModel):
    """One problem or notice, located as precisely as the log allows."""

    kind: str
    message: str
    path: str | None = None
    line: int | None = None
    seq: int | None = None


class VerifyReport(pydantic.BaseModel):
    """The outcome of `verify()`.

    Attributes:
        ok: No problem found (notices may still be present).
        records: Records read.
        files: Log files read, in chain order.
        first_seq: Sequence number of the first record read.
        last_seq: ... and of the last complete record.
        last_hash: The last complete record's hash.
        checkpoints: Checkpoints read.
        checkpoints_authenticated: Whether an HMAC key was available.
        problems: Tampering or corruption, first one first.
        notices: Findings that are not tampering (torn tail, ...).
        elapsed_s: Wall time of the verification.
    """

    ok: bool
    records: int
    files: list[str]
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints: int = 0
    checkpoints_authenticated: bool = False
    problems: list[Finding] = pydantic.Field(default_factory=list)
    notices: list[Finding] = pydantic.Field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def first_problem(self) -> Finding | None:
        return self.problems[0] if self.problems else None

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Entry(NamedTuple):
    path: str
    line_no: int
    seq: int
    prev_hash: bytes
    hash: bytes
    hash_ok: bool


_new_tuple: Any = tuple.__new__  # C-level NamedTuple construction (hot path)


def verify(
    paths: Iterable[str | os.PathLike[str]],
    *,
    key: bytes | str | None = None,
    strict: bool = False,
) -> VerifyReport:
    """Verify one or more audit logs.

    Args:
        paths: Active log files (their rotated segments and checkpoint file
            are found next to them) and/or individual segments.
        key: The audit HMAC master key; default `$AGENTRT_AUDIT_HMAC_KEY`,
            else the log's `.key` file. Without one, checkpoint signatures are
            not checked (a `no_key` notice).
        strict: Also parse every line and check it is the canonical JSON of
            a well-formed record (several times slower).

    Raises:
        FileNotFoundError: A given path does not exist.
    """
    started = time.perf_counter()
    logs = discover_logs(paths)
    for log in logs:
        for path in log.files:
            if not path.exists():
                raise FileNotFoundError(f"no such audit log: {path}")
    report = VerifyReport(ok=True, records=0, files=[])
    for log in logs:
        _LogVerifier(log, key, strict, report).run()
    report.ok = not report.problems
    report.elapsed_s = time.perf_counter() - started
    return report


def _finding(
    kind: str,
    message: str,
    entry: _Entry | None,
    path: str | None,
    line: int | None,
    seq: int | None,
) -> Finding:
    if entry is not None:
        path = path or entry.path
        line = line or entry.line_no
        seq = entry.seq if seq is None else seq
    return Finding(kind=kind, message=message, path=path, line=line, seq=seq)


class _LogVerifier:
    """Verifies one log; findings go into the shared report."""

    def __init__(
        self, log: LogFiles, key: bytes | str | None, strict: bool, report: VerifyReport
    ) -> None:
        self.log = log
        self.strict = strict
        self.report = report
        self.master = resolve_hmac_key(log.base, key, create=False)
        self.checkpoints: dict[int, list[tuple[int, Checkpoint]]] = {}
        self.last_checkpoint: Checkpoint | None = None
        self.last_good_checkpoint_seq = 0
        self.torn: Finding | None = None

    # -- findings -------------------------------------------------------------

    def problem(
        self,
        kind: str,
        message: str,
        entry: _Entry | None = None,
        *,
        path: str | None = None,
        line: int | None = None,
        seq: int | None = None,
    ) -> None:
        if len(self.report.problems) < _MAX_PROBLEMS:
            self.report.problems.append(_finding(kind, message, entry, path, line, seq))

    def notice(
        self,
        kind: str,
        message: str,
        entry: _Entry | None = None,
        *,
        path: str | None = None,
        line: int | None = None,
        seq: int | None = None,
    ) -> None:
        self.report.notices.append(_finding(kind, message, entry, path, line, seq))

    # -- checkpoints ----------------------------------------------------------

    def load_checkpoints(self) -> None:
        path = self.log.checkpoints
        if not path.exists():
            return
        report = self.report
        checkpoint_key = derive_key(self.master, "checkpoint") if self.master else None
        report.checkpoints_authenticated = checkpoint_key is not None
        expected_n = 1
        with open(path, "rb") as handle:
            lines = list(handle)  # one line per thousand records: small
        for line_no, line in enumerate(lines, 1):
            cp_name = str(path)
            if not line.endswith(b"\n") and line_no == len(lines):
                self.notice(
                    "torn_tail",
                    "the checkpoint file ends in a torn line",
                    path=cp_name,
                    line=line_no,
                )
                break
            try:
                checkpoint = Checkpoint.model_validate_json(line)
            except pydantic.ValidationError:
                self.problem(
                    "malformed_checkpoint",
                    "not a valid checkpoint line",
                    path=cp_name,
                    line=line_no,
                )
                continue
            report.checkpoints += 1
            if checkpoint_key is not None and not checkpoint.mac_ok(checkpoint_key):
                ours = key_id(self.master) if self.master else "?"
                self.problem(
                    "forged_checkpoint",
                    f"checkpoint #{checkpoint.n} (seq={checkpoint.seq}) has an invalid signature: "
                    f"forged or edited (it names key {checkpoint.key_id}; the key given is {ours})",
                    seq=checkpoint.seq,
                    path=cp_name,
                    line=line_no,
                )
                expected_n = checkpoint.n + 1
                continue
            if checkpoint.n != expected_n:
                self.problem(
                    "checkpoint_gap",
                    f"checkpoint #{checkpoint.n} follows #{expected_n - 1}: "
                    "checkpoint lines were deleted",
                    seq=checkpoint.seq,
                    path=cp_name,
                    line=line_no,
                )
            expected_n = checkpoint.n + 1
            self.checkpoints.setdefault(checkpoint.seq, []).append((line_no, checkpoint))
            if self.last_checkpoint is None or checkpoint.seq >= self.last_checkpoint.seq:
                self.last_checkpoint = checkpoint
        if checkpoint_key is None and report.checkpoints:
            self.notice(
                "no_key",
                "no HMAC key: checkpoint signatures were not checked "
                "(set AGENTRT_AUDIT_HMAC_KEY or pass --key-file)",
                path=str(path),
            )

    # -- the chain ------------------------------------------------------------

    def entries(self) -> Iterator[_Entry]:
        files = self.log.files
        for index, path in enumerate(files):
            name = str(path)
            self.report.files.append(name)
            last_file = index == len(files) - 1
            with open(path, "rb", buffering=_READ_BUFFER) as handle:
                for line_no, line in enumerate(handle, 1):
                    if line[-1:] != b"\n":
                        if last_file:
                            self.torn = Finding(
                                kind="torn_tail",
                                message=f"the final line ({len(line)} bytes) is incomplete: "
                                "the writer crashed mid-append; not tampering",
                                path=name,
                                line=line_no,
                            )
                        else:
                            self.problem(
                                "malformed",
                                "a rotated segment ends in an incomplete line",
                                path=name,
                                line=line_no,
                            )
                        continue
                    parts = split_line(line)
                    if parts is None:
                        self.problem("malformed", "not an audit record", path=name, line=line_no)
                        continue
                    if self.strict:
                        self.check_strict(line, name, line_no)
                    if line.startswith(_RECOVERED):
                        self.notice(
                            "recovered",
                            "a writer reopened the log after a crash and recorded it here",
                            path=name,
                            line=line_no,
                            seq=parts.seq,
                        )
                    yield _new_tuple(_Entry, (name, line_no, *parts))

    def check_strict(self, line: bytes, name: str, line_no: int) -> None:
        try:
            record = json.loads(line)
            claimed = record.pop("hash")
            ok = set(record) == {"event", "fields", "prev_hash", "seq", "ts"} and isinstance(
                record["fields"], dict
            )
            ok = ok and hashlib.sha256(canonical_json(record)).hexdigest() == claimed
        except (ValueError, KeyError, AttributeError):
            ok = False
        if not ok:
            self.problem("malformed", "not the canonical JSON of a record", path=name, line=line_no)

    def run(self) -> None:
        self.load_checkpoints()
        stream = self.entries()
        pending: list[_Entry] = []

        def take() -> _Entry | None:
            return pending.pop() if pending else next(stream, None)

        def peek() -> _Entry | None:
            if not pending:
                upcoming = next(stream, None)
                if upcoming is None:
                    return None
                pending.append(upcoming)
            return pending[-1]

        last_hash = before_last = GENESIS_HASH_BYTES
        previous: _Entry | None = None
        expected = 0  # 0: take the first record's seq
        count = 0
        checkpoints = self.checkpoints
        # The common path (hash ok, next seq, chained, no checkpoint here) is
        # three comparisons; everything else is classified out of line.
        while True:
            entry = pending.pop() if pending else next(stream, None)
            if entry is None:
                break
            count += 1
            seq = entry.seq
            if (
                entry.hash_ok
                and seq == expected
                and entry.prev_hash == last_hash
                and seq not in checkpoints
            ):
                before_last, last_hash = last_hash, entry.hash
                expected = seq + 1
                previous = entry
                continue
            if not entry.hash_ok:
                self.problem(
                    "edited",
                    f"record seq={entry.seq} was modified: its hash does not match its content",
                    entry,
                )
            if expected == 0:
                self.check_head(entry)
            elif entry.seq != expected or entry.prev_hash != last_hash:
                action = self.classify(entry, peek(), expected, last_hash, before_last, previous)
                if action == "skip":
                    continue
                if action == "swap":
                    following = take()
                    assert following is not None
                    count += 1
                    if not following.hash_ok:
                        self.problem("edited", "record was modified", following)
                    for swapped in (following, entry):
                        if swapped.seq in checkpoints:
                            self.check_checkpoints(swapped)
                    before_last, last_hash = following.hash, entry.hash
                    expected, previous = entry.seq + 1, entry
                    continue
            elif entry.seq in checkpoints:
                upcoming = peek()
                if self.is_intruder(entry, upcoming, last_hash):
                    continue
            if entry.seq in checkpoints:
                self.check_checkpoints(entry)
            before_last, last_hash = last_hash, entry.hash
            expected = max(expected, entry.seq + 1)
            previous = entry
        self.report.records += count
        if count:
            self.report.last_seq = expected - 1
            self.report.last_hash = last_hash.decode("ascii", "replace")
        self.finish(expected - 1 if count else 0)

    def check_head(self, entry: _Entry) -> None:
        if self.report.first_seq is None:
            self.report.first_seq = entry.seq
        if entry.seq != 1 or entry.prev_hash != GENESIS_HASH_BYTES:
            self.problem(
                "missing_head",
                f"the log starts at seq={entry.seq}: records 1..{entry.seq - 1} "
                "(or the rotated segments holding them) are missing",
                entry,
            )

    def is_intruder(self, entry: _Entry, upcoming: _Entry | None, last_hash: bytes) -> bool:
        """True (and reported) when the next line is the real record `entry` claims to be."""
        if upcoming is None or upcoming.seq != entry.seq or upcoming.prev_hash != last_hash:
            return False
        self.problem(
            "inserted",
            f"this record (claiming seq={entry.seq}) was inserted: the next line is the "
            f"real seq={entry.seq} and chains to seq={entry.seq - 1}",
            entry,
        )
        return True

    def classify(
        self,
        entry: _Entry,
        upcoming: _Entry | None,
        expected: int,
        last_hash: bytes,
        before_last: bytes,
        previous: _Entry | None,
    ) -> str:
        """Name what broke the chain at `entry`: returns `advance`, `skip` or `swap`."""
        seq = entry.seq
        if seq > expected:
            if (
                upcoming is not None
                and upcoming.seq == expected
                and upcoming.prev_hash == last_hash
            ):
                self.problem(
                    "swapped",
                    f"records seq={expected} and seq={seq} are in swapped order",
                    entry,
                    seq=expected,
                )
                return "swap"
            missing = f"seq={expected}" if seq == expected + 1 else f"seq={expected}..{seq - 1}"
            self.problem(
                "deleted",
                f"record {missing} is missing (deleted) before seq={seq}",
                entry,
                seq=expected,
            )
            return "advance"
        if seq < expected:
            if seq == expected - 1 and entry.prev_hash == before_last and previous is not None:
                self.problem(
                    "inserted",
                    f"the record before this one (claiming seq={seq}) was inserted: "
                    f"the real seq={seq} follows it and chains to seq={seq - 1}",
                    previous,
                )
                return "advance"
            self.problem(
                "reordered",
                f"record seq={seq} appears after seq={expected - 1}: "
                "records were inserted, duplicated or moved",
                entry,
            )
            return "advance"
        if self.is_intruder(entry, upcoming, last_hash):
            return "skip"
        self.problem(
            "rewritten",
            f"record seq={seq - 1} was altered and its hash recomputed: record seq={seq} "
            "does not chain to it",
            previous or entry,
            seq=seq - 1,
        )
        return "advance"

    def check_checkpoints(self, entry: _Entry) -> None:
        for line_no, checkpoint in self.checkpoints[entry.seq]:
            if checkpoint.hash.encode("ascii") == entry.hash:
                self.last_good_checkpoint_seq = entry.seq
                continue
            first = self.last_good_checkpoint_seq + 1
            self.last_good_checkpoint_seq = entry.seq  # report each span once
            self.problem(
                "rewritten",
                f"one or more records in seq={first}..{entry.seq} were altered and the chain "
                f"re-hashed: signed checkpoint #{checkpoint.n} (checkpoints line {line_no}) "
                f"vouches for another hash at seq={entry.seq}",
                entry,
                seq=first,
            )

    def finish(self, last_seq: int) -> None:
        checkpoint = self.last_checkpoint
        if self.torn is not None:
            self.report.notices.append(self.torn)
        if checkpoint is None:
            if last_seq:
                self.notice(
                    "unanchored_tail",
                    "no signed checkpoint: truncation of this log cannot be detected",
                    path=str(self.log.base),
                )
            return
        if checkpoint.seq > last_seq:
            self.problem(
                "truncated",
                f"the log ends at seq={last_seq} but signed checkpoint #{checkpoint.n} covers "
                f"seq={checkpoint.seq}: records {last_seq + 1}..{checkpoint.seq} were removed",
                path=str(self.log.files[-1]) if self.log.files else None,
                seq=last_seq + 1,
            )
            return
        if checkpoint.seq < last_seq:
            self.notice(
                "unanchored_tail",
                f"{last_seq - checkpoint.seq} records after the last signed checkpoint "
                f"(seq={checkpoint.seq}) are chained but not anchored: removal of them "
                "could not be detected",
                seq=checkpoint.seq + 1,
            )
        if checkpoint.reason != "close" or checkpoint.seq != last_seq:
            self.notice(
                "unclean_close",
                "the log was not closed cleanly (the writer crashed or is still running)",
                path=str(self.log.base),
            )
