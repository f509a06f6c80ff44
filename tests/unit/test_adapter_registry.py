"""The adapter store: numbers never reused, one serving version, compare-and-set promotion."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runtime.deploy.registry import (
    DEFAULT_ADAPTER_STORE,
    RegistryError,
    ServingChanged,
    SQLiteAdapterRegistry,
    VersionStatus,
    split_served_name,
    store_path,
)


def _reserve(registry: SQLiteAdapterRegistry, name: str = "tools", above: int = 0) -> int:
    version = registry.reserve(
        name, path="/a", server_path="/a", base_url="http://x/v1", base_model="smol",
        digest="d", files={"adapter_config.json": "c"}, above=above,
    )  # fmt: skip
    assert version.status is VersionStatus.LOADING and not version.loaded
    return version.version


def test_numbers_are_never_reused(tmp_path: Path) -> None:
    with SQLiteAdapterRegistry(tmp_path / "a.db") as registry:
        first = _reserve(registry)
        registry.update("tools", first, status=VersionStatus.FAILED, reason="server said no")
        assert _reserve(registry) == 2  # a failed number stays taken
        assert _reserve(registry, above=7) == 8  # the server already has up to v7
        assert _reserve(registry, "other") == 1
        assert [v.served_name for v in registry.versions("tools")] == [
            "tools@v1", "tools@v2", "tools@v8"
        ]  # fmt: skip


def test_promotion_is_a_compare_and_set(tmp_path: Path) -> None:
    with SQLiteAdapterRegistry(tmp_path / "a.db") as registry:
        one, two, three = (_reserve(registry) for _ in range(3))
        registry.promote("tools", one, expected=None)
        with pytest.raises(ServingChanged) as raised:
            registry.promote("tools", two, expected=None)  # someone promoted v1 first
        assert (raised.value.expected, raised.value.actual) == (None, one)
        registry.promote("tools", two, expected=one)
        retired = registry.get("tools", one)
        assert retired is not None and retired.status is VersionStatus.RETIRED
        registry.promote("tools", one, expected=two, demote_to=VersionStatus.ROLLED_BACK,
                         reason="rolled back")  # fmt: skip
        serving = registry.serving("tools")
        assert serving is not None and serving.version == one
        rolled = registry.get("tools", two)
        assert rolled is not None and rolled.status is VersionStatus.ROLLED_BACK
        assert rolled.reason == "rolled back"
        assert [v.status for v in registry.versions("tools")].count(VersionStatus.SERVING) == 1
        with pytest.raises(RegistryError, match="only through promote"):
            registry.update("tools", three, status=VersionStatus.SERVING)
        with pytest.raises(RegistryError, match="is serving"):
            registry.update("tools", one, status=VersionStatus.REJECTED)
        events = [(e["version"], e["event"]) for e in registry.history("tools")]
        assert events[-2:] == [(2, "rolled_back"), (1, "serving")]


def test_replicas_sharing_the_file_agree(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with SQLiteAdapterRegistry(path) as a, SQLiteAdapterRegistry(path) as b:
        version = _reserve(a)
        a.update("tools", version, status=VersionStatus.EVALUATING, loaded=True,
                 evaluation={"full_call": 0.9})  # fmt: skip
        a.promote("tools", version, expected=None)
        seen = b.serving("tools")
        assert seen is not None and seen.served_name == "tools@v1" and seen.loaded
        assert seen.evaluation == {"full_call": 0.9}


def test_concurrent_reservations_get_distinct_numbers(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    SQLiteAdapterRegistry(path).close()
    numbers: list[int] = []
    lock = threading.Lock()

    def deploy() -> None:
        with SQLiteAdapterRegistry(path) as registry:  # one connection per "process"
            for _ in range(5):
                number = _reserve(registry)
                with lock:
                    numbers.append(number)

    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 21))


def test_store_urls() -> None:
    assert store_path(None) == DEFAULT_ADAPTER_STORE == Path(".agentrt/adapters.db")
    assert store_path("sqlite:///.agentrt/x.db") == Path(".agentrt/x.db")
    assert store_path("sqlite:////var/lib/agentrt/x.db") == Path("/var/lib/agentrt/x.db")
    assert store_path("plain.db") == Path("plain.db")
    with pytest.raises(RegistryError, match="PostgreSQL adapter store comes with the shared"):
        store_path("postgresql://db/agentrt")
    with pytest.raises(RegistryError, match="unknown store"):
        store_path("redis://x")


def test_served_names() -> None:
    assert split_served_name("tools@v12") == ("tools", 12)
    assert split_served_name("org/tools@v3") == ("org/tools", 3)
    assert split_served_name("tools") is None
    assert split_served_name("tools@vx") is None
