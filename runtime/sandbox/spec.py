"""Per-tool sandbox settings, given through `@tool(sandbox=...)`.

Every field is optional: `None` means "the executor's hardened default". The
model is deliberately small so `import runtime` stays cheap.
"""

from __future__ import annotations

import pydantic


class Mount(pydantic.BaseModel):
    """A host directory made visible to the tool, read-only unless stated."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    source: str
    target: str
    read_only: bool = True


class SandboxSpec(pydantic.BaseModel):
    """Overrides of the sandbox defaults for one tool.

    Attributes:
        memory: Memory limit (and memory+swap), e.g. "256m".
        cpus: CPU quota in cores, e.g. 0.5.
        network: Ask for network access. Granted only when policy allows it too.
        image: Sandbox image to use instead of the default one.
        mounts: Host directories to mount (read-only by default).
        pids_limit: Maximum processes/threads inside the container.
        tmpfs_size: Size of the writable /tmp, e.g. "64m".
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    memory: str | None = None
    cpus: float | None = pydantic.Field(default=None, gt=0)
    network: bool = False
    image: str | None = None
    mounts: tuple[Mount, ...] = ()
    pids_limit: int | None = pydantic.Field(default=None, gt=0)
    tmpfs_size: str | None = None
