"""The adapter store: numbers never reused, one serving version, compare-and-set promotion."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from runtime.deploy.registry import (
    ADAPTER_MIGRATIONS,
    DEFAULT_ADAPTER_STORE,
    RegistryError,
    ServingChanged,
    SQLAdapterRegistry,
    SQLiteAdapterRegistry,
    VersionStatus,
    open_existing_registry,
    open_registry,
    split_served_name,
    store_url,
)
from runtime.storage import SchemaTooNew


def _reserve(registry: SQLAdapterRegistry, name: str = "tools", above: int = 0) -> int:
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
    default = store_url(None)
    assert (default.kind, default.path) == ("sqlite", DEFAULT_ADAPTER_STORE)
    assert default.path == Path(".agentrt/adapters.db")
    assert store_url("sqlite:///.agentrt/x.db").path == Path(".agentrt/x.db")
    assert store_url("sqlite:////var/lib/agentrt/x.db").path == Path("/var/lib/agentrt/x.db")
    assert store_url("plain.db").path == Path("plain.db")
    shared = store_url("postgresql://agentrt:secret@db/agentrt")
    assert shared.kind == "postgresql" and "secret" not in str(shared)
    with pytest.raises(RegistryError, match="unknown store"):
        store_url("redis://x")
    with pytest.raises(RegistryError, match="needs a file"):
        store_url("sqlite:///")


def test_a_store_that_does_not_exist_is_not_created_to_be_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/adapters.db"
    assert open_existing_registry(url) is None and not (tmp_path / "adapters.db").exists()
    with open_registry(url) as registry:
        _reserve(registry)
    found = open_existing_registry(url)
    assert found is not None
    with found:
        assert [v.served_name for v in found.versions()] == ["tools@v1"]


def test_a_store_written_before_the_shared_store_is_taken_over(tmp_path: Path) -> None:
    """A SQLite file made by the registry before migrations keeps its versions and numbers."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(ADAPTER_MIGRATIONS[0].sql)
        conn.execute(
            "INSERT INTO adapter_versions (name, version, status, loaded, path, server_path, "
            "base_url, base_model, digest, files, created_at, updated_at, promoted_at) "
            "VALUES ('tools', 4, 'serving', 1, '/a', '/a', 'u', 'smol', 'd', '{}', 1.0, 1.0, 1.0)"
        )
    conn.close()
    with SQLiteAdapterRegistry(path) as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.version == 4
        # recorded before versions said how to ask them: plainly, as they were
        assert (serving.call_form, serving.similar_requests) == ("plain", 0)
        assert _reserve(registry) == 5
        with registry.database.read() as session:
            row = session.one("SELECT version FROM agentrt_schema WHERE component = 'adapters'")
        assert row == {"version": len(ADAPTER_MIGRATIONS)}


def test_each_version_keeps_how_it_is_asked(tmp_path: Path) -> None:
    with SQLiteAdapterRegistry(tmp_path / "a.db") as registry:
        spelled = registry.reserve(
            "tools", path="/a", server_path="/a", base_url="u", base_model="smol", digest="d",
            files={}, call_form="every-key", similar_requests=2,
        )  # fmt: skip
        assert _reserve(registry) == 2
        assert [(v.call_form, v.similar_requests) for v in registry.versions("tools")] == [
            ("every-key", 2),
            ("plain", 0),
        ]
        assert registry.get("tools", spelled.version) == spelled
        with pytest.raises(RegistryError, match="call_form"):
            registry.reserve(
                "tools", path="/a", server_path="/a", base_url="u", base_model="smol",
                digest="d", files={}, call_form="json",  # type: ignore[arg-type]
            )  # fmt: skip
        with pytest.raises(RegistryError, match="similar_requests"):
            registry.reserve(
                "tools", path="/a", server_path="/a", base_url="u", base_model="smol",
                digest="d", files={}, similar_requests=-1,
            )  # fmt: skip


def test_a_store_migrated_by_a_newer_agentrt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteAdapterRegistry(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE agentrt_schema SET version = 99 WHERE component = 'adapters'")
    conn.close()
    with pytest.raises(SchemaTooNew, match="adapters tables"):
        SQLiteAdapterRegistry(path)


def test_served_names() -> None:
    assert split_served_name("tools@v12") == ("tools", 12)
    assert split_served_name("org/tools@v3") == ("org/tools", 3)
    assert split_served_name("tools") is None
    assert split_served_name("tools@vx") is None
