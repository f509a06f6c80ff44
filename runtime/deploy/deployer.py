"""Deploy, roll back and restore adapter versions on a live vLLM server.

`deploy_adapter` is the whole path of one adapter directory:

1. read it (sha256 of the files vLLM loads: the version's identity) and the
   base the server serves, and refuse what cannot work
   (`runtime.deploy.compatibility`) before the server sees anything;
2. take the next version number and load it as `NAME@vN`: a new name for new
   weights, so no prefix-cache block computed with other weights is reused;
3. check that `/v1/models` lists it under the base;
4. ask it and the version serving `NAME` (the base model on a first deploy)
   the same held-out items and apply the promotion rule (`runtime.deploy.gate`);
5. promote it (compare-and-set: if another deploy won meanwhile, nothing
   changes) and unload versions older than the rollback target, or unload it
   and say why.

Nothing is ever sent to a name the server has not listed. Registry calls
(SQLite) and file hashing run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.deploy.checkpoint import AdapterDir, BaseModelDir, CheckpointError
from runtime.deploy.compatibility import Refusal, check_adapter
from runtime.deploy.gate import GateResult, decide_promotion
from runtime.deploy.registry import (
    AdapterRegistry,
    AdapterVersion,
    RegistryError,
    ServingChanged,
    VersionStatus,
    split_served_name,
)
from runtime.deploy.server import AdapterServer, AdapterServerError, ModelCard
from runtime.finetune.evaluate import EvalItem, ItemScore, Prediction, score_item
from runtime.model.adapters import call_form_of, similar_requests_of
from runtime.model.call_form import CallForm

__all__ = [
    "DeployOptions",
    "DeployOutcome",
    "DeployStatus",
    "deploy_adapter",
    "restore_adapter",
    "rollback_adapter",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


class DeployStatus(enum.StrEnum):
    """How a deploy, rollback or restore ended."""

    PROMOTED = "promoted"  # the new version serves NAME (or a rollback/restore took effect)
    UNCHANGED = "unchanged"  # nothing to do: these files already serve NAME
    REJECTED = "rejected"  # loaded and measured, worse than what serves: unloaded
    REFUSED = "refused"  # cannot work, or cannot be done: nothing was sent to the server
    FAILED = "failed"  # the server would not do it, or could not be reached


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    """How to deploy.

    Attributes:
        max_lora_rank: The server's `--max-lora-rank` (vLLM's default 16).
        base_model: The base model directory the server serves; default the
            root `/v1/models` reports, when it is a directory here.
        base_aliases: Other names of the served base (what adapters record
            in `base_model_name_or_path`).
        server_path: The adapter directory as the server sees it (another
            machine, a container mount); default the local directory.
        max_tokens: Per eval reply.
        concurrency: Eval requests in flight per model (vLLM batches them).
        timeout_s: One eval request.
        api_key: Bearer token for the eval requests.
        keep_previous: Retired versions kept loaded for an instant rollback.
    """

    max_lora_rank: int = 16
    base_model: Path | None = None
    base_aliases: tuple[str, ...] = ()
    server_path: str | None = None
    max_tokens: int = 192
    concurrency: int = 8
    timeout_s: float = 120.0
    api_key: str = "not-needed"
    keep_previous: int = 1


@dataclasses.dataclass(frozen=True)
class DeployOutcome:
    """What happened, with a sentence for a person and fields for a program.

    Attributes:
        status: See `DeployStatus`.
        name: The adapter name.
        message: One sentence.
        version: The version deployed, rolled back to or restored.
        serving: What `NAME` resolves to now (`NAME@vN`), or None.
        refusals: Why the adapter cannot work (`refused`).
        gate: The eval gate's decision and figures.
        unloaded: Versions unloaded from the server on the way.
        predictions: Per item, both models' replies and scores (for a report file).
    """

    status: DeployStatus
    name: str
    message: str
    version: AdapterVersion | None = None
    serving: str | None = None
    refusals: tuple[Refusal, ...] = ()
    gate: GateResult | None = None
    unloaded: tuple[str, ...] = ()
    predictions: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in (DeployStatus.PROMOTED, DeployStatus.UNCHANGED)

    def to_dict(self, *, predictions: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status.value,
            "name": self.name,
            "message": self.message,
            "version": self.version.to_dict() if self.version else None,
            "serving": self.serving,
            "refusals": [r.to_dict() for r in self.refusals],
            "gate": self.gate.to_dict() if self.gate else None,
            "unloaded": list(self.unloaded),
        }
        if predictions:
            out["predictions"] = list(self.predictions)
        return out


def _refused(name: str, message: str, *refusals: Refusal) -> DeployOutcome:
    return DeployOutcome(DeployStatus.REFUSED, name, message, refusals=tuple(refusals))


def _check_name(name: str) -> str | None:
    if not _NAME.match(name):
        return (
            f"adapter name {name!r}: use letters, digits and . _ : / - (the server sees "
            "NAME@vN, so NAME itself has no '@')"
        )
    return None


async def deploy_adapter(
    adapter_dir: Path,
    name: str,
    items: Sequence[EvalItem],
    *,
    server: AdapterServer,
    registry: AdapterRegistry,
    options: DeployOptions = DeployOptions(),
) -> DeployOutcome:
    """Load `adapter_dir` as the next version of `name`, gate it, promote it or unload it.

    Args:
        adapter_dir: A LoRA adapter directory (`agentrt finetune --out`).
        name: The name clients ask for; versions are served as `NAME@vN`.
        items: Held-out items both the new version and the serving one answer.
        server: The vLLM server's adapter endpoints.
        registry: Where versions are recorded.
        options: See `DeployOptions`.
    """
    problem = _check_name(name)
    if problem is not None:
        return _refused(name, problem)
    if not items:
        return _refused(name, "the eval gate needs held-out items; none were given")
    try:
        adapter = await asyncio.to_thread(AdapterDir.read, adapter_dir)
        cards = await server.models()
    except CheckpointError as exc:
        return _refused(name, str(exc), Refusal("not_an_adapter", str(exc)))
    except AdapterServerError as exc:
        return DeployOutcome(DeployStatus.FAILED, name, str(exc))
    base_card = next((c for c in cards if c.parent is None), None)
    if base_card is None:
        return DeployOutcome(DeployStatus.FAILED, name, f"{server.base_url} lists no base model")
    if name == base_card.id:
        return _refused(name, f"{name!r} is the base model's name; give the adapter its own")
    base = await _base_model(base_card, options)
    if isinstance(base, Refusal):
        return _refused(name, base.message, base)
    known = [base_card.id, *([base_card.root] if base_card.root else []), *options.base_aliases]
    refusals = check_adapter(adapter, base, max_lora_rank=options.max_lora_rank, base_names=known)
    if refusals:
        return _refused(
            name,
            f"{adapter_dir} cannot work on {base_card.id}: "
            + "; ".join(r.message for r in refusals),
            *refusals,
        )
    incumbent = await asyncio.to_thread(registry.serving, name)
    if incumbent is not None and incumbent.digest == adapter.digest:
        return DeployOutcome(
            DeployStatus.UNCHANGED,
            name,
            f"these files already serve {name} as {incumbent.served_name}",
            version=incumbent,
            serving=incumbent.served_name,
        )
    listed = {card.id for card in cards}
    if incumbent is not None and incumbent.served_name not in listed:
        return _refused(
            name,
            f"{name} is served by {incumbent.served_name}, which the server at "
            f"{server.base_url} has not loaded (restarted?): run `agentrt adapter restore "
            f"{name}` first, so the new version is measured against it",
        )
    above = max(
        (parsed[1] for c in cards if (parsed := split_served_name(c.id)) and parsed[0] == name),
        default=0,
    )
    version = await asyncio.to_thread(
        registry.reserve,
        name,
        path=str(adapter.path),
        server_path=options.server_path or str(adapter.path),
        base_url=server.base_url,
        base_model=base_card.id,
        digest=adapter.digest,
        files=adapter.files,
        above=above,
        call_form=await asyncio.to_thread(call_form_of, adapter.path),
        similar_requests=await asyncio.to_thread(similar_requests_of, adapter.path),
    )
    return await _load_and_gate(version, incumbent, base_card, items, server, registry, options)


async def _base_model(card: ModelCard, options: DeployOptions) -> BaseModelDir | Refusal:
    folder = options.base_model
    if folder is None and card.root and await asyncio.to_thread(Path(card.root).is_dir):
        folder = Path(card.root)
    if folder is None:
        return Refusal(
            "base_unknown",
            f"cannot check the adapter against the served base {card.id!r} (its root "
            f"{card.root!r} is not a directory here): give --base-model DIR, the Hugging Face "
            "directory the server serves",
        )
    try:
        return await asyncio.to_thread(BaseModelDir.read, folder)
    except CheckpointError as exc:
        return Refusal("base_unknown", str(exc))


async def _load_and_gate(
    version: AdapterVersion,
    incumbent: AdapterVersion | None,
    base_card: ModelCard,
    items: Sequence[EvalItem],
    server: AdapterServer,
    registry: AdapterRegistry,
    options: DeployOptions,
) -> DeployOutcome:
    name, served = version.name, version.served_name

    async def mark(**fields: Any) -> AdapterVersion:
        return await asyncio.to_thread(registry.update, name, version.version, **fields)

    try:
        await server.load(served, version.server_path)
    except AdapterServerError as exc:
        failed = await mark(status=VersionStatus.FAILED, reason=str(exc))
        return DeployOutcome(
            DeployStatus.FAILED, name, f"the server did not load {served}: {exc}", version=failed
        )
    loaded_ok = False
    try:
        cards = await server.models()
        card = next((c for c in cards if c.id == served), None)
        if card is None or card.parent != base_card.id:
            raise AdapterServerError(
                f"{served} was loaded but /v1/models does not list it under {base_card.id}",
                status=200,
                kind="bad_response",
            )
        version = await mark(status=VersionStatus.EVALUATING, loaded=True)
        against = incumbent.served_name if incumbent is not None else base_card.id
        # each version is asked as it was trained (the call form and worked requests
        # recorded from its manifest), the base model plainly
        (new_predictions, new_scores), (old_predictions, old_scores) = await asyncio.gather(
            _measure(server.base_url, served, items, options, version),
            _measure(server.base_url, against, items, options, incumbent),
        )
        result = decide_promotion(
            new_scores,
            old_scores,
            candidate_predictions=new_predictions,
            incumbent_predictions=old_predictions,
            against=against,
            against_base=incumbent is None,
        )
        evaluation = {"items": len(items), **result.to_dict()}
        rows = tuple(
            _row(item, new, old, a, b)
            for item, new, old, a, b in zip(
                items, new_predictions, old_predictions, new_scores, old_scores, strict=True
            )
        )
        if result.promote:
            outcome = await _promote(version, incumbent, evaluation, result, server, registry)
            loaded_ok = outcome.status is DeployStatus.PROMOTED
            if loaded_ok:
                unloaded = await _unload_old(name, server, registry, options.keep_previous)
                outcome = dataclasses.replace(outcome, unloaded=unloaded)
            return dataclasses.replace(outcome, predictions=rows)
        version = await mark(evaluation=evaluation)
        reason = "; ".join(result.reasons)
        await _unload(server, registry, version)
        rejected = await mark(status=VersionStatus.REJECTED, reason=reason)
        return DeployOutcome(
            DeployStatus.REJECTED,
            name,
            f"{served} is worse than {against} and was unloaded: {reason}",
            version=rejected,
            serving=incumbent.served_name if incumbent else None,
            gate=result,
            unloaded=(served,),
            predictions=rows,
        )
    except BaseException as exc:
        if not loaded_ok:  # never leave a half-deployed version loaded
            await asyncio.shield(_abandon(server, registry, version, exc))
        if isinstance(exc, AdapterServerError):
            current = await asyncio.to_thread(registry.get, name, version.version)
            return DeployOutcome(DeployStatus.FAILED, name, str(exc), version=current)
        raise


async def _abandon(
    server: AdapterServer, registry: AdapterRegistry, version: AdapterVersion, exc: BaseException
) -> None:
    current = await asyncio.to_thread(registry.get, version.name, version.version)
    if current is None or current.status is VersionStatus.SERVING:
        return
    await _unload(server, registry, current)
    if current.status not in (VersionStatus.REJECTED, VersionStatus.FAILED):
        reason = f"deploy stopped: {type(exc).__name__}: {exc}"
        await asyncio.to_thread(
            registry.update, version.name, version.version, status=VersionStatus.FAILED,
            reason=reason,
        )  # fmt: skip


async def _promote(
    version: AdapterVersion,
    incumbent: AdapterVersion | None,
    evaluation: dict[str, Any],
    result: GateResult,
    server: AdapterServer,
    registry: AdapterRegistry,
) -> DeployOutcome:
    name, served = version.name, version.served_name
    await asyncio.to_thread(registry.update, name, version.version, evaluation=evaluation)
    try:
        promoted = await asyncio.to_thread(
            registry.promote,
            name,
            version.version,
            expected=incumbent.version if incumbent else None,
        )
    except ServingChanged as exc:
        reason = f"not promoted: {exc}; deploy again to measure against the new version"
        await _unload(server, registry, version)
        rejected = await asyncio.to_thread(
            registry.update, name, version.version, status=VersionStatus.REJECTED, reason=reason
        )
        return DeployOutcome(
            DeployStatus.REJECTED, name, f"{served} {reason}", version=rejected, gate=result
        )
    against = incumbent.served_name if incumbent else f"the base model {result.against}"
    return DeployOutcome(
        DeployStatus.PROMOTED,
        name,
        f"{served} now serves {name}: not worse than {against} on {evaluation['items']} "
        f"held-out items (full call {_pct(result.candidate.get('full_call'))} vs "
        f"{_pct(result.incumbent.get('full_call'))})",
        version=promoted,
        serving=served,
        gate=result,
    )


async def _measure(
    base_url: str,
    model: str,
    items: Sequence[EvalItem],
    options: DeployOptions,
    version: AdapterVersion | None,
) -> tuple[list[Prediction], list[ItemScore]]:
    """Ask `model` every item the way `agentrt eval` does (greedy, seed 0) and score it:
    in `version`'s call form and with its worked requests (None: the base model, plainly)."""
    from runtime.finetune.eval_variants import Variant, predict_variant

    call_form: CallForm = version.call_form if version is not None else "plain"
    similar = version.similar_requests if version is not None else 0
    runs = await predict_variant(
        base_url,
        model,
        items,
        Variant(label=model, similar=similar),
        max_tokens=options.max_tokens,
        concurrency=options.concurrency,
        progress=False,
        timeout_s=options.timeout_s,
        api_key=options.api_key,
        call_form=call_form,
    )
    predictions = [run.prediction for run in runs]
    return predictions, [score_item(i, p) for i, p in zip(items, predictions, strict=True)]


