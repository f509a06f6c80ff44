"""Load a tool module from a dotted name or a `.py` path, the way `--module` reads it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


class ModuleLoadError(ImportError):
    """The module named by `--module` cannot be imported; the message says why."""


def module_name_for_path(path: Path) -> str:
    """The name a file is imported under: its stem, unless that would shadow a module."""
    stem = path.stem
    existing = sys.modules.get(stem)
    if existing is None or getattr(existing, "__file__", None) == str(path):
        return stem
    return f"agentrt_tools_{stem}"


def load_module(spec: str, *, name: str | None = None) -> ModuleType:
    """Import `spec`: a dotted module name, or a path to a `.py` file anywhere.

    A file's directory is appended to `sys.path` so it can import its siblings.

    Args:
        spec: `tools`, `my_pkg.tools`, or `path/to/tools.py`.
        name: Module name to give a file (the sandbox re-imports under the
            host's name).

    Raises:
        ModuleLoadError: The module does not exist or fails to import.
    """
    if spec.endswith(".py") or "/" in spec or spec.startswith("."):
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ModuleLoadError(f"no such tool module file: {spec}")
        module_name = name or module_name_for_path(path)
        if module_name in sys.modules and getattr(
            sys.modules[module_name], "__file__", None
        ) == str(path):
            return sys.modules[module_name]
        import_spec = importlib.util.spec_from_file_location(module_name, path)
        if import_spec is None or import_spec.loader is None:
            raise ModuleLoadError(f"cannot import {spec} as a Python module")
        module = importlib.util.module_from_spec(import_spec)
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        sys.modules[module_name] = module
        try:
            import_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise ModuleLoadError(
            f"cannot import module {spec!r} ({exc}); give a dotted module on the Python path "
            f"or a path to a .py file"
        ) from None
