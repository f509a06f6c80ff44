"""Split text, markdown and reStructuredText files into overlapping chunks.

Boundaries are chosen in order of preference: a heading (a chunk never spans
two sections), then a blank line between paragraphs, then a sentence end, a
line end, a space, and only as a last resort the middle of a word. A chunk is
an exact slice of the file (newlines normalised to `\\n`) of at most
`max_chars` characters; the next chunk of the same section starts up to
`overlap` characters earlier than the previous one ended, on a sentence or
word boundary, so a passage cut in two is whole in one of them. Everything
here is deterministic: the same files and settings give the same chunks.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_MAX_CHARS",
    "DEFAULT_OVERLAP",
    "SUFFIXES",
    "Chunk",
    "SourceFile",
    "chunk_text",
    "collect_files",
    "read_text",
    "validate_chunking",
]

Syntax = Literal["markdown", "rst", "text"]
SUFFIXES: dict[str, Syntax] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
    ".txt": "text",
}
DEFAULT_MAX_CHARS = 800
DEFAULT_OVERLAP = 150
MIN_MAX_CHARS = 40

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_UNDERLINE = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}[ \t]*$")
# Where a new piece of an over-long paragraph may begin, coarsest first.
_SENTENCE_STARTS = re.compile(r"[.!?][\"')\]]*\s+")
_LINE_STARTS = re.compile(r"\n")
_WORD_STARTS = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of one file, with where it came from.

    Attributes:
        source: The file's path relative to the indexed root, with `/` separators.
        start_line: First line of the passage (1-based).
        end_line: Last line of the passage (inclusive).
        heading: The nearest heading above the passage, None before the first one.
        text: The passage, an exact slice of the file.
    """

    source: str
    start_line: int
    end_line: int
    heading: str | None
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class SourceFile:
    """A file to index: where it is and the name chunks cite it by."""

    path: Path
    name: str

    @property
    def syntax(self) -> Syntax:
        return SUFFIXES.get(self.path.suffix.lower(), "text")