def _row(
    item: EvalItem, new: Prediction, old: Prediction, a: ItemScore, b: ItemScore
) -> dict[str, Any]:
    def reply(prediction: Prediction, score: ItemScore) -> dict[str, Any]:
        return {
            "text": prediction.text[:400],
            "calls": [dataclasses.asdict(call) for call in prediction.calls],
            "error": prediction.error,
            "correct": score.correct,
            "reasons": list(score.reasons),
        }

    return {"id": item.id, "category": item.category, "new": reply(new, a), "old": reply(old, b)}


async def _unload(
    server: AdapterServer, registry: AdapterRegistry, version: AdapterVersion
) -> str | None:
    """Unload one version; the server's complaint, if any (a version it no longer has is gone)."""
    try:
        await server.unload(version.served_name)
    except AdapterServerError as exc:
        if exc.status != 404 or exc.kind == "not_enabled":
            return str(exc)
    await asyncio.to_thread(registry.update, version.name, version.version, loaded=False)
    return None


async def _unload_old(
    name: str, server: AdapterServer, registry: AdapterRegistry, keep_previous: int
) -> tuple[str, ...]:
    """Unload loaded versions other than the serving one and the newest `keep_previous` retired."""
    versions = await asyncio.to_thread(registry.versions, name)
    retired = sorted(
        (v for v in versions if v.status is VersionStatus.RETIRED and v.loaded),
        key=lambda v: v.version,
        reverse=True,
    )
    keep = {v.version for v in retired[: max(0, keep_previous)]}
    unloaded = []
    for version in versions:
        if version.loaded and version.status is not VersionStatus.SERVING:
            if version.version in keep:
                continue
            if await _unload(server, registry, version) is None:
                unloaded.append(version.served_name)
    return tuple(unloaded)


