"""The shipped general adapter on the real embedded model server, with tools it never saw.

The requests below were written for this test, for tools that exist nowhere in
the training catalog; the bare 135M model makes none of these calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from runtime import ToolRegistry, tool
from runtime.finetune.eval_runner import predict
from runtime.finetune.evaluate import EvalItem, ExpectedCall, score_item
from runtime.model.adapters import general_adapter_gguf
from runtime.model.local_server import LocalModelServer, local_server_available

pytestmark = [pytest.mark.model]


@tool
def water_plant(plant: Literal["fern", "cactus", "basil", "orchid"], millilitres: int) -> str:
    """Water one of the balcony plants.

    Args:
        plant: Which plant.
        millilitres: How much water, in millilitres.
    """
    return "watered"


@tool
def find_lyrics(title: str, artist: str = "") -> str:
    """Find the lyrics of a song.

    Args:
        title: The song's title.
        artist: Who sings it, if known.
    """
    return "la la la"


TOOLS = ToolRegistry([water_plant, find_lyrics]).openai_schemas()


def _item(ident: str, request: str, *calls: tuple[str, dict[str, object]]) -> EvalItem:
    expected = [ExpectedCall.exact(name, args) for name, args in calls]
    category = "single" if expected else "no_tool"
    return EvalItem(ident, [{"role": "user", "content": request}], TOOLS, expected, category)


ITEMS = [
    _item("w1", "water the basil with 200 millilitres", ("water_plant", {"plant": "basil", "millilitres": 200})),
    _item("w2", "Can you give the fern 150 millilitres of water?", ("water_plant", {"plant": "fern", "millilitres": 150})),
    _item("l1", "find the lyrics of Yellow Submarine", ("find_lyrics", {"title": "Yellow Submarine"})),
    _item("l2", "I need the lyrics for Hallelujah by Leonard Cohen", ("find_lyrics", {"title": "Hallelujah", "artist": "Leonard Cohen"})),
    _item("n1", "hi! how's your day going?"),
    _item("n2", "What is the capital of Italy?"),
]  # fmt: skip


@pytest.fixture(scope="module")
def adapter_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    if not local_server_available():
        pytest.fail("the embedded model server is not installed (scripts/test.sh installs it)")
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LocalModelServer(adapter=general_adapter_gguf(verify=True), log_path=log)
    server.start(timeout_s=180)
    yield server
    server.stop()


async def test_unseen_tools_are_called_right_and_chit_chat_gets_no_call(
    adapter_server: LocalModelServer,
) -> None:
    predictions = await predict(
        adapter_server.base_url, adapter_server.model_alias, ITEMS, max_tokens=96, progress=False
    )
    scores = {item.id: score_item(item, p) for item, p in zip(ITEMS, predictions, strict=True)}
    seen = [(p.text, p.calls) for p in predictions]
    calls = [scores[i] for i in ("w1", "w2", "l1", "l2")]
    chat = [scores[i] for i in ("n1", "n2")]
    # What the adapter does today (bench/results/heldout_*.json has the full figures): every
    # request for a tool gets a well-formed call to a tool from the list, at least one of them
    # fully right, and chit-chat gets none. The bare model makes no call at all.
    names = {"water_plant", "find_lyrics"}
    for prediction in predictions[:4]:
        assert prediction.calls and {c.name for c in prediction.calls} <= names, seen
    assert all(s.well_formed for s in calls), seen
    assert sum(s.full_call for s in calls) >= 1, seen
    assert all(s.correct for s in chat), seen


MODULE = '''
from typing import Literal
from runtime import tool


@tool
def water_plant(plant: Literal["fern", "cactus", "basil", "orchid"], millilitres: int) -> str:
    """Water one of the balcony plants.

    Args:
        plant: Which plant.
        millilitres: How much water, in millilitres.
    """
    return f"gave the {plant} {millilitres} ml"
'''


def test_agentrt_run_uses_the_embedded_model_with_the_general_adapter(tmp_path: Path) -> None:
    module = tmp_path / "balcony.py"
    module.write_text(MODULE)
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "run", "--module", str(module), "--policy", "none",
         "--sandbox", "inprocess", "--audit-log", str(tmp_path / "audit.jsonl"), "--json",
         "water the basil with 200 millilitres"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    result = json.loads(done.stdout)
    calls = [(c["tool"], c["status"]) for c in result["tool_calls"]]
    # the embedded model (with the adapter) proposed the module's tool and the gate judged it;
    # whether its arguments are right is the model's business, measured by bench/heldout
    assert calls and calls[0][0] == "water_plant", (calls, result["status"], result.get("error"))
    assert {status for _, status in calls} <= {"ok", "invalid_arguments"}, calls
    assert result["status"] in ("completed", "max_turns", "retries_exhausted"), result
    from runtime.audit.verify import verify

    assert verify([tmp_path / "audit.jsonl"]).ok


def test_agentrt_run_refuses_embedded_flags_it_cannot_use(tmp_path: Path) -> None:
    for flags, message in (
        (["--model", "x"], "give --base-url too"),
        (["--adapter", str(tmp_path / "missing.gguf")], "no such file"),
        (["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--base"], "not with --base-url"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "runtime", "run", "--module", "tools", *flags, "hi"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 2 and message in done.stderr, (flags, done.stderr)
        assert "Traceback" not in done.stderr
