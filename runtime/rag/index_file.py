"""The on-disk form of a retrieval index: one `.npz` file, read without pickle.

Two arrays: `vectors`, a float32 matrix with one L2-normalised row per chunk,
and `metadata`, UTF-8 JSON stored as a uint8 array: format and version, the
embedder's name and dimension, the chunking settings, the indexed root, a
sha256 per file, the creation time and every chunk with its citation. That
is everything needed to search the index and to rebuild it from the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import pydantic

from runtime.rag.embedding import require_numpy

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IndexMetadata",
    "RagIndexError",
    "read_index",
    "write_index",
]

FORMAT: Literal["agentrt-rag-index"] = "agentrt-rag-index"
FORMAT_VERSION = 1
ErrorKind = Literal["missing", "not_an_index", "version", "corrupt", "embedder_mismatch", "empty"]


class RagIndexError(Exception):
    """An index cannot be built, read or queried.

    Attributes:
        kind: Machine-readable reason: `missing`, `not_an_index`, `version`,
            `corrupt`, `embedder_mismatch` or `empty`.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


class _Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class ChunkRecord(_Record):
    """A chunk as stored: its citation and text."""

    source: str
    start_line: int = pydantic.Field(ge=1)
    end_line: int = pydantic.Field(ge=1)
    heading: str | None
    text: str


class FileRecord(_Record):
    """An indexed file as stored: name, content hash, size, chunk count."""

    path: str
    sha256: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    size: int = pydantic.Field(ge=0)
    chunks: int = pydantic.Field(ge=0)


class ChunkingRecord(_Record):
    """The chunking settings an index was built with."""

    max_chars: int
    overlap: int


class IndexMetadata(_Record):
    """Everything in an index file but the vectors."""

    format: Literal["agentrt-rag-index"] = FORMAT
    version: int = FORMAT_VERSION
    embedder: str
    dimension: int = pydantic.Field(ge=1)
    chunking: ChunkingRecord
    root: str
    created: str
    files: list[FileRecord]
    chunks: list[ChunkRecord]


def write_index(path: str | os.PathLike[str], vectors: Any, metadata: IndexMetadata) -> Path:
    """Write `vectors` and `metadata` to `path`, replacing it atomically; return the path."""
    numpy = require_numpy()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    blob = json.dumps(metadata.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".rag-", suffix=".npz")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            numpy.savez(
                handle,
                vectors=numpy.asarray(vectors, dtype=numpy.float32),
                metadata=numpy.frombuffer(blob.encode("utf-8"), dtype=numpy.uint8),
            )
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_index(path: str | os.PathLike[str]) -> tuple[Any, IndexMetadata]:
    """Read and check an index file: the float32 vectors and the metadata.

    Raises:
        RagIndexError: `missing`, `not_an_index`, `version` or `corrupt`, with
            a sentence saying what to do.
    """
    target = Path(path)
    if not target.is_file():
        raise RagIndexError(
            "missing",
            f"no index at {target}: build one with `agentrt rag index DIR --out {target}`",
        )
    numpy = require_numpy()
    vectors, raw = _read_arrays(numpy, target)
    metadata = _parse_metadata(target, raw)
    vectors_ok = (
        vectors.dtype == numpy.float32
        and vectors.ndim == 2
        and vectors.shape == (len(metadata.chunks), metadata.dimension)
        and bool(numpy.isfinite(vectors).all())
    )
    if not vectors_ok:
        raise RagIndexError(
            "corrupt",
            f"{target}: the vectors ({vectors.dtype}, shape {vectors.shape}) do not match "
            f"{len(metadata.chunks)} chunks of dimension {metadata.dimension}; rebuild the index",
        )
    return vectors, metadata


def _read_arrays(numpy: Any, path: Path) -> tuple[Any, Any]:
    try:
        archive = numpy.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        with path.open("rb") as handle:
            zipped = handle.read(4) == b"PK\x03\x04"
        if zipped:  # an archive that does not open: truncated or overwritten
            raise RagIndexError(
                "corrupt", f"{path} is damaged ({exc}); rebuild the index"
            ) from None
        raise RagIndexError("not_an_index", f"{path} is not a retrieval index ({exc})") from None
    if not hasattr(archive, "files"):  # a bare .npy array
        raise RagIndexError("not_an_index", f"{path} is a numpy array, not a retrieval index")
    with archive:
        if not {"vectors", "metadata"} <= set(archive.files):
            raise RagIndexError(
                "not_an_index",
                f"{path} is an .npz file without the `vectors` and `metadata` of a retrieval index",
            )
        try:
            return archive["vectors"], archive["metadata"]
        except Exception as exc:  # zlib, CRC and truncation errors all mean a damaged file
            raise RagIndexError(
                "corrupt", f"{path} is damaged ({type(exc).__name__}: {exc}); rebuild the index"
            ) from None


def _parse_metadata(path: Path, raw: Any) -> IndexMetadata:
    try:
        if raw.dtype.kind != "u" or raw.dtype.itemsize != 1 or raw.ndim != 1:
            raise ValueError(f"metadata array has dtype {raw.dtype}, shape {raw.shape}")
        body = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as exc:
        raise RagIndexError(
            "corrupt", f"{path}: unreadable metadata ({exc}); rebuild the index"
        ) from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise RagIndexError(
            "not_an_index", f"{path} is not a retrieval index (its format is not {FORMAT!r})"
        )
    if body.get("version") != FORMAT_VERSION:
        raise RagIndexError(
            "version",
            f"{path} is index format version {body.get('version')!r}; this runtime reads version "
            f"{FORMAT_VERSION}: rebuild it with `agentrt rag index`",
        )
    try:
        return IndexMetadata.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RagIndexError(
            "corrupt", f"{path}: bad metadata at {where}: {first['msg']}; rebuild the index"
        ) from None
