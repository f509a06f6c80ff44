"""`agentrt sandbox build-image|reap`: manage the Docker sandbox."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="Manage the Docker sandbox: build its image, remove orphaned containers.",
        description="Manage the Docker sandbox that approved tool calls run in.",
    )
    actions = parser.add_subparsers(dest="sandbox_action", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build-image",
        help="Build the sandbox image (offline when no registry is reachable).",
        description=(
            "Build the sandbox image from deploy/sandbox/Dockerfile on python:3.11-slim, or, "
            "when that cannot be pulled, on a Debian bookworm base made with mmdebstrap. "
            "The image carries the runtime's core dependencies pinned to this host's versions."
        ),
    )
    build.add_argument(
        "--tag", help="image tag (default: $AGENTRT_SANDBOX_IMAGE or agentrt-sandbox:latest)"
    )
    build.add_argument("--base", help="base image with Python 3.11 (default: python:3.11-slim)")
    build.add_argument("--offline", action="store_true", help="never pull; use the mmdebstrap base")
    build.add_argument("--rebuild-base", action="store_true", help="rebuild the offline base too")
    build.add_argument(
        "--dockerfile", help="Dockerfile to use (default: deploy/sandbox/Dockerfile)"
    )
    build.add_argument("--mirror", help="Debian mirror for the offline base")
    build.add_argument("--no-cache", action="store_true", help="ignore Docker's layer cache")
    build.add_argument(
        "--with",
        dest="with_packages",
        nargs="+",
        metavar="PKG",
        help="derive an image with these Python MCP server packages (e.g. mcp-server-time) from "
        "the sandbox image: the host downloads their wheels with pip, the build installs them "
        "with its network off (default tag: agentrt-sandbox-mcp:latest)",
    )
    build.add_argument("--json", action="store_true", help="print a JSON report")
    build.set_defaults(handler=_build_image)

    reap = actions.add_parser(
        "reap",
        help="Remove sandbox containers left by dead agentrt processes.",
        description=(
            "Remove this runtime's labelled containers (in any state, Created included) whose "
            "owning process on this host is gone. --all removes every one of them, also those "
            "of running processes."
        ),
    )
    reap.add_argument("--all", action="store_true", help="remove every agentrt sandbox container")
    reap.add_argument(
        "--owner",
        metavar="OWNER",
        help="only containers whose agentrt.owner label is OWNER (HOST/PID/START, one process's); "
        "with --all, all of that owner's",
    )
    reap.add_argument("--docker-host", help="daemon address (default: $DOCKER_HOST)")
    reap.add_argument("--json", action="store_true", help="print the removed ids as JSON")
    reap.set_defaults(handler=_reap)


def _build_image(args: argparse.Namespace) -> int:
    from runtime.sandbox.hardening import default_image
    from runtime.sandbox.image import ImageBuildError, build_image

    if args.with_packages:
        return _build_mcp_image(args)
    try:
        report = build_image(
            args.tag or default_image(),
            base=args.base,
            offline=args.offline,
            rebuild_base=args.rebuild_base,
            dockerfile=args.dockerfile,
            mirror=args.mirror,
            no_cache=args.no_cache,
        )
    except ImageBuildError as exc:
        print(f"agentrt sandbox build-image: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"built {report.tag} on {report.base} in {report.seconds['total']:g} s")
    return 0


def _build_mcp_image(args: argparse.Namespace) -> int:
    from runtime.sandbox.image import ImageBuildError
    from runtime.sandbox.mcp_image import DEFAULT_MCP_IMAGE, build_mcp_image

    try:
        report = build_mcp_image(
            args.with_packages,
            tag=args.tag or DEFAULT_MCP_IMAGE,
            base=args.base,
            no_cache=args.no_cache,
        )
    except ImageBuildError as exc:
        print(f"agentrt sandbox build-image: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(f"built {report.tag} on {report.base} in {report.seconds['total']:g} s")
    return 0


def _reap(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from runtime.sandbox import oci
    from runtime.sandbox.containers import DockerAPI, SandboxUnavailable
    from runtime.sandbox.reaper import reap

    async def run() -> list[str]:
        api = DockerAPI(args.docker_host)
        try:
            removed = await reap(api, everything=args.all, owner=args.owner)
            if oci.STATE_ROOT.exists() and os.geteuid() == 0:  # containers the crun engine ran
                removed += await reap(oci.CrunAPI(api), everything=args.all, owner=args.owner)
            return removed
        finally:
            api.close()

    try:
        removed = asyncio.run(run())
    except SandboxUnavailable as exc:
        print(f"agentrt sandbox reap: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"removed": removed}))
    else:
        print(f"removed {len(removed)} sandbox container(s)")
        for container_id in removed:
            print(f"  {container_id[:12]}")
    return 0
