"""Which model name a request for `NAME` is sent under: the promoted version, if it is loaded.

`agentrt run --model NAME` (and any service built on the library) asks the
adapter store what serves `NAME` and sends `NAME@vN`; a name the store does
not know is sent as it is. A name the store does know is sent only when the
server lists it in `/v1/models` right now, so a request never goes to an
adapter the server has not loaded (after a restart, say): the caller gets
`AdapterNotLoaded`, with the command that fixes it, instead of the server's 404.
The answer also carries how that version was deployed to be asked: its call
form (`runtime.model.call_form`) and the number of worked requests it learned
to see before a request (`runtime.prompting.similar_requests`), so a run asks
it the way it was trained and measured.

A long-lived process (`agentrt serve`) holds a `DeployedModel`, which asks
again for every run, so a promote or rollback takes effect from the next run
without a restart.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, NamedTuple

from runtime.deploy.registry import (
    AdapterRegistry,
    AdapterVersion,
    SQLAdapterRegistry,
    open_existing_registry,
    split_served_name,
)
from runtime.deploy.server import AdapterServer
from runtime.storage.url import StoreURL

if TYPE_CHECKING:
    from runtime.model.call_form import CallForm
    from runtime.model.client import ModelClient, OpenAICompatibleClient

__all__ = ["AdapterNotLoaded", "DeployedModel", "ResolvedModel", "RunModel", "resolve_model"]


class AdapterNotLoaded(Exception):
    """The adapter store names a version the server does not serve; the message says what to do."""


class ResolvedModel(NamedTuple):
    """What to send for a requested name.

    Attributes:
        name: The model name to send (`NAME@vN` for a deployed adapter).
        call_form: The form that version writes calls in, as deployed; None for
            a name the adapter store does not know (the caller's own choice holds).
        similar_requests: The worked requests to show before a request, as
            deployed; None for a name the store does not know.
    """

    name: str
    call_form: CallForm | None = None
    similar_requests: int | None = None


class RunModel(NamedTuple):
    """The client one run uses, and the worked requests its model should see.

    Attributes:
        client: The model client, under the name that serves now.
        similar_requests: Worked requests before each request (the deployed
            version's; None when the store does not know the name: the
            caller's own choice holds).
    """

    client: ModelClient
    similar_requests: int | None = None


async def resolve_model(
    name: str, *, registry: AdapterRegistry, server: AdapterServer
) -> ResolvedModel:
    """The model name to send for `name`, and how to ask it (see the module docstring).

    Raises:
        AdapterNotLoaded: The store knows `name` but the server has not loaded
            what it resolves to, or no version of it was ever promoted.
        AdapterServerError: The server's model list could not be read.
    """
    pinned = split_served_name(name)
    family = pinned[0] if pinned else name
    versions = await asyncio.to_thread(registry.versions, family)
    if not versions:
        return ResolvedModel(name)  # not a deployed adapter: whatever the server calls it
    serving = await asyncio.to_thread(registry.serving, family)
    target = name if pinned else (serving.served_name if serving else name)
    listed = {card.id for card in await server.models()}
    if target in listed:
        chosen = next((v for v in versions if v.served_name == target), None)
        if chosen is None:
            return ResolvedModel(target)
        return ResolvedModel(target, chosen.call_form, chosen.similar_requests)
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


class DeployedModel:
    """A model client whose name is resolved again for each run (see `resolve_model`).

    `for_run()` asks the adapter store what serves the client's model name and
    checks that the server lists it, then returns the client under that name
    (`NAME@vN`; the same connections) and in that version's call form, with the
    number of worked requests that version should see. A name the store does not know is sent
    as given; a SQLite store that does not exist yet is looked for again at
    each run, so a first deploy needs no restart either.

    Args:
        client: The model client, named as asked for (`--model NAME`).
        store: The adapter store URL (None: `.agentrt/adapters.db`).
        api_key: For the server's `/v1/models` (default: none).
    """

    def __init__(
        self,
        client: OpenAICompatibleClient,
        *,
        store: str | os.PathLike[str] | StoreURL | None = None,
        api_key: str | None = None,
    ) -> None:
        self.client = client
        self._store = store
        self._registry: SQLAdapterRegistry | None = None
        self._opening = asyncio.Lock()
        self._server = AdapterServer(client.base_url, api_key=api_key)
        self._renamed: dict[tuple[str, CallForm | None], OpenAICompatibleClient] = {}

    async def open(self) -> None:
        """Open the store now if it exists, so a bad URL or an unreachable server fails early.

        Raises:
            RegistryError: Not a store URL.
            StoreError: PostgreSQL cannot be reached, or a newer agentrt migrated it.
        """
        await self._open_registry()

    async def _open_registry(self) -> SQLAdapterRegistry | None:
        async with self._opening:
            if self._registry is None:
                self._registry = await asyncio.to_thread(open_existing_registry, self._store)
            return self._registry

    async def for_run(self) -> RunModel:
        """The client to use for one run, under the name that serves now.

        Raises:
            AdapterNotLoaded: The store names a version the server has not loaded.
            AdapterServerError: The server's model list could not be read.
            StoreError: The store could not be read.
        """
        registry = await self._open_registry()
        if registry is None:
            return RunModel(self.client)
        resolved = await resolve_model(self.client.model, registry=registry, server=self._server)
        if resolved.name == self.client.model and resolved.call_form is None:
            return RunModel(self.client)
        key = (resolved.name, resolved.call_form)
        found = self._renamed.get(key)
        if found is None:
            found = self._renamed[key] = self.client.with_model(
                resolved.name, call_form=resolved.call_form
            )
        return RunModel(found, resolved.similar_requests)

    async def aclose(self) -> None:
        """Close the store and the server connection (not the model client: its owner does)."""
        await self._server.aclose()
        if self._registry is not None:
            self._registry.close()
