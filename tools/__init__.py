"""Built-in tools: safe arithmetic, unit conversion, workspace files, a Python runner.

Import them, copy them, or point `--module tools` at this package.
"""

from tools.calculator import calculate
from tools.python_runner import run_python
from tools.units import convert_units
from tools.workspace import list_dir, read_file

__all__ = ["calculate", "convert_units", "list_dir", "read_file", "run_python"]
