"""What the HTTP service does, without HTTP: start runs, decide approvals, resume runs once.

`RunService` owns the tasks it starts (awaited on `aclose`), writes a
service run row before the model is asked, records one event per call stage,
and resumes a paused run on whichever replica decided its last approval:
the resume is claimed in the shared store first (`RunStore.claim_resume`),
so it happens once, and the approved call itself is claimed by the approval
store (exactly once, as for `agentrt run --resume`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from runtime.agent import Agent, ResumeError, RunLimits, RunResult
from runtime.approvals import (
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalRecheckFailed,
    ApprovalRecord,
    ApprovalStatus,
    ApprovalStore,
    EditedArgumentsInvalid,
    approval_recheck,
)
from runtime.approvals.claim_locks import ClaimLocks
from runtime.arguments import ArgumentGate
from runtime.calls import ToolCallRequest
from runtime.deploy.resolve import AdapterNotLoaded, DeployedModel, RunModel
from runtime.deploy.server import AdapterServerError
from runtime.model.client import ModelClient
from runtime.prompting.similar_requests import SimilarRequests
from runtime.service.metrics import Metrics
from runtime.service.runs import FINAL_STATUSES, RunStore, ServiceRun
from runtime.service.tokens import Identity
from runtime.stack import Stack

__all__ = ["Conflict", "NotFound", "RunService", "ServiceError", "Unavailable", "Unprocessable"]

_log = logging.getLogger("agentrt.service")


class ServiceError(Exception):
    """A request the service refuses: an HTTP status, a machine-readable type, a sentence."""

    status_code = 400
    type = "bad_request"

    def __init__(self, message: str, *, type: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if type is not None:
            self.type = type
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": str(self), **self.details}}


class NotFound(ServiceError):
    status_code, type = 404, "not_found"


class Conflict(ServiceError):
    status_code, type = 409, "conflict"


class Unprocessable(ServiceError):
    status_code, type = 422, "unprocessable"


class Unavailable(ServiceError):
    status_code, type = 503, "unavailable"


def _run_key(run_id: str) -> str:
    return f"run-{run_id}"


class RunService:
    """Runs and approvals for the tenants of one replica.

    Args:
        stack: Registry, policy, executor, audit and the shared approval store.
        runs: Service runs in the shared store.
        run_locks: Liveness locks for the runs this replica drives.
        model: The model client (None: runs are refused with 503).
        deployed: `model` behind the adapter store: each run (and each
            resume) sends the version that serves the model's name then, and
            is refused with 503 when the server has not loaded it.
        replica: This replica's name (owner of the runs it drives).
        metrics: Where run and call figures go.
        max_turns: Model replies per run.
        similar_requests: Worked requests shown before each request (None: as
            many as the deployed version learned with, else none).
    """

    def __init__(
        self,
        stack: Stack,
        runs: RunStore,
        run_locks: ClaimLocks,
        model: ModelClient | None,
        *,
        deployed: DeployedModel | None = None,
        replica: str,
        metrics: Metrics | None = None,
        max_turns: int = 10,
        similar_requests: int | None = None,
    ) -> None:
        if similar_requests is not None and similar_requests < 0:
            raise ValueError("--similar-requests must be 0 or more")
        if stack.approvals is None:
            raise ValueError("the service needs an approval store (a policy, not allow_all())")
        self.stack = stack
        self.approvals: ApprovalStore = stack.approvals
        self.runs = runs
        self.model = model
        self.deployed = deployed
        self.replica = replica
        self.metrics = metrics or Metrics()
        self._locks = run_locks
        self._limits = RunLimits(max_turns=max_turns)
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()
        self._changed = asyncio.Event()
        self._gate = ArgumentGate(stack.registry)
        self._similar = similar_requests
        self._banks: dict[int, SimilarRequests] = {}
        self._banks_lock = asyncio.Lock()

    # ------------------------------------------------------------------ runs

    async def start_run(
        self,
        identity: Identity,
        text: str,
        *,
        agent: str | None,
        context: Mapping[str, Any],
        wait: bool,
    ) -> dict[str, Any]:
        """Start a run; its result (`wait`) or `{"run_id", "status": "running"}`."""
        served = await self._model_for_run()
        run_id = uuid.uuid4().hex
        if not await asyncio.to_thread(self._locks.take, _run_key(run_id)):
            raise Conflict("run id collision; try again")
        try:
            await asyncio.to_thread(
                self.runs.create,
                run_id,
                tenant=identity.tenant,
                agent=agent,
                input=text,
                context=dict(context),
                owner=self.replica,
            )
        except BaseException:
            self._locks.release(_run_key(run_id), finished=False)
            raise

        def go(runner: Agent) -> Awaitable[RunResult]:
            return runner.run(text, tenant=identity.tenant, context=context, run_id=run_id)

        task = self._spawn(self._drive(run_id, agent, served, go))
        if wait:
            return await asyncio.shield(task)
        return {"run_id": run_id, "status": "running"}

    async def _model_for_run(self) -> RunModel:
        """The model a run starting (or resuming) now uses, and the worked requests to
        show it before a request (as configured, else as many as the deployed version
        learned with, else none); refused with 503 when there is no model.

        Raises:
            Unavailable: No model server, or the deployed adapter version is not loaded.
        """
        if self.model is None:
            raise Unavailable(
                "no model server is configured: start agentrt serve with --base-url and --model",
                type="no_model",
            )
        if self.deployed is None:
            return RunModel(self.model, self._similar or 0)
        try:
            served = await self.deployed.for_run()
        except AdapterNotLoaded as exc:
            raise Unavailable(str(exc), type="adapter_not_loaded") from None
        except AdapterServerError as exc:
            raise Unavailable(
                f"the model server's list of models could not be read: {exc}",
                type="model_unavailable",
            ) from None
        if self._similar is not None:
            return RunModel(served.client, self._similar)
        return RunModel(served.client, served.similar_requests or 0)

    async def _worked_requests(self, k: int) -> SimilarRequests | None:
        """The K worked requests most like each request, synthesised once per K from
        the registry's schemas (as `agentrt run` and `eval` do); None for K = 0."""
        if k == 0:
            return None
        async with self._banks_lock:
            bank = self._banks.get(k)
            if bank is None:
                from runtime.finetune.similar import bank_for_tools

                schemas = self.stack.registry.openai_schemas()
                bank = self._banks[k] = await asyncio.to_thread(bank_for_tools, schemas, k=k)
        return bank

    async def get_run(self, identity: Identity, run_id: str) -> ServiceRun:
        """A run of the identity's tenant, with a lost replica reported as `interrupted`.

        Raises:
            NotFound: No such run for this tenant.
        """
        run = await asyncio.to_thread(self.runs.get, run_id)
        if run is None or run.tenant != identity.tenant:
            raise NotFound(f"no run {run_id!r}")
        if (
            run.status == "running"
            and await asyncio.to_thread(self._locks.holder, _run_key(run_id)) is None
        ):
            run = await self._interrupted(run)
        return run

    async def _interrupted(self, run: ServiceRun) -> ServiceRun:
        """A `running` run nobody holds: its replica died. Say so, and what may have run."""
        records = await asyncio.to_thread(self.approvals.list, run_id=run.id)
        unsure = [r.id for r in records if r.status is ApprovalStatus.EXECUTING]
        error = f"the replica running it ({run.owner}) stopped before it finished"
        if unsure:
            error += (
                f"; approved call(s) {', '.join(unsure)} were claimed and may have run, so they "
                f"are not run again: an operator must check them (agentrt approvals show ID)"
            )
        marked = await asyncio.to_thread(self.runs.mark_interrupted, run.id, run.owner, error)
        if marked is not None:
            return marked
        fresh = await asyncio.to_thread(self.runs.get, run.id)  # it moved on meanwhile
        return fresh or run

    async def _drive(
        self,
        run_id: str,
        agent: str | None,
        served: RunModel,
        go: Callable[[Agent], Awaitable[RunResult]],
    ) -> dict[str, Any]:
        """Run (or resume) with the run's liveness lock held; store and return its JSON."""
        started = time.perf_counter()
        writer = _EventWriter(self, run_id)
        runner = self.stack.agent(
            served.client,
            name=agent or self.stack.context.agent or "agent",
            observer=writer.observe,
            limits=self._limits,
            retrieval=await self._worked_requests(served.similar_requests or 0),
        )
        writer.put({"stage": "run.started", "replica": self.replica})
        status = "failed"
        try:
            try:
                result = await go(runner)
                out, status = result.to_dict(), result.status.value
            except ResumeError as exc:
                out = {"status": "failed", "run_id": run_id, "error": f"cannot resume: {exc}"}
            except Exception as exc:  # a bug must end the run with a status, not hang it
                _log.exception("run %s failed", run_id)
                out = {
                    "status": "failed",
                    "run_id": run_id,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            writer.put({"stage": "run.finished", "status": status})
            await writer.close()
            await asyncio.to_thread(self.runs.finish, run_id, self.replica, status, out)
        finally:
            await asyncio.to_thread(self._locks.release, _run_key(run_id), finished=True)
            self.metrics.run_finished(status, time.perf_counter() - started)
            self.notify()
        if status == "pending_approval":
            # Approvals decided while this run was being saved found it still
            # `running`; whoever sees it resolved first resumes it.
            await self.resume_if_ready(run_id, wait=False)
        return out

    def _spawn(self, work: Awaitable[dict[str, Any]]) -> asyncio.Task[dict[str, Any]]:
        task: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ approvals

    async def list_approvals(
        self, identity: Identity, status: str | None = "pending"
    ) -> list[ApprovalRecord]:
        """The tenant's approvals (pending by default), oldest first."""
        try:
            chosen = ApprovalStatus(status) if status else None
        except ValueError:
            raise Unprocessable(f"unknown approval status {status!r}") from None
        return await asyncio.to_thread(self.approvals.list, status=chosen, tenant=identity.tenant)

    async def get_approval(self, identity: Identity, approval_id: str) -> ApprovalRecord:
        """One approval of the tenant (exact id only: a prefix could match another tenant's)."""
        try:
            record = await asyncio.to_thread(self.approvals.get, approval_id)
        except ApprovalNotFound:
            raise NotFound(f"no approval {approval_id!r}") from None
        if record.id != approval_id or record.context.get("tenant") != identity.tenant:
            raise NotFound(f"no approval {approval_id!r}")
        return record

    async def approve(
        self,
        identity: Identity,
        approval_id: str,
        *,
        arguments: dict[str, Any] | None = None,
        note: str | None = None,
        wait: bool = False,
    ) -> dict[str, Any]:
        """Approve (optionally with edited arguments, checked again) and resume the run."""
        record = await self.get_approval(identity, approval_id)
        recheck = approval_recheck(self.stack.policy, self._gate) if arguments is not None else None
        try:
            approved = await asyncio.to_thread(
                self.approvals.approve,
                record.id,
                by=identity.name or identity.tenant,
                note=note,
                arguments=arguments,
                recheck=recheck,
            )
        except EditedArgumentsInvalid as exc:
            raise Unprocessable(
                str(exc), type="invalid_arguments", details=exc.error.to_dict()
            ) from None
        except ApprovalRecheckFailed as exc:
            raise Unprocessable(
                str(exc), type="denied_by_policy", decision=exc.decision.to_dict()
            ) from None
        except ApprovalExpired as exc:
            raise Conflict(str(exc), type="expired") from None
        except ApprovalError as exc:
            raise Conflict(str(exc), type="not_pending", status=str(exc.status)) from None
        run = await self.resume_if_ready(approved.run_id, wait=wait)
        return {"approval": approved.to_dict(), "run": run}

    async def deny(
        self, identity: Identity, approval_id: str, *, reason: str | None, wait: bool = False
    ) -> dict[str, Any]:
        """Reject a pending call (the model is told) and resume the run."""
        record = await self.get_approval(identity, approval_id)
        try:
            rejected = await asyncio.to_thread(
                self.approvals.reject, record.id, by=identity.name or identity.tenant, reason=reason
            )
        except ApprovalExpired as exc:
            raise Conflict(str(exc), type="expired") from None
        except ApprovalError as exc:
            raise Conflict(str(exc), type="not_pending", status=str(exc.status)) from None
        run = await self.resume_if_ready(rejected.run_id, wait=wait)
        return {"approval": rejected.to_dict(), "run": run}

    async def sweep(self) -> int:
        """Resume paused runs whose approvals were all decided elsewhere; how many started.

        Decisions made with `agentrt approvals`, approvals that expired, and
        runs whose resuming replica died before claiming them are picked up here.
        """
        await asyncio.to_thread(self.approvals.expire_due)
        if not await asyncio.to_thread(self.runs.has_resumable):
            return 0
        served = await self._model_for_run()  # refused: the runs stay paused for the next sweep
        taken: list[str] = []

        def take(run_id: str) -> bool:
            if self._locks.take(_run_key(run_id)):
                taken.append(run_id)
                return True
            return False

        try:
            claimed = await asyncio.to_thread(self.runs.claim_resumable, self.replica, take)
        except BaseException:
            for run_id in taken:
                self._locks.release(_run_key(run_id), finished=False)
            raise
        for run_id in set(taken) - {run.id for run in claimed}:
            self._locks.release(_run_key(run_id), finished=False)
        for run in claimed:

            def go(runner: Agent, run_id: str = run.id) -> Awaitable[RunResult]:
                return runner.resume(run_id)

            self._spawn(self._drive(run.id, run.agent, served, go))
        return len(claimed)

    async def sweep_forever(self, interval_s: float) -> None:
        """`sweep` every `interval_s` until cancelled; a store outage only skips a round."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                _log.warning("resume sweep failed: %s", exc)
            await asyncio.sleep(
                interval_s
            )  # a timer by design: decisions made elsewhere send no signal

    async def resume_if_ready(self, run_id: str, *, wait: bool) -> dict[str, Any] | None:
        """Resume a service run whose approvals are all decided, once across replicas.

        Returns:
            The run's JSON (its result with `wait`), or None for a run the
            service did not start (resume it with `agentrt run --resume`). A
            run that cannot resume now (no model, the deployed adapter not
            loaded) stays paused for the resume sweep, its JSON saying why
            under `resume_error`.
        """
        run = await asyncio.to_thread(self.runs.get, run_id)
        if run is None:
            return None
        if run.status != "pending_approval" or not await asyncio.to_thread(
            self.approvals.run_is_resolved, run_id
        ):
            return run.to_dict()
        try:
            served = await self._model_for_run()
        except Unavailable as exc:
            _log.warning("run %s stays paused: %s", run_id, exc)
            return {**run.to_dict(), "resume_error": exc.to_dict()["error"]}
        key = _run_key(run_id)
        if not await asyncio.to_thread(self._locks.take, key):
            return run.to_dict()  # another replica is resuming it right now
        try:
            claimed = await asyncio.to_thread(self.runs.claim_resume, run_id, self.replica)
        except BaseException:
            self._locks.release(key, finished=False)
            raise
        if not claimed:
            self._locks.release(key, finished=False)
            fresh = await asyncio.to_thread(self.runs.get, run_id)
            return (fresh or run).to_dict()

        def go(runner: Agent) -> Awaitable[RunResult]:
            return runner.resume(run_id)

        task = self._spawn(self._drive(run_id, run.agent, served, go))
        if wait:
            return await asyncio.shield(task)
        return {"run_id": run_id, "status": "running"}

    # ------------------------------------------------------------------ events

    def notify(self) -> None:
        """Wake every event stream of this replica (something was written)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout_s: float) -> None:
        """Return when this replica writes something, or after `timeout_s` (other replicas)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    @staticmethod
    def is_final(status: str) -> bool:
        return status in FINAL_STATUSES or status == "pending_approval"

    async def aclose(self) -> None:
        """Wait for the runs in flight (cancelled if this is cancelled)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _EventWriter:
    """Persists a run's stage events in order, off the event loop."""

    def __init__(self, service: RunService, run_id: str) -> None:
        self._service = service
        self._run_id = run_id
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._drain())

    def observe(self, stage: str, request: ToolCallRequest, info: Mapping[str, Any]) -> None:
        event: dict[str, Any] = {"stage": stage, "call_id": request.id, "tool": request.name}
        decision = info.get("decision")
        if decision is not None:
            event["decision"] = {
                "decision": decision.decision,
                "rule_ids": list(decision.rule_ids),
                "reason": decision.reason,
            }
        outcome = info.get("outcome")
        if outcome is not None:
            event["status"] = outcome.status.value
            if outcome.error is not None:
                event["error"] = outcome.error.type
            if outcome.approval_id:
                event["approval_id"] = outcome.approval_id
            self._service.metrics.call_finished(
                outcome.tool, outcome.status.value, (outcome.duration_ms or 0.0) / 1000
            )
        status = info.get("status")
        if status is not None:
            event["status"] = getattr(status, "value", str(status))
        self.put(event)

    def put(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(event)

    async def _drain(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await asyncio.to_thread(self._service.runs.add_event, self._run_id, event)
            except Exception:  # events are a view; the run's result is the record
                _log.warning("could not store an event of run %s", self._run_id, exc_info=True)
            self._service.notify()

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task
