"""Retrieval-augmented generation: index documentation, search it, cite it.

- `RagIndex.build(directory)` chunks .md/.markdown/.rst/.txt files
  (heading-aware, overlapping) and embeds them offline with all-MiniLM-L6-v2;
  `save`/`load` keep it in one `.npz` file; `search` is cosine top-k.
- `format_context` / `RetrievalContext` put the hits before the user's message.
- `search_docs_tool` lets the model search on its own.

numpy and sentence-transformers load on first use (`pip install
'agent-runtime[rag]'`), so importing this package is cheap.
"""

from runtime.rag.chunking import Chunk, chunk_text, collect_files
from runtime.rag.context import RetrievalContext, format_context
from runtime.rag.embedding import Embedder, MiniLMEmbedder, RagDependencyError
from runtime.rag.index import Hit, IndexedFile, RagIndex
from runtime.rag.index_file import RagIndexError
from runtime.rag.search_tool import search_docs_tool

__all__ = [
    "Chunk",
    "Embedder",
    "Hit",
    "IndexedFile",
    "MiniLMEmbedder",
    "RagDependencyError",
    "RagIndex",
    "RagIndexError",
    "RetrievalContext",
    "chunk_text",
    "collect_files",
    "format_context",
    "search_docs_tool",
]
