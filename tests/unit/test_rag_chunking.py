"""Chunking: boundaries, overlap, line numbers, headings, determinism, file discovery."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from runtime.rag.chunking import Chunk, chunk_text, collect_files, read_text, validate_chunking

SENTENCES = " ".join(f"Sentence {i:02d} is about topic {i}." for i in range(40))


def lines_of(text: str, chunk: Chunk) -> list[str]:
    return text.split("\n")[chunk.start_line - 1 : chunk.end_line]


def assert_exact_slices(text: str, chunks: list[Chunk], max_chars: int) -> None:
    """Every chunk is a verbatim slice of `text` whose line numbers are where it is."""
    for chunk in chunks:
        assert 0 < len(chunk.text) <= max_chars
        assert chunk.text == chunk.text.strip()
        span = "\n".join(lines_of(text, chunk))
        assert chunk.text in span
        assert chunk.text.count("\n") == chunk.end_line - chunk.start_line
        if chunk.end_line > chunk.start_line:
            assert span.split("\n")[0].endswith(chunk.text.split("\n")[0])
            assert span.split("\n")[-1].startswith(chunk.text.split("\n")[-1])


def test_short_document_is_one_chunk_with_its_lines_and_heading() -> None:
    text = "# Guide\n\nFirst paragraph.\n\nSecond paragraph.\n"
    assert chunk_text(text, "guide.md") == [
        Chunk("guide.md", 1, 5, "Guide", "# Guide\n\nFirst paragraph.\n\nSecond paragraph.")
    ]


def test_paragraphs_are_kept_whole_and_split_between() -> None:
    paragraphs = [("alpha " * 50).strip(), ("beta " * 50).strip(), ("gamma " * 50).strip()]
    text = "\n\n".join(paragraphs)  # 299, 249, 299 characters
    chunks = chunk_text(text, "p.txt", syntax="text", max_chars=600, overlap=0)
    assert [c.text for c in chunks] == [f"{paragraphs[0]}\n\n{paragraphs[1]}", paragraphs[2]]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 3), (5, 5)]


def test_long_paragraph_splits_at_sentences_with_overlap() -> None:
    chunks = chunk_text(SENTENCES, "s.txt", syntax="text", max_chars=200, overlap=60)
    assert len(chunks) > 4
    assert_exact_slices(SENTENCES, chunks, 200)
    for previous, following in itertools.pairwise(chunks):
        assert following.text.startswith("Sentence ")  # a sentence start, not mid-word
        shared = next(n for n in range(len(following.text), 0, -1)
                      if previous.text.endswith(following.text[:n]))  # fmt: skip
        assert 0 < shared <= 60
    assert chunks[-1].text.endswith("Sentence 39 is about topic 39.")


def test_no_overlap_covers_every_sentence_exactly_once() -> None:
    chunks = chunk_text(SENTENCES, "s.txt", syntax="text", max_chars=200, overlap=0)
    assert " ".join(c.text for c in chunks) == SENTENCES


def test_overlap_never_crosses_a_heading() -> None:
    text = "# One\n\n" + SENTENCES + "\n\n# Two\n\nShort body of two."
    chunks = chunk_text(text, "a.md", max_chars=300, overlap=100)
    two = [c for c in chunks if c.heading == "Two"]
    assert [c.text for c in two] == ["# Two\n\nShort body of two."]
    assert all("# Two" not in c.text for c in chunks if c.heading == "One")


def test_lines_and_words_split_when_no_sentence_fits() -> None:
    listing = "\n".join(f"- item {i} without a full stop" for i in range(30))
    chunks = chunk_text(listing, "l.md", max_chars=100, overlap=0)
    assert_exact_slices(listing, chunks, 100)
    assert all(c.text.startswith("- item") for c in chunks)
    word = "x" * 250
    assert [c.text for c in chunk_text(word, "w.txt", max_chars=100, overlap=0)] == [
        "x" * 100,
        "x" * 100,
        "x" * 50,
    ]


def test_headings_nearest_preamble_and_heading_only_sections() -> None:
    text = (
        "Preamble line.\n"  # 1
        "\n"
        "# Title\n"  # 3: nothing under it, joins the next section
        "\n"
        "## Install\n"  # 5
        "Run the installer.\n"
        "\n"
        "Setext heading\n"  # 8
        "--------------\n"
        "Body under setext.\n"  # 10
        "\n"
        "```python\n"  # 12
        "# a comment, not a heading\n"
        "x = 1\n"
        "```\n"
    )
    chunks = chunk_text(text, "h.md", max_chars=800, overlap=0)
    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
        (None, 1, 1),
        ("Install", 3, 6),
        ("Setext heading", 8, 15),
    ]
    assert chunks[1].text == "# Title\n\n## Install\nRun the installer."


def test_code_fence_is_one_block_and_split_by_lines_when_too_long() -> None:
    code = "```\n" + "\n".join(f"line_{i} = {i}" for i in range(12)) + "\n\nafter_blank = 1\n```"
    text = "# Code\n\n" + code
    whole = chunk_text(text, "c.md", max_chars=400, overlap=0)
    assert [c.text for c in whole] == [text]
    split = chunk_text(text, "c.md", max_chars=60, overlap=0)
    assert_exact_slices(text, split, 60)
    assert all(not c.text.startswith("ine") for c in split)  # cut at line starts


def test_rst_and_text_underlined_headings() -> None:
    rst = "=====\nTitle\n=====\n\nIntro.\n\nUsage\n-----\n\nCall it.\n"
    chunks = chunk_text(rst, "r.rst", syntax="rst")
    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
        ("Title", 1, 5),
        ("Usage", 7, 10),
    ]
    # markdown does not treat a `#` line in a .txt file as a heading
    plain = chunk_text("# not a heading\nbody", "t.txt", syntax="text")
    assert [c.heading for c in plain] == [None]


def test_front_matter_is_not_a_setext_heading() -> None:
    text = "---\ntitle: Doc\n---\n\n# Real\n\nBody."
    chunks = chunk_text(text, "f.md")
    assert [c.heading for c in chunks] == [None, "Real"]


def test_blank_documents_give_no_chunks() -> None:
    assert chunk_text("", "e.md") == []
    assert chunk_text("\n  \n\t\n", "e.md") == []
    assert chunk_text("# Only a heading\n", "e.md")[0].text == "# Only a heading"


def test_deterministic_and_crlf_normalised() -> None:
    text = "# A\r\n\r\n" + SENTENCES + "\r\n"
    first = chunk_text(read_text(text.encode()), "d.md", max_chars=150, overlap=40)
    again = chunk_text(read_text(("\ufeff" + text).encode()), "d.md", max_chars=150, overlap=40)
    assert first == again
    assert all("\r" not in c.text for c in first)


@pytest.mark.parametrize(
    ("max_chars", "overlap"), [(39, 0), (100, -1), (100, 50), (100, 80), (True, 0), (100, 1.5)]
)
def test_invalid_settings_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        validate_chunking(max_chars, overlap)
    with pytest.raises(ValueError):
        chunk_text("text", "x.txt", max_chars=max_chars, overlap=overlap)


def test_collect_files_recursive_sorted_filtered(tmp_path: Path) -> None:
    for name in ["b.md", "a/z.txt", "a/y.RST", "c.markdown", "skip.py", ".hidden.md", ".git/x.md"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text")
    root, files = collect_files(tmp_path)
    assert root == tmp_path.resolve()
    assert [f.name for f in files] == ["a/y.RST", "a/z.txt", "b.md", "c.markdown"]
    assert [f.syntax for f in files] == ["rst", "text", "markdown", "markdown"]
    root, listed = collect_files([tmp_path / "b.md", tmp_path / "a" / "z.txt"])
    assert root == tmp_path.resolve() and [f.name for f in listed] == ["a/z.txt", "b.md"]


def test_collect_files_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        collect_files(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no \.md"):
        collect_files(tmp_path)
    (tmp_path / "code.py").write_text("x = 1")
    with pytest.raises(ValueError, match=r"only \.md"):
        collect_files([tmp_path / "code.py"])
