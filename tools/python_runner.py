"""Run a short Python program: meant for the Docker sandbox only."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import pydantic

from runtime import tool

OUTPUT_CAP = 16 * 1024


@tool(timeout_s=20, requires_sandbox=True)
def run_python(
    code: Annotated[str, pydantic.Field(min_length=1, max_length=20_000)],
) -> dict[str, object]:
    """Run a Python 3 program and return its output and exit code.

    Args:
        code: The program's source; print what you want to see.
    """
    completed = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        timeout=15,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return {
        "exit_code": completed.returncode,
        "stdout": completed.stdout[:OUTPUT_CAP].decode("utf-8", errors="replace"),
        "stderr": completed.stderr[-OUTPUT_CAP:].decode("utf-8", errors="replace"),
    }
