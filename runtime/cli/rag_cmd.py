"""`agentrt rag`: build a retrieval index from a documentation tree and query it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rag",
        help="index documentation for retrieval and search it",
        description=(
            "Chunk .md/.markdown/.rst/.txt files (heading-aware, overlapping), embed them "
            "offline with all-MiniLM-L6-v2 into one index file, and search it."
        ),
    )
    actions = parser.add_subparsers(dest="rag_command", metavar="ACTION", required=True)

    index = actions.add_parser("index", help="build an index from a directory")
    index.add_argument("source", type=Path, metavar="DIR", help="directory (recursive) or file")
    index.add_argument(
        "--out", type=Path, required=True, metavar="INDEX", help="index file to write"
    )
    index.add_argument("--max-chars", type=int, default=800, help="longest chunk (default 800)")
    index.add_argument(
        "--overlap", type=int, default=150, help="characters repeated between chunks (default 150)"
    )
    index.set_defaults(handler=_index)

    query = actions.add_parser("query", help="search an index")
    query.add_argument("index", type=Path, metavar="INDEX", help="index file from `rag index`")
    query.add_argument("question", help="what to look for")
    query.add_argument("--k", type=int, default=4, help="most hits (default 4)")
    query.add_argument(
        "--min-score", type=float, default=0.3, help="lowest cosine similarity (default 0.3)"
    )
    query.add_argument("--json", action="store_true", help="print one JSON object")
    query.set_defaults(handler=_query)


def _fail(exc: BaseException) -> int:
    print(f"agentrt rag: {exc}", file=sys.stderr)
    return 2


def _index(args: argparse.Namespace) -> int:
    from runtime.rag import RagIndex, RagIndexError

    started = time.perf_counter()
    try:
        built = RagIndex.build(args.source, max_chars=args.max_chars, overlap=args.overlap)
        path = built.save(args.out)
    except (RagIndexError, ValueError, OSError, ImportError) as exc:
        return _fail(exc)
    elapsed = time.perf_counter() - started
    print(
        f"indexed {len(built)} chunks from {len(built.files)} files in {elapsed:.2f} s "
        f"({len(built) / elapsed:.1f} chunks/s, model load included) with {built.embedder_name}"
    )
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


def _query(args: argparse.Namespace) -> int:
    from runtime.rag import RagIndex, RagIndexError

    try:
        index = RagIndex.load(args.index)
        hits = index.search(args.question, k=args.k, min_score=args.min_score)
    except (RagIndexError, ValueError, OSError, ImportError) as exc:
        return _fail(exc)
    if args.json:
        body = {
            "query": args.question,
            "index": str(args.index),
            "min_score": args.min_score,
            "hits": [hit.to_dict() for hit in hits],
        }
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    if not hits:
        print(f"no passage scored at least {args.min_score:g}")
        return 0
    for hit in hits:
        print(f"[{hit.rank}] {hit.score:.3f}  {hit.citation}")
        preview = " ".join(hit.text.split())
        print(f"    {preview[:197] + '...' if len(preview) > 200 else preview}")
    return 0
