"""Build the sandbox image, offline when no registry is reachable.

Steps: pick a base (`python:3.11-slim` when present or pullable, else a
Debian bookworm root file system made with `mmdebstrap` and `docker import`),
download the runtime's core dependencies as wheels pinned to the versions
installed on this host, and build `deploy/sandbox/Dockerfile` on top with the
build's network switched off (pip installs from the wheels in the context).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.sandbox.hardening import DEFAULT_IMAGE, runtime_dir

DEFAULT_BASE = "python:3.11-slim"
OFFLINE_BASE = "agentrt-sandbox-base:bookworm"
MIRROR_ENV = "AGENTRT_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_LABEL = "agentrt.sandbox.image"
# used when the runtime runs from a source tree without installed metadata
_FALLBACK_REQUIREMENTS = (
    "openai>=1.40",
    "pydantic>=2.7,<3",
    "jsonschema[format-nongpl]>=4.22",
    "regress>=2026.9.1",
    "docker>=7.0",
    "structlog>=24.1",
    "pyyaml>=6.0",
    "rich>=13.0",
)
_MMDEBSTRAP_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/locale/*",
    "/usr/share/info/*",
)


class ImageBuildError(RuntimeError):
    """The sandbox image could not be built; the message says what to do."""


@dataclasses.dataclass
class BuildReport:
    """What `build_image` did and how long each step took (seconds)."""

    tag: str
    base: str
    image_id: str = ""
    offline_base_built: bool = False
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_dockerfile() -> Path:
    """`deploy/sandbox/Dockerfile` next to the runtime package, or under the working directory.

    Raises:
        ImageBuildError: Neither exists.
    """
    for root in (runtime_dir().parent, Path.cwd()):
        candidate = root / "deploy" / "sandbox" / "Dockerfile"
        if candidate.is_file():
            return candidate
    raise ImageBuildError(
        "cannot find deploy/sandbox/Dockerfile; run from the agent-runtime checkout or pass "
        "--dockerfile PATH"
    )


def core_requirements() -> list[str]:
    """The runtime's core (non-extra) requirements, as installed metadata declares them."""
    try:
        declared = metadata.requires("agent-runtime") or []
    except metadata.PackageNotFoundError:
        return list(_FALLBACK_REQUIREMENTS)
    return [req for req in declared if "extra" not in req.partition(";")[2]]


