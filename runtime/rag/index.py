"""`RagIndex`: chunks of a document tree, their embeddings, cosine top-k search.

Build one with `RagIndex.build(directory)`, keep it with `save` (one `.npz`
file, see `runtime.rag.index_file`), read it back with `RagIndex.load`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.rag.chunking import (
    DEFAULT_MAX_CHARS,
    DEFAULT_OVERLAP,
    Chunk,
    chunk_text,
    collect_files,
    read_text,
    validate_chunking,
)
from runtime.rag.embedding import MINILM_NAME, Embedder, MiniLMEmbedder, require_numpy
from runtime.rag.index_file import (
    ChunkingRecord,
    ChunkRecord,
    FileRecord,
    IndexMetadata,
    RagIndexError,
    read_index,
    write_index,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Hit", "IndexedFile", "RagIndex", "validate_search"]


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        rank: 1 for the best hit.
        score: Cosine similarity between the query and the chunk, in [-1, 1].
        source: The chunk's file, relative to the indexed root.
        start_line: First line of the chunk (1-based).
        end_line: Last line of the chunk.
        heading: Nearest heading above the chunk, if any.
        text: The chunk.
    """

    rank: int
    score: float
    source: str
    start_line: int
    end_line: int
    heading: str | None
    text: str

    @property
    def citation(self) -> str:
        """`path:start-end (heading)`, e.g. `guide/units.md:10-24 (Units)`."""
        where = f"{self.source}:{self.start_line}-{self.end_line}"
        return f"{where} ({self.heading})" if self.heading else where

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (score rounded to 4 decimals), as the `search_docs` tool returns it."""
        return {
            "rank": self.rank,
            "source": self.source,
            "lines": f"{self.start_line}-{self.end_line}",
            "heading": self.heading,
            "score": round(self.score, 4),
            "text": self.text,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class IndexedFile:
    """A file in an index: its name, content hash, size and how many chunks it gave."""

    path: str
    sha256: str
    size: int
    chunks: int


def _embedding_input(chunk: Chunk) -> str:
    """What gets embedded: the chunk, led by its heading when the heading line is not in it."""
    if chunk.heading and chunk.heading not in chunk.text.split("\n", 1)[0]:
        return f"{chunk.heading}\n\n{chunk.text}"
    return chunk.text


def validate_search(k: int, min_score: float) -> None:
    """Raise `ValueError` unless `k >= 1` and `-1 <= min_score <= 1`."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, not {k!r}")
    if (
        isinstance(min_score, bool)
        or not isinstance(min_score, int | float)
        or math.isnan(min_score)
        or not -1.0 <= min_score <= 1.0
    ):
        raise ValueError(f"min_score must be a number between -1 and 1, not {min_score!r}")


