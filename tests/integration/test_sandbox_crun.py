"""The crun engine: the spec dockerd would give runc, nothing left behind, orphans reaped.

The attacks themselves run against both engines in tests/adversarial.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from runtime.calls import CallContext, CallStatus
from runtime.sandbox import oci
from runtime.sandbox.bench_tool import bench_echo
from runtime.sandbox.containers import DockerAPI
from runtime.sandbox.hardening import (
    SandboxLimits,
    container_spec,
    default_image,
    resolve_config,
    user_mount,
)
from runtime.sandbox.reaper import reap

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module", autouse=True)
def _crun_supported(no_sandbox_container_survives: None) -> None:
    reason = oci.unsupported_reason()
    if reason is not None:
        pytest.skip(f"the crun engine cannot run here: {reason}")  # a failure in CI


def _docker_bundle_spec(container_id: str) -> dict[str, Any]:
    """The OCI spec dockerd handed to runc, from containerd's bundle directory."""
    for root in ("/run/docker/containerd", "/run/containerd"):
        for path in Path(root).glob(f"**/moby/{container_id}/config.json"):
            return dict(json.loads(path.read_text()))
    raise AssertionError(f"no containerd bundle for {container_id}")


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop what legitimately differs: paths of the root and of per-container files."""
    spec = json.loads(json.dumps(spec))
    spec.pop("hooks", None)  # dockerd's libnetwork-setkey
    spec["root"].pop("path")
    linux = spec["linux"]
    linux.pop("cgroupsPath")
    linux["resources"].pop("blockIO", None)
    linux["resources"].get("cpu", {}).pop("shares", None)
    linux["readonlyPaths"] = [p for p in linux["readonlyPaths"] if p != "/sys/fs/cgroup"]
    mounts = []
    for mount in spec["mounts"]:
        if mount["destination"] in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
            continue  # dockerd writes these per container; the image's own serve here
        if mount["destination"] == oci.INIT_PATH:
            mount["source"] = str(Path(mount["source"]).resolve())
        mounts.append(mount)
    # dockerd orders mounts by depth with an unstable sort: equal depths may swap
    spec["mounts"] = sorted(mounts, key=lambda m: str(m["destination"]))
    return spec


async def test_the_spec_is_what_dockerd_gives_runc(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = resolve_config(
        bench_echo,
        defaults=SandboxLimits(memory="256m", cpus=0.5, pids_limit=32),
        image=default_image(),
        network=False,
        extra_mounts=(user_mount(str(data), "/data", read_only=False),),
    )
    spec = container_spec(config, channel_dir=str(tmp_path), labels={"agentrt.test": "spec"})
    spec["command"] = ["sleep", "30"]
    api = DockerAPI()
    client = await api.connect()
    container_id = await api.create(spec, f"agentrt-spec-{os.getpid()}")
    try:
        await api.start(container_id)
        from_docker = _docker_bundle_spec(container_id)
        image = await api.call(client.inspect_image, default_image())
    finally:
        await api.remove(container_id)
        api.close()
    ours = oci.oci_spec(
        spec,
        rootfs="/unused",
        image_env=image["Config"]["Env"],
        init=oci.init_binary() or "",
        cgroups_path="/agentrt/x/c",
    )
    assert _comparable(ours) == _comparable(from_docker)
    # what the comparison set aside, checked on its own
    assert ours["linux"]["resources"]["memory"]["limit"] == 256 * 1024 * 1024
    assert "/sys/fs/cgroup" in ours["linux"]["readonlyPaths"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def crun_executor() -> AsyncIterator[Any]:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=1, engine="crun") as executor:
        yield executor


def _traces(name: str) -> list[str]:
    """Everything of container `name` that could outlive it on the host."""
    found = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{oci.CGROUP_PARENT}/{name}")]
    if (oci.STATE_ROOT / name).exists():
        found.append(str(oci.STATE_ROOT / name))
    if (oci.STATE_ROOT / "crun" / name).exists():
        found.append(f"crun state {name}")
    return found


async def test_a_call_leaves_no_bundle_cgroup_or_state(crun_executor: Any) -> None:
    result = await crun_executor.execute(bench_echo, {"value": 5}, CallContext())
    assert (result.status, result.result) == (CallStatus.OK, 5)
    name = result.sandbox["container_id"]
    await crun_executor.settle()
    assert _traces(name) == []


async def test_the_executor_reports_its_engine(crun_executor: Any) -> None:
    assert crun_executor.stats()["engine"] == "crun"


REPO = Path(__file__).resolve().parents[2]
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.bench_tool import bench_echo

    async def main():
        executor = DockerExecutor(pool_size=2, engine="crun", reap_on_start=False)
        await executor.wait_ready(bench_echo)
        print(" ".join(b.id for p in executor._pools._pools.values() for b in p._ready), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


async def test_containers_of_a_killed_process_are_reaped() -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 - the child is killed, not awaited
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert child.stdout is not None
    names = (await asyncio.to_thread(child.stdout.readline)).split()
    assert len(names) == 2 and all(_traces(name) for name in names)
    child.send_signal(signal.SIGKILL)
    child.wait()
    api = DockerAPI()
    try:
        removed = await reap(oci.CrunAPI(api))
    finally:
        api.close()
    assert set(names) <= set(removed)
    assert [trace for name in names for trace in _traces(name)] == []


async def test_bench_sandbox_reports_a_load_curve(tmp_path: Path) -> None:
    chart = tmp_path / "load.png"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "runtime", "bench", "sandbox", "-n", "3", "--rates", "2",
         "--duration", "2", "--chart", str(chart), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    payload = json.loads(result.stdout)
    assert payload["engine"] == payload["load_curve"]["engine"] == "crun"
    (step,) = payload["load_curve"]["steps"]
    assert step["offered_per_s"] == 2.0 and step["calls"] == 4
    assert step["reused_containers"] == payload["reused_containers"] == 0
    assert payload["sustained_calls_per_s"] == payload["load_curve"]["sustained_calls_per_s"]
    assert chart.stat().st_size > 0 and payload["chart"] == str(chart)
    # the exit code says whether the floors were met; the figures are the benchmark's business
    assert result.returncode == (0 if payload["meets_floors"] else 1), result.stderr


async def test_crun_state_cut_short_is_swept_at_connect() -> None:
    stale = oci.STATE_ROOT / "crun" / f"agentrt-stale-{os.getpid()}"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")  # a crun run killed before it wrote its status
    api = DockerAPI()
    try:
        await oci.CrunAPI(api).connect()
    finally:
        api.close()
    assert not stale.exists()
