"""A sandbox image with MCP server packages, built offline from wheels the host downloads.

`agentrt sandbox build-image --with mcp-server-time` derives an image from the
sandbox image: the host pip-downloads the packages as wheels for the image's
Python (CPython 3.11 on Linux), and the build, with its network switched off,
installs them under `/opt/agentrt/mcp` with their console scripts on `PATH`.
So `uvx`-style servers run inside the hardened sandbox with no registry
access from inside it. The runtime's own dependencies in `/opt/agentrt/site`
stay untouched: the tool worker runs `python3 -I` and never sees these.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from runtime.sandbox.hardening import default_image
from runtime.sandbox.image import (
    BuildReport,
    ImageBuildError,
    _docker_build,
    _say,
    download_wheels,
)

__all__ = ["DEFAULT_MCP_IMAGE", "MCP_SITE", "build_mcp_image", "check_requirements"]

DEFAULT_MCP_IMAGE = "agentrt-sandbox-mcp:latest"
MCP_SITE = "/opt/agentrt/mcp"
PACKAGES_LABEL = "agentrt.sandbox.mcp_packages"
# a requirement as pip reads it: a name, extras, a version specifier; nothing that
# could become a path, URL or option inside the build
_REQUIREMENT_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?([<>=!~]=?[^\s;]+)?$"
)

_DOCKERFILE = f"""\
ARG BASE
FROM ${{BASE}}
USER 0:0
COPY wheels/ /tmp/wheels/
RUN set -eu; \\
    pip_wheel="$(ls /tmp/wheels/pip-*.whl | head -n 1)"; \\
    python3 "$pip_wheel/pip" install --no-index --no-cache-dir --disable-pip-version-check \\
        --root-user-action=ignore --no-warn-script-location --find-links /tmp/wheels \\
        --target {MCP_SITE} -r /tmp/wheels/requirements.txt; \\
    rm -rf /tmp/wheels
ENV PYTHONPATH={MCP_SITE} PATH={MCP_SITE}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 65534:65534
"""


def check_requirements(packages: Sequence[str]) -> list[str]:
    """The packages as pip requirements; anything else (a path, URL, option) is refused.

    Raises:
        ImageBuildError: A package is not a plain requirement, or none was given.
    """
    if not packages:
        raise ImageBuildError("give at least one package to install (--with PKG)")
    for package in packages:
        if not _REQUIREMENT_RE.match(package):
            raise ImageBuildError(
                f"{package!r} is not a package requirement (write a name such as "
                f"mcp-server-time, or name==1.2.3)"
            )
    return list(packages)


def build_mcp_image(
    packages: Sequence[str],
    *,
    tag: str = DEFAULT_MCP_IMAGE,
    base: str | None = None,
    no_cache: bool = False,
    docker_host: str | None = None,
    say: Callable[[str], None] = _say,
) -> BuildReport:
    """Derive an image with `packages` installed from the sandbox image (blocking).

    Args:
        packages: Python packages with MCP servers (`mcp-server-time`, `mcp-server-git`).
        tag: The image to build.
        base: The sandbox image to derive from (default: `agentrt-sandbox:latest`).
        no_cache: Build without Docker's layer cache.
        docker_host: Daemon address; None reads DOCKER_HOST.
        say: Progress messages.

    Raises:
        ImageBuildError: The base is missing, pip cannot download a wheel, or the build failed.
    """
    import docker
    import docker.errors

    requirements = check_requirements(packages)
    base = base or default_image()
    started = time.monotonic()
    try:
        client = (
            docker.DockerClient(base_url=docker_host, version="auto")
            if docker_host
            else docker.from_env(version="auto")
        )
        arch = str(client.info().get("Architecture") or "x86_64")
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"cannot reach the Docker daemon ({exc}); start it") from None
    report = BuildReport(tag=tag, base=base)
    context = Path(tempfile.mkdtemp(prefix="agentrt-mcp-image-"))
    try:
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            raise ImageBuildError(
                f"the sandbox image {base!r} is not built yet; run `agentrt sandbox build-image` "
                f"first"
            ) from None
        step = time.monotonic()
        (context / "Dockerfile").write_text(_DOCKERFILE)
        download_wheels(
            context / "wheels",
            arch="aarch64" if arch == "arm64" else arch,
            requirements=requirements,
            say=say,
        )
        report.seconds["wheels"] = round(time.monotonic() - step, 1)
        step = time.monotonic()
        say(f"building {tag} on {base} with {', '.join(requirements)} (network off)")
        report.image_id = _docker_build(
            client,
            context,
            tag,
            base,
            no_cache,
            say,
            labels={PACKAGES_LABEL: " ".join(requirements)},
        )
        report.seconds["docker_build"] = round(time.monotonic() - step, 1)
    except docker.errors.DockerException as exc:
        raise ImageBuildError(f"Docker failed while building {tag}: {exc}") from None
    finally:
        shutil.rmtree(context, ignore_errors=True)
        client.close()
    report.seconds["total"] = round(time.monotonic() - started, 1)
    return report