def host_pins() -> list[str]:
    """`name==version` for every distribution installed here, so the image matches the host."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "agent-runtime":
            pins.setdefault(name.lower(), f"{name}=={dist.version}")
    return sorted(pins.values())


def _platform_tags(arch: str) -> list[str]:
    # bookworm has glibc 2.36: every manylinux tag up to 2_36 fits
    tags = [f"manylinux_2_{minor}_{arch}" for minor in (36, 34, 31, 28, 27, 24, 17, 12, 5)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def download_wheels(
    dest: Path,
    *,
    arch: str,
    requirements: list[str] | None = None,
    say: Callable[[str], None] = _say,
) -> list[str]:
    """pip-download requirements (and pip itself) as wheels for CPython 3.11 on Linux.

    Args:
        dest: Directory for the wheels and `requirements.txt`.
        arch: The engine's architecture (`x86_64`, `aarch64`).
        requirements: What to download; by default the runtime's core dependencies.
            A package also installed on this host is pinned to the host's version.
        say: Progress messages.

    Returns:
        The requirement lines written to `dest/requirements.txt`.

    Raises:
        ImageBuildError: pip failed (no index reachable, a version without a wheel).
    """
    dest.mkdir(parents=True, exist_ok=True)
    requirements = list(requirements) if requirements is not None else core_requirements()
    (dest / "requirements.txt").write_text("\n".join(requirements) + "\n")
    pins = Path(tempfile.mkdtemp(prefix="agentrt-pins-")) / "constraints.txt"
    pins.write_text("\n".join(host_pins()) + "\n")
    try:
        pip_version = metadata.version("pip")
    except metadata.PackageNotFoundError:
        raise ImageBuildError(
            "pip is not installed in this Python; install it (python -m ensurepip)"
        ) from None
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--dest", str(dest), "--python-version", "3.11",
        "--implementation", "cp", "--abi", "cp311",
        *[arg for tag in _platform_tags(arch) for arg in ("--platform", tag)],
        "-c", str(pins), "-r", str(dest / "requirements.txt"), f"pip=={pip_version}",
    ]  # fmt: skip
    say(f"downloading {len(requirements)} requirement(s) as wheels (pinned to this host)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    shutil.rmtree(pins.parent, ignore_errors=True)
    if done.returncode != 0:
        raise ImageBuildError(
            "pip could not download the sandbox's wheels (is a package index reachable from "
            f"this host?):\n{done.stderr.strip()[-2000:]}"
        )
    return requirements


def build_offline_base(
    client: Any,
    *,
    tag: str = OFFLINE_BASE,
    mirror: str | None = None,
    say: Callable[[str], None] = _say,
) -> None:
    """Make a Debian bookworm base with python3 via mmdebstrap and `docker import` it.

    Raises:
        ImageBuildError: mmdebstrap is missing or failed.
    """
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            "no registry is reachable and mmdebstrap is not installed: "
            "`apt-get install -y mmdebstrap`, or pass --base IMAGE with Python 3.11"
        )
    mirror = (mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR).rstrip("/")
    sources = [f"deb {mirror} bookworm main", f"deb {mirror} bookworm-updates main"]
    if mirror.endswith("/debian"):
        sources.append(f"deb {mirror}-security bookworm-security main")
    workdir = Path(tempfile.mkdtemp(prefix="agentrt-base-"))
    tarball = workdir / "rootfs.tar"
    command = [
        "mmdebstrap", "--variant=essential", "--include=python3,ca-certificates", "--format=tar",
        *[f"--dpkgopt=path-exclude={path}" for path in _MMDEBSTRAP_EXCLUDES],
        "bookworm", str(tarball), *sources,
    ]  # fmt: skip
    say(f"building an offline Debian base with mmdebstrap from {mirror} (about 20-40 s)")
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ImageBuildError(
                f"mmdebstrap failed (exit {done.returncode}); it needs root or unprivileged user "
                f"namespaces and a reachable Debian mirror ({MIRROR_ENV}):\n"
                f"{done.stderr.strip()[-2000:]}"
            )
        repository, _, version = tag.rpartition(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=version,
            changes=[f'LABEL {IMAGE_LABEL}="base"', 'CMD ["python3"]'],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _has_image(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _choose_base(
    client: Any,
    *,
    base: str | None,
    offline: bool,
    rebuild_base: bool,
    mirror: str | None,
    report: BuildReport,
    say: Callable[[str], None],
) -> str:
    import docker.errors

    if base:
        if not _has_image(client, base):
            if offline:
                raise ImageBuildError(f"base image {base!r} is not present and --offline was given")
            say(f"pulling {base}")
            client.images.pull(base)
        return base
    if not offline:
        if _has_image(client, DEFAULT_BASE):
            return DEFAULT_BASE
        try:
            say(f"pulling {DEFAULT_BASE}")
            client.images.pull(DEFAULT_BASE)
            return DEFAULT_BASE
        except docker.errors.APIError as exc:
            say(f"cannot pull {DEFAULT_BASE} ({exc.explanation or exc}); building offline")
    if rebuild_base or not _has_image(client, OFFLINE_BASE):
        started = time.monotonic()
        build_offline_base(client, mirror=mirror, say=say)
        report.offline_base_built = True
        report.seconds["offline_base"] = round(time.monotonic() - started, 1)
    else:
        say(f"reusing the offline base {OFFLINE_BASE} (--rebuild-base to refresh it)")
    return OFFLINE_BASE


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    base: str | None = None,
    offline: bool = False,
    rebuild_base: bool = False,
    dockerfile: str | Path | None = None,
    mirror: str | None = None,
    no_cache: bool = False,
    docker_host: str | None = None,
    say: Callable[[str], None] = _say,
) -> BuildReport:
    """Build the sandbox image (blocking; call it from a thread inside async code).

    Args:
        tag: Image tag to build.
        base: Base image; by default `python:3.11-slim`, falling back to an
            offline Debian base when it is absent and cannot be pulled.
        offline: Never pull; use (or build) the mmdebstrap base.
        rebuild_base: Rebuild the offline base even if it exists.
        dockerfile: Dockerfile to use instead of `deploy/sandbox/Dockerfile`.
        mirror: Debian mirror for the offline base.
        no_cache: Build without Docker's layer cache.
        docker_host: Daemon address; None reads DOCKER_HOST.
        say: Progress messages.

    Raises:
        ImageBuildError: A step failed; the message says which and what to do.
    """
    import docker
    import docker.errors

    started = time.monotonic()
    source = Path(dockerfile) if dockerfile else find_dockerfile()
    try:
        client = (
            docker.DockerClient(base_url=docker_host, version="auto")
            if docker_host
            else (docker.from_env(version="auto"))
        )
        arch = str(client.info().get("Architecture") or platform.machine())
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            f"cannot reach the Docker daemon ({exc}); start it (`dockerd &` as root, or "
            f"`sudo systemctl start docker`)"
        ) from None
    report = BuildReport(tag=tag, base="")
    try:
        report.base = _choose_base(
            client, base=base, offline=offline, rebuild_base=rebuild_base, mirror=mirror,
            report=report, say=say,
        )  # fmt: skip
        context = Path(tempfile.mkdtemp(prefix="agentrt-image-"))
        try:
            step = time.monotonic()
            shutil.copyfile(source, context / "Dockerfile")
            download_wheels(
                context / "wheels", arch="aarch64" if arch == "arm64" else arch, say=say
            )
            report.seconds["wheels"] = round(time.monotonic() - step, 1)
            step = time.monotonic()
            say(f"building {tag} on {report.base} (network off)")
            report.image_id = _docker_build(client, context, tag, report.base, no_cache, say)
            report.seconds["docker_build"] = round(time.monotonic() - step, 1)
        finally:
            shutil.rmtree(context, ignore_errors=True)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"Docker failed while building the sandbox image: {exc}") from None
    finally:
        client.close()
    report.seconds["total"] = round(time.monotonic() - started, 1)
    return report


def _docker_build(
    client: Any,
    context: Path,
    tag: str,
    base: str,
    no_cache: bool,
    say: Callable[[str], None],
    *,
    labels: dict[str, str] | None = None,
) -> str:
    image_id = ""
    stream = client.api.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": base},
        network_mode="none",
        rm=True,
        forcerm=True,
        pull=False,
        nocache=no_cache,
        labels={IMAGE_LABEL: "1", **(labels or {})},
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            raise ImageBuildError(f"docker build failed: {str(chunk['error']).strip()}")
        text = str(chunk.get("stream") or "").strip()
        if text.startswith("Step "):
            say(text)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = str(aux["ID"])
    if not image_id:
        image_id = str(client.images.get(tag).id)
    return image_id