class RagIndex:
    """Chunks of a document tree and their embeddings; cosine top-k search.

    Build one with `RagIndex.build`, keep it with `save`, read it back with
    `RagIndex.load`. Searching embeds the query, so it is CPU work: call
    `search` from a thread (`asyncio.to_thread`) inside an event loop.
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        *,
        embedder_name: str,
        max_chars: int,
        overlap: int,
        files: Sequence[IndexedFile],
        root: str,
        created: str,
        embedder: Embedder | None = None,
    ) -> None:
        if embedder is not None and embedder.name != embedder_name:
            raise RagIndexError(
                "embedder_mismatch",
                f"the index was built with embedder {embedder_name!r}; queries embedded by "
                f"{embedder.name!r} would not be comparable (rebuild the index with it)",
            )
        self.chunks = tuple(chunks)
        self.vectors = vectors
        self.embedder_name = embedder_name
        self.max_chars = max_chars
        self.overlap = overlap
        self.files = tuple(files)
        self.root = root
        self.created = created
        self._embedder = embedder
        self._embedder_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def build(
        cls,
        source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        embedder: Embedder | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        overlap: int = DEFAULT_OVERLAP,
    ) -> RagIndex:
        """Chunk and embed the files under `source`.

        Args:
            source: A directory (recursive), a file, or a list of files; see `collect_files`.
            embedder: Defaults to `MiniLMEmbedder()`.
            max_chars: Longest chunk, in characters.
            overlap: Characters repeated between consecutive chunks of a section.

        Raises:
            FileNotFoundError: `source` does not exist.
            ValueError: Bad chunking settings, or no indexable file.
            RagIndexError: The files hold no text (`empty`).
            RagDependencyError: numpy or the default embedder is not installed.
        """
        validate_chunking(max_chars, overlap)
        root, sources = collect_files(source)
        numpy = require_numpy()
        chunks: list[Chunk] = []
        files: list[IndexedFile] = []
        for item in sources:
            data = item.path.read_bytes()
            found = chunk_text(
                read_text(data), item.name, syntax=item.syntax, max_chars=max_chars, overlap=overlap
            )
            chunks.extend(found)
            files.append(
                IndexedFile(item.name, hashlib.sha256(data).hexdigest(), len(data), len(found))
            )
        if not chunks:
            raise RagIndexError("empty", f"no text to index in {source}")
        embedder = embedder or MiniLMEmbedder()
        vectors = numpy.asarray(embedder.embed([_embedding_input(c) for c in chunks]))
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks) or not vectors.shape[1]:
            raise ValueError(
                f"embedder {embedder.name!r} returned shape {vectors.shape} for {len(chunks)} texts"
            )
        return cls(
            chunks,
            _normalised(vectors),
            embedder_name=embedder.name,
            max_chars=max_chars,
            overlap=overlap,
            files=files,
            root=str(root),
            created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            embedder=embedder,
        )

    def metadata(self) -> IndexMetadata:
        """Everything but the vectors, as saved in the index file."""
        return IndexMetadata(
            embedder=self.embedder_name,
            dimension=self.dimension,
            chunking=ChunkingRecord(max_chars=self.max_chars, overlap=self.overlap),
            root=self.root,
            created=self.created,
            files=[FileRecord(**dataclasses.asdict(f)) for f in self.files],
            chunks=[ChunkRecord(**dataclasses.asdict(c)) for c in self.chunks],
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to `path` (one `.npz` file, replaced atomically) and return the path."""
        return write_index(path, self.vectors, self.metadata())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, embedder: Embedder | None = None) -> RagIndex:
        """Read an index written by `save`.

        Args:
            path: The index file.
            embedder: Embeds queries; must have the name the index was built
                with. Defaults to `MiniLMEmbedder()` (loaded on the first
                search) for indexes built with it.

        Raises:
            RagIndexError: `missing`, `not_an_index`, `version`, `corrupt` or
                `embedder_mismatch`, with a sentence saying what to do.
        """
        vectors, metadata = read_index(path)
        return cls(
            [Chunk(**c.model_dump()) for c in metadata.chunks],
            vectors,
            embedder_name=metadata.embedder,
            max_chars=metadata.chunking.max_chars,
            overlap=metadata.chunking.overlap,
            files=[IndexedFile(**f.model_dump()) for f in metadata.files],
            root=metadata.root,
            created=metadata.created,
            embedder=embedder,
        )

    def search(self, query: str, k: int = 4, min_score: float = 0.3) -> list[Hit]:
        """The `k` chunks most similar to `query` whose cosine similarity is at least `min_score`.

        Args:
            query: What to look for.
            k: Most hits to return (>= 1).
            min_score: Lowest cosine similarity kept, in [-1, 1].

        Returns:
            Hits, best first (ties keep document order); empty when none scores enough.

        Raises:
            ValueError: Empty query, or `k` / `min_score` out of range.
            RagIndexError: No embedder for this index's model (`embedder_mismatch`).
        """
        validate_search(k, min_score)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("the query must be a non-empty string")
        numpy = require_numpy()
        embedded = numpy.asarray(self._query_embedder().embed([query]), dtype=numpy.float32)
        if embedded.shape != (1, self.dimension):
            raise RagIndexError(
                "embedder_mismatch",
                f"the query embedding has shape {embedded.shape}; the index holds "
                f"{self.dimension}-dimensional vectors",
            )
        scores = self.vectors @ _normalised(embedded)[0]
        order = numpy.argsort(-scores, kind="stable")[:k]
        hits: list[Hit] = []
        for position in order:
            score = float(scores[position])
            if score < min_score:
                break
            chunk = self.chunks[int(position)]
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    score=score,
                    source=chunk.source,
                    start_line=chunk.start_line,
                    end_line=chunk.end_line,
                    heading=chunk.heading,
                    text=chunk.text,
                )
            )
        return hits

    def _query_embedder(self) -> Embedder:
        with self._embedder_lock:
            if self._embedder is None:
                if self.embedder_name != MINILM_NAME:
                    raise RagIndexError(
                        "embedder_mismatch",
                        f"the index was built with embedder {self.embedder_name!r}: pass one with "
                        f"that name to RagIndex.load(path, embedder=...)",
                    )
                self._embedder = MiniLMEmbedder()
            return self._embedder


def _normalised(vectors: Any) -> Any:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    numpy = require_numpy()
    matrix = numpy.asarray(vectors, dtype=numpy.float32)
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / numpy.where(norms == 0, 1, norms)).astype(numpy.float32)
