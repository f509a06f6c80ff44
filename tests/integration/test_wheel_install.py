"""Installed from a wheel, the CLI is safe by default (issue 13, case 7).

A non-editable install used to find no `policies/` beside the package and
run every call with "allowed: no policy configured". The default policy now
ships inside the package and is the CLI's default; `--policy none` is the
only way to run without one, and a missing policy directory is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the project installed from its wheel (not editable)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: building leaves build/ and *.egg-info behind
    files = _run("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=ROOT).split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", root / "dist", source, cwd=root)  # fmt: skip
    [wheel] = (root / "dist").glob("agent_runtime-*.whl")
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=root)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", wheel, cwd=root)
    core = _run(venv / "bin" / "python", "-c", _CORE_DEPENDENCIES, wheel, cwd=root).split()
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", *core, cwd=root)
    return venv


# The wheel's own Requires-Dist entries, extras left out.
_CORE_DEPENDENCIES = """
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))
    lines = wheel.read(name).decode().splitlines()
for line in lines:
    if line.startswith('Requires-Dist:') and 'extra ==' not in line:
        print(line.split(':', 1)[1].split(';')[0].replace(' ', ''))
"""


def _clean_env() -> dict[str, str]:
    """The caller's environment without AGENTRT_* and PYTHON* (a PYTHONPATH would import a checkout)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGENTRT_", "PYTHON"))}


def _agentrt(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _clean_env()
    return subprocess.run(
        [str(venv / "bin" / "agentrt"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.docker  # the default executor is Docker, as for a user
def test_an_installed_cli_decides_with_the_shipped_policy(installed: Path, tmp_path: Path) -> None:
    where = _agentrt(installed, tmp_path, "--help")
    assert where.returncode == 0
    shown = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import runtime; print(runtime.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, check=True, env=_clean_env(),
    ).stdout  # fmt: skip
    assert str(installed) in shown and str(ROOT) not in shown  # the wheel, not this checkout

    call = ["call", "--module", "tools", "--tool", "calculate", "--args", '{"expression":"2+3"}']
    ok = _agentrt(installed, tmp_path, *call)
    payload = json.loads(ok.stdout)
    assert payload["decision"]["decision"] == "allow", payload
    assert payload["decision"]["rule_ids"] == ["allow-calculate"]
    assert payload["decision"]["policy_sha256"]
    assert (ok.returncode, payload["status"], payload["result"]) == (0, "ok", 5), ok.stderr

    shadow = _agentrt(
        installed, tmp_path, "call", "--module", "tools", "--tool", "read_file",
        "--args", '{"path": "/etc/shadow"}',
    )  # fmt: skip
    denied = json.loads(shadow.stdout)
    assert denied["status"] == "denied"
    assert "deny-paths-outside-workspace" in denied["decision"]["rule_ids"]


def test_an_installed_cli_refuses_a_missing_policy_and_opts_out_only_when_told(
    installed: Path, tmp_path: Path
) -> None:
    call = ["call", "--module", "tools", "--tool", "calculate", "--args", '{"expression":"2+3"}']
    gate = ["--sandbox", "inprocess", "--audit-log", "none"]
    missing = _agentrt(installed, tmp_path, *call, *gate, "--policy", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr

    off = _agentrt(installed, tmp_path, *call, *gate, "--policy", "none")
    payload = json.loads(off.stdout)
    assert payload["status"] == "ok"
    assert payload["decision"]["rule_ids"] == ["no-policy"]

    shipped = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "from runtime.policy.loader import default_policy_dir as d; "
         "print(sorted(p.name for p in d().rglob('*.yaml')))"],
        capture_output=True, text=True, cwd=tmp_path, check=True, env=_clean_env(),
    ).stdout  # fmt: skip
    assert "default.yaml" in shipped and "payments.yaml" in shipped  # examples and tests ship too


def test_the_installed_demo_runs_with_the_shipped_policy(installed: Path, tmp_path: Path) -> None:
    demo = _agentrt(
        installed, tmp_path, "demo", "--scripted", "--sandbox", "inprocess",
        "--audit-log", str(tmp_path / "audit.jsonl"), "--json",
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr
    report = json.loads(demo.stdout.strip().splitlines()[-1])
    shadow = next(a for a in report["answers"] if "/etc/shadow" in a["request"])
    assert shadow["calls"] == ["denied"]  # the policy, not the tool's own path check
    assert (
        report["shown"]["the policy denied a call or held it for a human (never executed)"] is True
    )
