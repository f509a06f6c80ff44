"""Which model name a request for `NAME` is sent under: the promoted version, if it is loaded.

`agentrt run --model NAME` (and any service built on the library) asks the
adapter store what serves `NAME` and sends `NAME@vN`; a name the store does
not know is sent as it is. A name the store does know is sent only when the
server lists it in `/v1/models` right now, so a request never goes to an
adapter the server has not loaded (after a restart, say): the caller gets
`AdapterNotLoaded`, with the command that fixes it, instead of the server's 404.
"""

from __future__ import annotations

import asyncio

from runtime.deploy.registry import AdapterRegistry, AdapterVersion, split_served_name
from runtime.deploy.server import AdapterServer

__all__ = ["AdapterNotLoaded", "resolve_model"]


class AdapterNotLoaded(Exception):
    """The adapter store names a version the server does not serve; the message says what to do."""


async def resolve_model(name: str, *, registry: AdapterRegistry, server: AdapterServer) -> str:
    """The model name to send for `name` (see the module docstring).

    Raises:
        AdapterNotLoaded: The store knows `name` but the server has not loaded
            what it resolves to, or no version of it was ever promoted.
        AdapterServerError: The server's model list could not be read.
    """
    pinned = split_served_name(name)
    family = pinned[0] if pinned else name
    versions = await asyncio.to_thread(registry.versions, family)
    if not versions:
        return name  # not a deployed adapter: whatever the server calls it
    serving = await asyncio.to_thread(registry.serving, family)
    target = name if pinned else (serving.served_name if serving else name)
    listed = {card.id for card in await server.models()}
    if target in listed:
        return target
    url = server.base_url
    if not pinned and serving is None:
        raise AdapterNotLoaded(
            f"{name} has no promoted version in the adapter store (every deploy of it was "
            f"refused, rejected or rolled back) and {url} serves nothing by that name: "
            f"`agentrt adapter list {name}` shows why"
        )
    if serving is not None and target == serving.served_name:
        raise AdapterNotLoaded(
            f"{name} is served by {target}, which {url} has not loaded (was the server "
            f"restarted?): `agentrt adapter restore {family} --base-url {url}` loads it again"
        )
    raise AdapterNotLoaded(
        f"{target} is not loaded on {url} (it is {_status(versions, target)}); use --model "
        f"{family} for the version that serves"
    )


def _status(versions: list[AdapterVersion], target: str) -> str:
    found = next((v for v in versions if v.served_name == target), None)
    return "not a recorded version" if found is None else found.status.value
