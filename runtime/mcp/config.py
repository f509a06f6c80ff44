"""The MCP servers file: which third-party MCP servers an agent may use, and how they run.

Read as strictly as policy files (`runtime.policy.loader.read_strict_yaml`:
no duplicate keys, aliases, tags or YAML 1.1 guesses) into pydantic models
that refuse unknown keys. Every problem names the file, line and key, and any
problem refuses the whole file.

    version: 1
    servers:
      time:                              # tools join the registry as time.TOOL
        transport: stdio                 # runs inside the hardened Docker sandbox
        command: mcp-server-time
        args: ["--local-timezone", "UTC"]
        image: agentrt-sandbox-mcp:latest  # `agentrt sandbox build-image --with PKG`
        network: false                   # true asks; the policy must grant `network` too
        workspace: false                 # true mounts the --workspace read-only at /workspace
        mounts: [{source: /srv/data, target: /data}]   # read-only unless read_only: false
        start_timeout_s: 30
        call_timeout_s: 30
      docs:
        transport: http                  # streamable HTTP, not sandboxed by this runtime
        url: https://mcp.example.com/mcp
        headers_from_env: {Authorization: DOCS_MCP_AUTHORIZATION}

Header values come only from the environment, never from the file, so the
file can be reviewed and committed without secrets.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from runtime.policy.loader import PolicyLoadError, read_strict_yaml, validation_problems
from runtime.sandbox.mcp_image import DEFAULT_MCP_IMAGE

__all__ = [
    "HttpServer",
    "McpConfig",
    "McpConfigError",
    "ServerMount",
    "StdioServer",
    "load_mcp_config",
    "lock_path",
]

SERVER_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class McpConfigError(ValueError):
    """The MCP servers file cannot be used; the message names the file, line and key."""


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class ServerMount(_Strict):
    """A host directory visible to a stdio server, read-only unless stated."""

    source: str
    target: str
    read_only: bool = True


class _Server(_Strict):
    start_timeout_s: float = pydantic.Field(default=30.0, gt=0, le=600)
    call_timeout_s: float = pydantic.Field(default=30.0, gt=0, le=3600)


class StdioServer(_Server):
    """A server started as a command in the Docker sandbox, spoken to over stdin/stdout."""

    transport: Literal["stdio"]
    command: str = pydantic.Field(min_length=1)
    args: tuple[str, ...] = ()
    image: str = DEFAULT_MCP_IMAGE
    network: bool = False
    workspace: bool = False
    mounts: tuple[ServerMount, ...] = ()
    memory: str | None = None
    cpus: float | None = pydantic.Field(default=None, gt=0)
    pids_limit: int | None = pydantic.Field(default=None, gt=0)


class HttpServer(_Server):
    """A remote server over streamable HTTP; its headers come from environment variables."""

    transport: Literal["http"]
    url: str
    headers_from_env: dict[str, str] = {}

    @pydantic.field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("url must be an http:// or https:// URL")
        return value

    @pydantic.field_validator("headers_from_env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _HEADER_RE.match(header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not _ENV_RE.match(variable):
                raise ValueError(
                    f"header {header!r}: {variable!r} must name an environment variable "
                    f"(header values are never written in this file)"
                )
        return value

    def headers(self) -> dict[str, str]:
        """The headers, read from the environment now.

        Raises:
            McpConfigError: A named variable is not set.
        """
        out: dict[str, str] = {}
        for header, variable in self.headers_from_env.items():
            value = os.environ.get(variable)
            if value is None:
                raise McpConfigError(
                    f"environment variable {variable} (header {header}) is not set"
                )
            out[header] = value
        return out


ServerConfig = Annotated[StdioServer | HttpServer, pydantic.Field(discriminator="transport")]


class McpConfig(_Strict):
    """The servers of one MCP servers file, by id."""

    version: Literal[1]
    servers: dict[str, ServerConfig]

    @pydantic.field_validator("servers")
    @classmethod
    def _ids(cls, value: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for server_id in value:
            if not SERVER_ID_RE.match(server_id):
                raise ValueError(
                    f"server id {server_id!r} must match {SERVER_ID_RE.pattern} (no dots: tools "
                    f"are named SERVER.TOOL)"
                )
        return value


def load_mcp_config(path: str | os.PathLike[str]) -> McpConfig:
    """Read an MCP servers file strictly.

    Raises:
        McpConfigError: The file is missing, is not strict YAML, or breaks the model.
    """
    source = Path(path)
    if not source.is_file():
        raise McpConfigError(f"MCP servers file {source} does not exist")
    try:
        data, lines = read_strict_yaml(source)
        try:
            return McpConfig.model_validate(data)
        except pydantic.ValidationError as exc:
            raise PolicyLoadError(validation_problems(str(source), data, lines, exc)) from None
    except PolicyLoadError as exc:
        detail = "\n".join(f"  {problem}" for problem in exc.problems)
        raise McpConfigError(
            f"refusing to load MCP servers file ({len(exc.problems)} problem(s)):\n{detail}"
        ) from None


def lock_path(config_path: str | os.PathLike[str]) -> Path:
    """The pin lock file next to the config: `mcp.yaml` → `mcp.lock`."""
    return Path(config_path).with_suffix(".lock")