async def _ensure_loaded(
    version: AdapterVersion, server: AdapterServer, registry: AdapterRegistry
) -> str | None:
    """Load `version` again under its own name if the server lacks it; why not, if it cannot.

    Its files must still be the ones measured (same sha256), so the name keeps
    meaning the same weights and no stale cache can be served under it.
    """
    listed = {card.id for card in await server.models()}
    if version.served_name in listed:
        if not version.loaded:
            await asyncio.to_thread(registry.update, version.name, version.version, loaded=True)
        return None
    try:
        files = await asyncio.to_thread(AdapterDir.read, Path(version.path))
    except CheckpointError as exc:
        return f"cannot load {version.served_name} again: {exc}"
    if files.digest != version.digest:
        return (
            f"cannot load {version.served_name} again: the files at {version.path} changed since "
            "it was measured (sha256 differs); deploy them as a new version instead"
        )
    await server.load(version.served_name, version.server_path)
    await asyncio.to_thread(registry.update, version.name, version.version, loaded=True)
    return None


async def rollback_adapter(
    name: str, *, server: AdapterServer, registry: AdapterRegistry
) -> DeployOutcome:
    """Serve the version that served `name` before the current one (no server restart).

    The previous version is normally still loaded; if not, it is loaded again
    under its own name once its files check out. The version rolled back from
    is unloaded and marked `rolled_back`, so a second rollback goes further back.
    """
    current = await asyncio.to_thread(registry.serving, name)
    if current is None:
        return _refused(name, f"{name} has no serving version to roll back")
    versions = await asyncio.to_thread(registry.versions, name)
    earlier = [
        v for v in versions if v.version < current.version and v.status is VersionStatus.RETIRED
    ]
    if not earlier:
        return _refused(name, f"{current.served_name} is the first version of {name} that served")
    target = max(earlier, key=lambda v: v.version)
    try:
        problem = await _ensure_loaded(target, server, registry)
        if problem is not None:
            return _refused(name, problem)
        promoted = await asyncio.to_thread(
            registry.promote,
            name,
            target.version,
            expected=current.version,
            demote_to=VersionStatus.ROLLED_BACK,
            reason=f"rolled back to {target.served_name}",
        )
        complaint = await _unload(server, registry, current)
    except (AdapterServerError, RegistryError) as exc:
        return DeployOutcome(DeployStatus.FAILED, name, str(exc), serving=current.served_name)
    note = f" ({current.served_name} stays loaded: {complaint})" if complaint else ""
    return DeployOutcome(
        DeployStatus.PROMOTED,
        name,
        f"{name} now serves {target.served_name} again; {current.served_name} is rolled back"
        + note,
        version=promoted,
        serving=target.served_name,
        unloaded=() if complaint else (current.served_name,),
    )


async def restore_adapter(
    name: str, *, server: AdapterServer, registry: AdapterRegistry
) -> DeployOutcome:
    """Load the serving version of `name` again if the server lost it (a restart)."""
    current = await asyncio.to_thread(registry.serving, name)
    if current is None:
        return _refused(name, f"{name} has no serving version to restore")
    try:
        listed = {card.id for card in await server.models()}
        if current.served_name in listed:
            return DeployOutcome(
                DeployStatus.UNCHANGED,
                name,
                f"{current.served_name} is loaded on {server.base_url}",
                version=current,
                serving=current.served_name,
            )
        problem = await _ensure_loaded(current, server, registry)
    except AdapterServerError as exc:
        return DeployOutcome(DeployStatus.FAILED, name, str(exc), serving=current.served_name)
    if problem is not None:
        return _refused(name, problem)
    restored = await asyncio.to_thread(registry.get, name, current.version)
    return DeployOutcome(
        DeployStatus.PROMOTED,
        name,
        f"{current.served_name} is loaded again on {server.base_url} and serves {name}",
        version=restored,
        serving=current.served_name,
    )


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f} %"
