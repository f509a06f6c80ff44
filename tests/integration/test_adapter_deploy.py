"""`agentrt adapter deploy|list|rollback|restore` and `run --model NAME` against a scripted vLLM.

The scripted server loads and unloads adapters as vLLM does and answers a
loaded adapter with the behaviour registered for its directory, so a version
is measured by what its files do, whatever name it is loaded under. Every test
also checks that no request went to a model name the server had not loaded.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main
from runtime.deploy.registry import SQLAdapterRegistry, VersionStatus, open_registry
from runtime.deploy.resolve import DeployedModel
from runtime.finetune.evaluate import EvalItem, ExpectedCall
from runtime.model.client import OpenAICompatibleClient
from runtime.prompting.similar_requests import HEADER as SIMILAR_HEADER
from runtime.testing import ScriptedReply, ScriptedServer
from tests.adapter_fixtures import make_adapter, make_base

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up a city's timezone.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "date": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
CITIES = ["Paris", "Oslo", "Lima", "Pune", "Kyiv", "Rome", "Baku", "Doha"]
CHATS = ["Write a haiku.", "Say hi.", "Thanks!", "How are you?", "Tell a joke.",
         "What is love?", "Good night.", "Explain rain."]  # fmt: skip
ITEMS = [
    EvalItem(f"c{i}", [{"role": "user", "content": f"Timezone of {city}?"}], TOOLS,
             [ExpectedCall.exact("lookup", {"city": city})], "single")
    for i, city in enumerate(CITIES)
] + [
    EvalItem(f"n{i}", [{"role": "user", "content": text}], TOOLS, [], "no_tool")
    for i, text in enumerate(CHATS)
]  # fmt: skip

Handler = Callable[[dict[str, Any]], ScriptedReply]


def behaviour(*, calls: int = 0, calls_on_chat: bool = False, every_key: bool = False) -> Handler:
    """A model that calls `lookup` right for the first `calls` cities and abstains otherwise
    (`every_key`: writing the unstated `date` as null, as an every-key adapter does)."""

    def answer(body: dict[str, Any]) -> ScriptedReply:
        text = body["messages"][-1]["content"]
        match = re.search(r"Timezone of (\w+)", text)
        if match and CITIES.index(match.group(1)) < calls:
            unstated = {"date": None} if every_key else {}
            return ScriptedReply.call("lookup", {"city": match.group(1), **unstated})
        if not match and calls_on_chat:
            return ScriptedReply.call("lookup", {"city": "Paris"})
        return ScriptedReply.message("I can only talk.")

    return answer


BASE = behaviour(calls=0)
GOOD = behaviour(calls=8)
WORSE = behaviour(calls=5)
EAGER = behaviour(calls=8, calls_on_chat=True)


class World:
    """A scripted vLLM server over a tiny base, an adapter store and eval data."""

    def __init__(
        self,
        tmp: Path,
        *,
        base_dir: Path | None = None,
        store_url: str | None = None,
        **server: Any,
    ) -> None:
        self.tmp = tmp
        self.base = base_dir or make_base(tmp / "base")
        self.store = tmp / "adapters.db"
        self.store_url = store_url or f"sqlite:///{self.store}"
        self.data = tmp / "heldout.jsonl"
        self.data.write_text("".join(json.dumps(item.to_dict()) + "\n" for item in ITEMS))
        self.handlers: dict[str, Handler] = {}
        self.server = ScriptedServer(
            handler=BASE, model="smol", enable_lora=True, model_root=str(self.base),
            handlers=self.handlers, **server,
        )  # fmt: skip
        self.adapters = 0

    def adapter(self, answers: Handler | None, **kwargs: Any) -> Path:
        """A new adapter directory (new bytes) whose replies are `answers` (None: the base's)."""
        self.adapters += 1
        folder = make_adapter(self.tmp / f"adapter{self.adapters}", seed=str(self.adapters),
                              **kwargs)  # fmt: skip
        if answers is not None:
            self.handlers[str(folder)] = answers
        return folder

    def agentrt(self, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
        code = main([*argv])
        out, err = capsys.readouterr()
        try:
            payload = json.loads(out) if out.strip().startswith("{") else out
        except ValueError:
            payload = out
        return code, payload, err

    def deploy(
        self, folder: Path, capsys: pytest.CaptureFixture[str], *extra: str
    ) -> tuple[int, Any, str]:
        return self.agentrt(
            "adapter", "deploy", str(folder), "--base-url", self.server.base_url,
            "--name", "tools", "--eval", str(self.data), "--store", self.store_url,
            "--json", *extra, capsys=capsys,
        )  # fmt: skip

    def registry(self) -> SQLAdapterRegistry:
        return open_registry(self.store_url)

    @property
    def loaded(self) -> set[str]:
        assert self.server.adapters is not None
        return set(self.server.adapters.loaded)

    def assert_only_loaded_names_were_asked(self) -> None:
        assert self.server.adapters is not None
        assert self.server.adapters.unknown_model_requests == []


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = World(tmp_path)
    env.server.start()
    try:
        yield env
    finally:
        env.server.stop()
    env.assert_only_loaded_names_were_asked()


def test_first_deploy_is_measured_against_the_base_and_promoted(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = world.deploy(world.adapter(GOOD), capsys)
    assert code == 0, (out, err)
    assert out["status"] == "promoted" and out["serving"] == "tools@v1"
    gate = out["gate"]
    assert gate["against"] == "smol" and gate["promote"] is True
    assert gate["candidate"]["full_call"] == 1.0 and gate["incumbent"]["full_call"] == 0.0
    assert world.loaded == {"tools@v1"}
    asked = {r["model"] for r in world.server.requests}
    assert asked == {"smol", "tools@v1"}  # the same items, both models
    assert len(world.server.requests) == 2 * len(ITEMS)
    with world.registry() as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.version == 1 and serving.loaded
        assert serving.evaluation is not None and serving.evaluation["items"] == len(ITEMS)
        assert set(serving.files) == {"adapter_config.json", "adapter_model.safetensors"}


def test_not_worse_replaces_it_and_one_previous_version_stays_loaded(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for expected in (1, 2, 3):
        code, out, err = world.deploy(world.adapter(GOOD), capsys)
        assert code == 0, err
        assert out["serving"] == f"tools@v{expected}"
    assert out["gate"]["against"] == "tools@v2"
    assert out["unloaded"] == ["tools@v1"]
    assert world.loaded == {"tools@v2", "tools@v3"}  # v2: the instant rollback target
    with world.registry() as registry:
        states = {v.version: (v.status, v.loaded) for v in registry.versions("tools")}
    assert states == {
        1: (VersionStatus.RETIRED, False),
        2: (VersionStatus.RETIRED, True),
        3: (VersionStatus.SERVING, True),
    }


def test_worse_is_rejected_unloaded_and_the_reason_given(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    report = world.tmp / "reports" / "deploy.json"
    code, out, _ = world.deploy(world.adapter(WORSE), capsys, "--out", str(report))
    assert code == 1
    assert out["status"] == "rejected" and out["serving"] == "tools@v1"
    rows = json.loads(report.read_text())["predictions"]
    assert len(rows) == len(ITEMS)
    lost = [row["id"] for row in rows if row["old"]["correct"] and not row["new"]["correct"]]
    assert lost == ["c5", "c6", "c7"]
    assert "full-call rate 62.5 % is lower than tools@v1's 100.0 %" in out["message"]
    assert world.loaded == {"tools@v1"}
    with world.registry() as registry:
        rejected = registry.get("tools", 2)
        assert rejected is not None and rejected.status is VersionStatus.REJECTED
        assert not rejected.loaded and "full-call rate" in (rejected.reason or "")
        assert rejected.evaluation is not None
        assert rejected.evaluation["candidate"]["full_call"] == 0.625
        serving = registry.serving("tools")
        assert serving is not None and serving.version == 1


def test_an_every_key_adapter_is_measured_in_its_own_call_form(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # Its manifest says every-key: the unstated nulls are dropped before scoring,
    # as `run` and the embedded server drop them.
    folder = world.adapter(behaviour(calls=8, every_key=True))
    (folder / "agentrt_adapter.json").write_text(json.dumps({"call_form": "every-key"}))
    code, out, err = world.deploy(folder, capsys)
    assert code == 0, (out, err)
    assert out["gate"]["candidate"]["full_call"] == 1.0
    # The same replies from an adapter that does not say so are calls with a null
    # argument the tool does not take: scored wrong, and the version is rejected.
    code, out, _ = world.deploy(world.adapter(behaviour(calls=8, every_key=True)), capsys)
    assert code == 1 and out["gate"]["candidate"]["full_call"] == 0.0
    assert out["gate"]["incumbent"]["full_call"] == 1.0  # v1, still asked in its form


def test_significantly_worse_abstention_is_rejected_though_full_calls_tie(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    code, out, _ = world.deploy(world.adapter(EAGER), capsys)
    assert code == 1 and out["status"] == "rejected"
    tests = {t["metric"]: t for t in out["gate"]["tests"]}
    assert tests["full_call"]["a_rate"] == tests["full_call"]["b_rate"] == 1.0
    assert tests["abstained"]["a_only"] == 8 and tests["abstained"]["p_value"] < 0.05
    assert "abstention: tools@v1 is better" in out["message"]


def test_an_adapter_that_changes_nothing_is_not_promoted_over_the_base(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = world.deploy(world.adapter(None), capsys)  # answers exactly as the base
    assert code == 1 and out["status"] == "rejected"
    assert "exactly as the base model did" in out["message"]
    assert world.loaded == set()


def test_the_same_files_again_change_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = world.adapter(GOOD)
    assert world.deploy(folder, capsys)[0] == 0
    asked = len(world.server.requests)
    code, out, _ = world.deploy(folder, capsys)
    assert code == 0 and out["status"] == "unchanged" and out["serving"] == "tools@v1"
    assert len(world.server.requests) == asked and world.loaded == {"tools@v1"}


def test_rollback_goes_back_one_version_at_a_time_without_a_restart(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    store = f"sqlite:///{world.store}"
    code, out, err = world.agentrt("adapter", "rollback", "tools", "--store", store, "--json",
                                   capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert out["serving"] == "tools@v2" and out["unloaded"] == ["tools@v3"]
    assert world.loaded == {"tools@v2"}
    # v1 was unloaded after v3's promotion: its files are checked and it is loaded again
    code, out, err = world.agentrt("adapter", "rollback", "tools", "--store", store, "--json",
                                   capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert out["serving"] == "tools@v1" and world.loaded == {"tools@v1"}
    assert world.server.adapters is not None
    loads = [e.name for e in world.server.adapters.events if e.action == "load"]
    assert loads == ["tools@v1", "tools@v2", "tools@v3", "tools@v1"]  # same name: same bytes
    code, _, err = world.agentrt("adapter", "rollback", "tools", "--store", store, capsys=capsys)
    assert code == 2 and "tools@v1 is the first version of tools that served" in err
    with world.registry() as registry:
        states = [v.status for v in registry.versions("tools")]
    assert states == [VersionStatus.SERVING, VersionStatus.ROLLED_BACK, VersionStatus.ROLLED_BACK]


def test_rollback_refuses_a_previous_version_whose_files_changed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first = world.adapter(GOOD)
    for folder in (first, world.adapter(GOOD), world.adapter(GOOD)):
        assert world.deploy(folder, capsys)[0] == 0
    make_adapter(first, seed="rewritten")  # v1's directory now holds other weights
    store = f"sqlite:///{world.store}"
    assert world.agentrt("adapter", "rollback", "tools", "--store", store, capsys=capsys)[0] == 0
    code, _, err = world.agentrt("adapter", "rollback", "tools", "--store", store, capsys=capsys)
    assert code == 2 and "changed since it was measured" in err
    assert world.loaded == {"tools@v2"}


def test_list_shows_versions_figures_and_hashes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    assert world.deploy(world.adapter(WORSE), capsys)[0] == 1
    store = f"sqlite:///{world.store}"
    code, out, _ = world.agentrt("adapter", "list", "--store", store, "--base-url",
                                 world.server.base_url, "--json", capsys=capsys)  # fmt: skip
    assert code == 0
    assert out["serving"] == {"tools": "tools@v1"}
    rows = {row["served_name"]: row for row in out["versions"]}
    assert rows["tools@v1"]["on_server"] is True and rows["tools@v2"]["on_server"] is False
    assert rows["tools@v2"]["status"] == "rejected"
    assert len(rows["tools@v1"]["files"]["adapter_model.safetensors"]) == 64
    code, text, _ = world.agentrt("adapter", "list", "tools", "--store", store, capsys=capsys)
    assert code == 0
    assert "tools@v1 ◀ serves tools | serving" in text and "| 62.5 % |" in text


@pytest.mark.parametrize(
    ("kwargs", "extra", "code"),
    [
        ({"prefix": "base_model.model.language_model.layers"}, (), "modules_unmatched"),
        ({"rank": 32}, (), "rank_too_high"),
        ({"config": {"modules_to_save": ["lm_head"]}}, (), "modules_to_save"),
        ({"added_tokens": ["<tool_call>"]}, (), "added_tokens"),
        ({"base": "meta-llama/Llama-3.1-8B"}, (), "base_mismatch"),
        ({"hidden": 16}, (), "base_mismatch"),
        ({}, ("--base-model", "/nonexistent"), "base_unknown"),
    ],
    ids=["modules", "rank", "modules_to_save", "tokens", "base-name", "base-shapes", "no-base"],
)
def test_an_adapter_that_cannot_work_is_refused_before_the_server_sees_it(
    world: World,
    capsys: pytest.CaptureFixture[str],
    kwargs: dict[str, Any],
    extra: tuple[str, ...],
    code: str,
) -> None:
    exit_code, out, _ = world.deploy(world.adapter(GOOD, **kwargs), capsys, *extra)
    assert exit_code == 2
    assert out["status"] == "refused" and code in [r["code"] for r in out["refusals"]]
    assert world.server.adapters is not None and world.server.adapters.events == []
    assert world.server.requests == []
    with world.registry() as registry:
        assert registry.versions() == []


def test_a_base_alias_accepts_the_same_model_under_another_name(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = world.adapter(GOOD, base="HuggingFaceTB/SmolLM2-135M-Instruct")
    code, out, _ = world.deploy(
        folder, capsys, "--base-alias", "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert code == 0 and out["serving"] == "tools@v1"


def test_the_servers_own_refusal_is_reported_and_the_number_not_reused(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # The operator claims --max-lora-rank 64, but the server was started with 16.
    code, out, _ = world.deploy(world.adapter(GOOD, rank=32), capsys, "--max-lora-rank", "64")
    assert code == 1 and out["status"] == "failed"
    assert "LoRA rank 32 is greater than max_lora_rank 16." in out["message"]
    assert world.loaded == set() and world.server.requests == []
    code, out, _ = world.deploy(world.adapter(GOOD), capsys)
    assert code == 0 and out["serving"] == "tools@v2"  # v1 was sent once: never again


def test_a_server_without_runtime_updating_gets_a_clear_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path, runtime_lora_updating=False)
    with world.server:
        code, out, _ = world.deploy(world.adapter(GOOD), capsys)
    assert code == 1 and out["status"] == "failed"
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in out["message"]


def test_a_deploy_that_loses_the_race_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    rival = world.registry()

    def promote_a_rival_first(body: dict[str, Any]) -> ScriptedReply:
        serving = rival.serving("tools")
        if serving is not None and serving.version == 1:  # the first request: a rival wins now
            other = rival.reserve("tools", path="/x", server_path="/x", base_url="u",
                                  base_model="smol", digest="d", files={})  # fmt: skip
            rival.promote("tools", other.version, expected=1)
        return GOOD(body)

    try:
        code, out, _ = world.deploy(world.adapter(promote_a_rival_first), capsys)
    finally:
        rival.close()
    assert code == 1 and out["status"] == "rejected"
    assert "changed meanwhile" in out["message"]
    assert world.loaded == {"tools@v1"}  # the loser, tools@v2, is unloaded
    with world.registry() as registry:
        loser = registry.get("tools", 2)
        assert loser is not None and loser.status is VersionStatus.REJECTED and not loser.loaded
        serving = registry.serving("tools")
        assert serving is not None and serving.version == 3  # the rival's promotion stands


def _run(
    world: World,
    tool_file: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    prompt: str = "hello",
) -> Any:
    return world.agentrt(
        "run", "--module", str(tool_file), "--base-url", world.server.base_url,
        "--model", "tools", "--adapter-store", world.store_url, "--policy", "none",
        "--sandbox", "inprocess", "--audit-log", "none", "--json", *extra, prompt,
        capsys=capsys,
    )  # fmt: skip


@pytest.fixture
def tool_file(tmp_path: Path) -> Path:
    path = tmp_path / "lookup_tools.py"
    path.write_text(
        "from runtime import tool\n\n\n@tool\ndef lookup(city: str) -> str:\n"
        '    """Look up a city\'s timezone.\n\n    Args:\n        city: The city.\n    """\n'
        '    return "UTC+1"\n'
    )
    return path


def test_run_sends_the_promoted_version_and_follows_a_rollback(
    world: World, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    before = len(world.server.requests)
    code, out, err = _run(world, tool_file, capsys)
    assert code == 0, err
    assert out["status"] == "completed"
    assert {r["model"] for r in world.server.requests[before:]} == {"tools@v2"}
    assert world.agentrt("adapter", "rollback", "tools", "--store", f"sqlite:///{world.store}",
                         capsys=capsys)[0] == 0  # fmt: skip
    before = len(world.server.requests)
    assert _run(world, tool_file, capsys)[0] == 0
    assert {r["model"] for r in world.server.requests[before:]} == {"tools@v1"}


def test_deploy_rollback_and_run_on_a_postgresql_store(
    tmp_path: Path, postgres_url: str, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path, store_url=postgres_url)
    with world.server:
        for _ in range(2):
            code, out, err = world.deploy(world.adapter(GOOD), capsys)
            assert code == 0, err
        assert out["serving"] == "tools@v2"
        code, listed, _ = world.agentrt("adapter", "list", "--store", postgres_url, "--json",
                                        capsys=capsys)  # fmt: skip
        assert code == 0 and listed["serving"] == {"tools": "tools@v2"}
        before = len(world.server.requests)
        assert _run(world, tool_file, capsys)[0] == 0
        assert {r["model"] for r in world.server.requests[before:]} == {"tools@v2"}
        assert world.agentrt("adapter", "rollback", "tools", "--store", postgres_url,
                             capsys=capsys)[0] == 0  # fmt: skip
        before = len(world.server.requests)
        assert _run(world, tool_file, capsys)[0] == 0
        assert {r["model"] for r in world.server.requests[before:]} == {"tools@v1"}
    world.assert_only_loaded_names_were_asked()
    assert not world.store.exists()  # nothing went to the default SQLite file


def test_run_refuses_a_promoted_version_the_server_lost_until_it_is_restored(
    tmp_path: Path, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path)
    with world.server:
        assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    restarted = World(tmp_path, base_dir=world.base)  # same store and files, nothing loaded
    restarted.handlers.update(world.handlers)
    with restarted.server:
        code, _, err = _run(restarted, tool_file, capsys)
        assert code == 2
        assert "tools is served by tools@v1, which" in err and "has not loaded" in err
        assert "agentrt adapter restore tools" in err
        assert restarted.server.requests == []  # nothing was sent to a name it lacks
        code, out, err = restarted.agentrt(
            "adapter", "restore", "tools", "--store", f"sqlite:///{world.store}",
            "--base-url", restarted.server.base_url, "--json", capsys=capsys,
        )  # fmt: skip
        assert code == 0, err
        assert out["serving"] == "tools@v1" and restarted.loaded == {"tools@v1"}
        assert _run(restarted, tool_file, capsys)[0] == 0
        assert {r["model"] for r in restarted.server.requests} == {"tools@v1"}
    restarted.assert_only_loaded_names_were_asked()


def test_run_with_a_name_the_store_does_not_know_is_unchanged(
    world: World, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    code, _, err = world.agentrt(
        "run", "--module", str(tool_file), "--base-url", world.server.base_url, "--model", "smol",
        "--adapter-store", f"sqlite:///{world.store}", "--policy", "none", "--sandbox",
        "inprocess", "--audit-log", "none", "--json", "hello", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert world.server.requests[-1]["model"] == "smol"


def test_run_refuses_a_pinned_version_that_is_not_loaded(
    world: World, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    assert world.deploy(world.adapter(WORSE), capsys)[0] == 1
    before = len(world.server.requests)
    code, _, err = world.agentrt(
        "run", "--module", str(tool_file), "--base-url", world.server.base_url, "--model",
        "tools@v2", "--adapter-store", f"sqlite:///{world.store}", "--policy", "none",
        "--sandbox", "inprocess", "--audit-log", "none", "hello", capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "tools@v2 is not loaded" in err and "rejected" in err
    assert len(world.server.requests) == before


def test_an_unreachable_postgresql_store_is_one_sentence_and_exit_2(
    tmp_path: Path, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = "postgresql://agentrt:secret@127.0.0.1:1/agentrt"
    for argv in (
        ("adapter", "list", "--store", nowhere),
        ("adapter", "rollback", "tools", "--store", nowhere),
        ("run", "--module", str(tool_file), "--base-url", "http://127.0.0.1:9/v1", "--model",
         "tools", "--adapter-store", nowhere, "--policy", "none", "--sandbox", "inprocess",
         "--audit-log", "none", "hello"),
    ):  # fmt: skip
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert "is unavailable" in err and "Traceback" not in err, err
        assert "secret" not in err  # the password is never printed


def test_run_asks_each_deployed_version_in_the_call_form_it_was_deployed_with(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool_file = tmp_path / "lookup_dated.py"
    tool_file.write_text(
        "from runtime import tool\n\n\n@tool\ndef lookup(city: str, date: str = '') -> str:\n"
        '    """Look up a city\'s timezone.\n\n    Args:\n        city: The city.\n'
        '        date: The day, if not today.\n    """\n'
        '    return "UTC+1"\n'
    )
    folder = world.adapter(behaviour(calls=8, every_key=True))
    (folder / "agentrt_adapter.json").write_text(json.dumps({"call_form": "every-key"}))
    assert world.deploy(folder, capsys)[0] == 0
    with world.registry() as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.call_form == "every-key"
    # No --call-form: the store says v1 writes every key, so the unstated `date: null`
    # it writes is dropped and `lookup` runs with what the request said.
    code, out, err = _run(world, tool_file, capsys, "--max-turns", "3", prompt="Timezone of Oslo?")
    assert code == 0, err
    assert out["status"] == "completed", out
    assert [(c["status"], c["arguments"]) for c in out["tool_calls"]] == [("ok", {"city": "Oslo"})]
    # A plain version promoted over it is asked plainly (its history too: no nulls sent).
    assert world.deploy(world.adapter(GOOD), capsys)[0] == 0
    before = len(world.server.requests)
    code, out, err = _run(world, tool_file, capsys, "--max-turns", "3", prompt="Timezone of Oslo?")
    assert code == 0 and out["status"] == "completed", (out, err)
    sent = world.server.requests[before:]
    assert {r["model"] for r in sent} == {"tools@v2"}
    assert all("null" not in json.dumps(r["messages"]) for r in sent)


async def test_a_long_lived_client_follows_the_serving_versions_call_form(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    async def deploy(folder: Path) -> int:  # the CLI runs its own event loop: off this one
        return (await asyncio.to_thread(world.deploy, folder, capsys))[0]

    folder = world.adapter(behaviour(calls=8, every_key=True))
    (folder / "agentrt_adapter.json").write_text(json.dumps({"call_form": "every-key"}))
    assert await deploy(folder) == 0
    client = OpenAICompatibleClient(world.server.base_url, "tools")
    deployed = DeployedModel(client, store=world.store_url)
    try:
        first = (await deployed.for_run()).client
        assert isinstance(first, OpenAICompatibleClient)
        assert (first.model, first.call_form) == ("tools@v1", "every-key")
        assert await deploy(world.adapter(GOOD)) == 0
        second = (await deployed.for_run()).client  # no restart: the next run asks v2, plainly
        assert isinstance(second, OpenAICompatibleClient)
        assert (second.model, second.call_form) == ("tools@v2", "plain")
    finally:
        await deployed.aclose()
        await client.aclose()


def _shows_worked_requests(body: dict[str, Any]) -> bool:
    return any(str(m.get("content", "")).startswith(SIMILAR_HEADER) for m in body["messages"])


def test_a_version_that_learned_with_worked_requests_is_measured_and_run_with_them(
    world: World, tool_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = world.adapter(GOOD)
    (folder / "agentrt_adapter.json").write_text(json.dumps({"similar_requests": 2}))
    before = len(world.server.requests)
    assert world.deploy(folder, capsys)[0] == 0
    # measured as it will be served; the base it is measured against, plainly
    asked = {(r["model"], _shows_worked_requests(r)) for r in world.server.requests[before:]}
    assert asked == {("tools@v1", True), ("smol", False)}
    with world.registry() as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.similar_requests == 2
    before = len(world.server.requests)
    code, out, err = _run(world, tool_file, capsys, prompt="Timezone of Oslo?")
    assert code == 0 and out["status"] == "completed", (out, err)
    assert {_shows_worked_requests(r) for r in world.server.requests[before:]} == {True}
    before = len(world.server.requests)  # --similar-requests 0 still turns them off
    code, out, err = _run(
        world, tool_file, capsys, "--similar-requests", "0", prompt="Timezone of Oslo?"
    )
    assert code == 0 and out["status"] == "completed", (out, err)
    assert {_shows_worked_requests(r) for r in world.server.requests[before:]} == {False}