def validate_chunking(max_chars: int, overlap: int) -> None:
    """Raise `ValueError` unless `MIN_MAX_CHARS <= max_chars` and `0 <= overlap < max_chars / 2`."""
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be an integer >= {MIN_MAX_CHARS}, not {max_chars!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be an integer >= 0, not {overlap!r}")
    if overlap * 2 >= max_chars:
        raise ValueError(f"overlap ({overlap}) must be less than half of max_chars ({max_chars})")


def collect_files(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[Path, list[SourceFile]]:
    """The files to index and the root their names are relative to.

    Args:
        source: A directory (searched recursively for .md, .markdown, .rst and
            .txt files, skipping names that start with a dot), one file, or a
            list of files (named relative to their common parent directory).

    Returns:
        The root and the files, sorted by name.

    Raises:
        FileNotFoundError: A path does not exist.
        ValueError: A listed file has an unsupported suffix, or nothing was found.
    """
    if isinstance(source, str | os.PathLike):
        root = Path(source).resolve()
        if not root.exists():
            raise FileNotFoundError(f"{source} does not exist")
        if root.is_dir():
            files = _walk(root)
            if not files:
                raise ValueError(f"no {', '.join(SUFFIXES)} files under {source}")
            return root, files
        paths = [root]
    else:
        paths = sorted({Path(p).resolve() for p in source})
        if not paths:
            raise ValueError("no files to index")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file")
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{path}: only {', '.join(SUFFIXES)} files can be indexed")
    root = Path(os.path.commonpath([p.parent for p in paths]))
    files = [SourceFile(p, p.relative_to(root).as_posix()) for p in paths]
    return root, sorted(files, key=lambda f: f.name)


def _walk(root: Path) -> list[SourceFile]:
    files: list[SourceFile] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            path = Path(directory) / filename
            if not filename.startswith(".") and path.suffix.lower() in SUFFIXES and path.is_file():
                files.append(SourceFile(path, path.relative_to(root).as_posix()))
    return sorted(files, key=lambda f: f.name)


def read_text(data: bytes) -> str:
    """Decode a file for chunking: UTF-8 (bad bytes replaced), BOM dropped, `\\n` newlines."""
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def chunk_text(
    text: str,
    source: str,
    *,
    syntax: Syntax = "markdown",
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Split one document into chunks.

    Args:
        text: The document, newlines already normalised (see `read_text`).
        source: The name chunks cite.
        syntax: `markdown` (ATX and setext headings, fenced code kept whole
            where it fits), `rst` or `text` (underlined headings).
        max_chars: Longest chunk, in characters.
        overlap: Characters of a section's previous chunk repeated at the start of the next.

    Returns:
        The chunks in document order; none for a blank document.
    """
    validate_chunking(max_chars, overlap)
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    headings, fenced = _scan(lines, syntax)
    chunks: list[Chunk] = []
    for heading, first, body, stop in _sections(lines, headings):
        atoms: list[tuple[int, int]] = []
        if body > first:
            end = starts[body - 1] + len(lines[body - 1])
            atoms.extend(_pieces(text, starts[first], end, max_chars, fenced=False))
        for para_first, para_last in _paragraphs(lines, fenced, body, stop):
            end = starts[para_last] + len(lines[para_last])
            atoms.extend(_pieces(text, starts[para_first], end, max_chars, fenced[para_first]))
        for begin, end in _pack(text, atoms, max_chars, overlap):
            chunks.append(
                Chunk(
                    source=source,
                    start_line=bisect.bisect_right(starts, begin),
                    end_line=bisect.bisect_right(starts, end - 1),
                    heading=heading,
                    text=text[begin:end],
                )
            )
    return chunks


def _scan(lines: list[str], syntax: Syntax) -> tuple[dict[int, tuple[int, str]], list[bool]]:
    """Find headings ({first line: (body line, title)}) and lines inside code fences."""
    headings: dict[int, tuple[int, str]] = {}
    fenced = [False] * len(lines)
    fence: str | None = None
    index = 0
    if syntax == "markdown" and lines and lines[0].strip() == "---":  # YAML front matter
        closing = next(
            (i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None
        )
        if closing is not None:
            fenced[: closing + 1] = [True] * (closing + 1)
            index = closing + 1
    for i in range(index, len(lines)):
        line = lines[i]
        if syntax == "markdown":
            marker = _FENCE.match(line)
            if fence is not None:
                fenced[i] = True
                if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                    fence = None if not line.strip().strip(fence[0]) else fence
                continue
            if marker:
                fence, fenced[i] = marker.group(1), True
                continue
            atx = _ATX.match(line)
            if atx:
                headings[i] = (i + 1, (atx.group(2) or "").strip() or atx.group(1))
                continue
        title = lines[i - 1].strip() if i > 0 else ""
        if not title or fenced[i - 1] or (i - 1) in headings or _taken(headings, i - 1):
            continue
        if syntax == "markdown":
            if _SETEXT.match(line):
                headings[i - 1] = (i + 1, title)
        elif _UNDERLINE.match(line.strip()) and len(line.strip()) >= len(title):
            over = i - 2 >= 0 and lines[i - 2].strip() == line.strip()
            headings[i - 2 if over else i - 1] = (i + 1, title)
    return headings, fenced


def _taken(headings: dict[int, tuple[int, str]], line: int) -> bool:
    """Whether `line` is already part of a multi-line heading (an underline)."""
    return any(first < line < body for first, (body, _) in headings.items())


def _sections(
    lines: list[str], headings: dict[int, tuple[int, str]]
) -> list[tuple[str | None, int, int, int]]:
    """(heading, first line, first body line, end line) per section.

    A heading with nothing under it joins the section that follows, whose
    heading is then the nearest one.
    """
    firsts = sorted(headings)
    bounds: list[tuple[str | None, int, int, int]] = []
    if not firsts or firsts[0] > 0:
        bounds.append((None, 0, 0, firsts[0] if firsts else len(lines)))
    for position, first in enumerate(firsts):
        body, heading = headings[first]
        stop = firsts[position + 1] if position + 1 < len(firsts) else len(lines)
        bounds.append((heading, first, body, stop))
    sections: list[tuple[str | None, int, int, int]] = []
    pending: int | None = None
    for position, (title, first, body, stop) in enumerate(bounds):
        blank_body = not any(line.strip() for line in lines[body:stop])
        start = first if pending is None else pending
        if blank_body and title is not None and position + 1 < len(bounds):
            pending = start
            continue
        pending = None
        if title is None and blank_body:
            continue
        sections.append((title, start, body, stop))
    return sections


def _paragraphs(
    lines: list[str], fenced: list[bool], body: int, stop: int
) -> list[tuple[int, int]]:
    """(first, last) line of each run of non-blank lines; a code fence is one run."""
    runs: list[tuple[int, int]] = []
    first: int | None = None
    for i in range(body, stop):
        blank = not lines[i].strip() and not fenced[i]
        boundary = first is not None and fenced[i] != fenced[i - 1]
        if first is not None and (blank or boundary):
            runs.append((first, _last_nonblank(lines, first, i)))
            first = None
        if first is None and lines[i].strip():
            first = i
    if first is not None:
        runs.append((first, _last_nonblank(lines, first, stop)))
    return runs


def _last_nonblank(lines: list[str], first: int, stop: int) -> int:
    last = stop - 1
    while last > first and not lines[last].strip():
        last -= 1
    return last


def _pieces(text: str, start: int, end: int, max_chars: int, fenced: bool) -> list[tuple[int, int]]:
    """Trimmed spans of at most `max_chars` covering text[start:end], cut at the coarsest boundary."""
    start, end = _trim(text, start, end)
    if start >= end:
        return []
    if end - start <= max_chars:
        return [(start, end)]
    levels = (
        [_LINE_STARTS, _WORD_STARTS] if fenced else [_SENTENCE_STARTS, _LINE_STARTS, _WORD_STARTS]
    )
    return _split(text, start, end, max_chars, levels)


def _split(
    text: str, start: int, end: int, max_chars: int, levels: list[re.Pattern[str]]
) -> list[tuple[int, int]]:
    if not levels:  # one word longer than a chunk: cut it
        return [(s, min(s + max_chars, end)) for s in range(start, end, max_chars)]
    cuts = [m.end() for m in levels[0].finditer(text, start, end) if m.end() < end]
    spans: list[tuple[int, int]] = []
    for begin, stop in zip([start, *cuts], [*cuts, end], strict=True):
        begin, stop = _trim(text, begin, stop)
        if begin >= stop:
            continue
        if stop - begin <= max_chars:
            spans.append((begin, stop))
        else:
            spans.extend(_split(text, begin, stop, max_chars, levels[1:]))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pack(
    text: str, atoms: list[tuple[int, int]], max_chars: int, overlap: int
) -> list[tuple[int, int]]:
    """Join consecutive atoms into spans of at most `max_chars`, each new span starting with overlap."""
    spans: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for atom_start, atom_end in atoms:
        if current is None:
            current = (atom_start, atom_end)
        elif atom_end - current[0] <= max_chars:
            current = (current[0], atom_end)
        else:
            spans.append(current)
            begin = _overlap_start(text, current, atom_start, atom_end, max_chars, overlap)
            current = (begin, atom_end)
    if current is not None:
        spans.append(current)
    return spans


def _overlap_start(
    text: str,
    previous: tuple[int, int],
    atom_start: int,
    atom_end: int,
    max_chars: int,
    overlap: int,
) -> int:
    """Where the next chunk starts: inside the previous one, at a sentence start if possible."""
    low = max(previous[1] - overlap, atom_end - max_chars, previous[0] + 1)
    if low >= previous[1]:
        return atom_start
    for pattern in (_SENTENCE_STARTS, _LINE_STARTS, _WORD_STARTS):
        for match in pattern.finditer(text, low - 1, previous[1]):
            begin = match.end()
            if low <= begin < previous[1] and not text[begin].isspace():
                return begin
    return atom_start
