"""`search_docs`: a built-in tool through which the model searches a retrieval index."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

import pydantic

from runtime.rag.index import RagIndex, validate_search
from runtime.tools import Tool, tool

__all__ = ["MAX_QUERY_CHARS", "search_docs_tool"]

MAX_QUERY_CHARS = 500
QueryArg = Annotated[str, pydantic.Field(min_length=1, max_length=MAX_QUERY_CHARS)]


def search_docs_tool(
    index: RagIndex,
    *,
    k: int = 4,
    min_score: float = 0.3,
    name: str = "search_docs",
    description: str | None = None,
    timeout_s: float = 30.0,
) -> Tool:
    """A tool that searches `index` and returns the best passages with their sources.

    The tool runs in this process under every executor (`runs_on_host=True`):
    the index and the embedder live here, not in a sandbox. Embedding the query
    runs in a worker thread, so the event loop stays free.

    Args:
        index: The index to search.
        k: Most passages per call.
        min_score: Lowest cosine similarity returned.
        name: The tool's name as the model sees it.
        description: Defaults to the function's docstring summary.
        timeout_s: Per-call limit; the first call may load the embedding model (~5 s).

    Returns:
        A `Tool` with one argument, `query`, returning a list of
        `{rank, source, lines, heading, score, text}` dicts, best first.
    """
    validate_search(k, min_score)

    @tool(name=name, description=description, timeout_s=timeout_s)
    async def search_docs(query: QueryArg) -> list[dict[str, Any]]:
        """Search the documentation; returns the most relevant passages with file, lines and score.

        Args:
            query: What to look for, in words, e.g. "which units can convert_units convert".
        """
        hits = await asyncio.to_thread(index.search, query, k=k, min_score=min_score)
        return [hit.to_dict() for hit in hits]

    return dataclasses.replace(search_docs, runs_on_host=True)
