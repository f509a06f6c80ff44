"""The runtime's modules import each other without loops.

Imports inside functions count too: a deferred import that closes a loop only
hides it until someone moves the import to the top of the file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import runtime

ROOT = Path(runtime.__file__).parent


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The runtime modules `path` imports (`from pkg import submodule` names the submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in modules
                else node.module
                for alias in node.names
            ]
        found.update(name for name in names if name in modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _graph(group: int | None = None) -> dict[str, set[str]]:
    """Module import edges; with `group`, collapsed to the first `group` name parts."""
    modules = _modules()

    def key(name: str) -> str:
        return name if group is None else ".".join(name.split(".")[:group])

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        for imported in _imports(path, modules):
            # A package's own __init__ importing its submodules is not a loop.
            if imported.startswith(name + ".") or name.startswith(imported + "."):
                continue
            if key(name) != key(imported):
                graph.setdefault(key(name), set()).add(key(imported))
    return graph


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_top_level_parts_form_layers() -> None:
    # e.g. runtime.tools <-> runtime.sandbox: tools declare what they need of a
    # sandbox, the sandbox package runs tools.
    assert _cycles(_graph(group=2)) == []


def test_the_graph_sees_deferred_imports() -> None:
    modules = _modules()
    # LocalTarget.serve imports the server inside the function: still an edge.
    assert "runtime.model.local_server" in _imports(ROOT / "finetune" / "eval_targets.py", modules)
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_tools_import_nothing_of_the_sandbox() -> None:
    code = (
        "import sys, runtime.tools\n"
        "print(sorted(m for m in sys.modules if m.startswith('runtime.sandbox')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
