"""Read and list files, confined to a workspace directory.

The root is `$AGENTRT_WORKSPACE` (default `/workspace`, where the sandbox
mounts it read-only). Paths are relative to it; anything that resolves
outside, symlinks included, is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pydantic

from runtime import tool

MAX_READ_BYTES = 64 * 1024
MAX_ENTRIES = 500

PathArg = Annotated[str, pydantic.Field(min_length=1, max_length=4096)]


class WorkspaceError(PermissionError):
    """The path is outside the workspace or not allowed."""


def workspace_root() -> Path:
    return Path(os.environ.get("AGENTRT_WORKSPACE", "/workspace")).resolve()


def resolve_in_workspace(path: str) -> Path:
    """Resolve `path` under the workspace root, refusing every way out."""
    if "\x00" in path:
        raise WorkspaceError("the path contains a NUL byte")
    if os.path.isabs(path):
        raise WorkspaceError(f"{path!r} is absolute; give a path relative to the workspace")
    root = workspace_root()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise WorkspaceError(f"{path!r} is outside the workspace")
    return target


@tool(timeout_s=10)
def read_file(path: PathArg) -> dict[str, object]:
    """Read a UTF-8 text file from the workspace.

    Args:
        path: File path relative to the workspace root, e.g. "notes/todo.txt".
    """
    target = resolve_in_workspace(path)
    if not target.is_file():
        raise FileNotFoundError(f"{path!r} is not a file in the workspace")
    data = target.read_bytes()[: MAX_READ_BYTES + 1]
    truncated = len(data) > MAX_READ_BYTES
    return {
        "path": path,
        "content": data[:MAX_READ_BYTES].decode("utf-8", errors="replace"),
        "truncated": truncated,
    }


@tool(timeout_s=10)
def list_dir(path: PathArg = ".") -> dict[str, object]:
    """List the files and directories in a workspace directory.

    Args:
        path: Directory relative to the workspace root; "." is the root.
    """
    target = resolve_in_workspace(path)
    if not target.is_dir():
        raise NotADirectoryError(f"{path!r} is not a directory in the workspace")
    entries = sorted(target.iterdir(), key=lambda p: p.name)
    listed = [
        {"name": entry.name, "type": "dir" if entry.is_dir() else "file"}
        for entry in entries[:MAX_ENTRIES]
    ]
    return {"path": path, "entries": listed, "truncated": len(entries) > MAX_ENTRIES}
