"""The asyncio agent loop: ask the model, gate its calls, feed results back.

The loop owns turns, limits and concurrency; everything a call goes through
lives in `ToolCallPipeline`. A run always ends with a `RunResult` whose
`status` says why it stopped; a dead model server is a status, not a crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.approvals import resume as approval_resume
from runtime.approvals.resume import ResumeError
from runtime.approvals.run_state import SavedRun
from runtime.approvals.store import ApprovalStore
from runtime.arguments import ArgumentLimits
from runtime.audit import events
from runtime.audit.sink import AuditSink, AuditWriteError, NullAuditSink
from runtime.calls import CallContext, CallStatus, ErrorInfo
from runtime.model.client import ModelClient, ModelError, ModelTurn, Usage
from runtime.model.settings import SamplingSettings, resolve_settings
from runtime.pipeline import CallOutcome, Observer, ToolCallPipeline
from runtime.policy.decision import PolicyEngine
from runtime.prompting import ContextProvider, Prompt, PromptTemplate, RequestBuilder
from runtime.sandbox.executor import InProcessExecutor, ToolExecutor
from runtime.tools import Tool, ToolRegistry

__all__ = ["Agent", "ResumeError", "RunLimits", "RunResult", "RunStatus", "check_tool_choice"]

DEFAULT_RETRIES = 2
_CHOICE_MODES = frozenset({"auto", "required", "none"})


class RunStatus(enum.StrEnum):
    """Why a run stopped."""

    COMPLETED = "completed"
    MAX_TURNS = "max_turns"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PENDING_APPROVAL = "pending_approval"
    MODEL_ERROR = "model_error"
    AUDIT_ERROR = "audit_error"
    CONTEXT_ERROR = "context_error"


@dataclasses.dataclass(frozen=True, slots=True)
class RunLimits:
    """Bounds on one run.

    Attributes:
        max_turns: Model replies per run; a model calling tools forever stops here.
        max_parallel_calls: Calls of one turn that run at the same time.
        max_calls_per_turn: Calls beyond this in one reply are rejected unrun.
    """

    max_turns: int = 10
    max_parallel_calls: int = 4
    max_calls_per_turn: int = 16


@dataclasses.dataclass(slots=True)
class RunResult:
    """Everything a run produced.

    Attributes:
        status: Why the run stopped.
        output: The final assistant text ("" when the run did not complete).
        tool_calls: Every proposed call with its outcome, in order.
        usage: Tokens over all turns.
        messages: The full history (system, examples, user, assistant, tool).
        turns: Model replies received.
        error: A sentence explaining a non-completed status.
        run_id: Identifies the run in the audit log.
        truncated: The final answer stopped at `max_tokens`.
        approval_ids: For `pending_approval`: the approvals a human must decide
            before `Agent.resume(run_id)` can continue the run.
        reasoning: Think-first reasoning of each turn that had any, in order;
            it is in neither `output` nor `messages`.
    """

    status: RunStatus
    output: str
    tool_calls: list[CallOutcome]
    usage: Usage
    messages: list[dict[str, Any]]
    turns: int
    run_id: str
    error: str | None = None
    truncated: bool = False
    approval_ids: list[str] = dataclasses.field(default_factory=list)
    reasoning: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by `agentrt run --json`."""
        out: dict[str, Any] = {
            "status": self.status.value,
            "output": self.output,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "usage": self.usage.to_dict(),
            "turns": self.turns,
            "run_id": self.run_id,
        }
        if self.error:
            out["error"] = self.error
        if self.truncated:
            out["truncated"] = True
        if self.approval_ids:
            out["approval_ids"] = list(self.approval_ids)
        if self.reasoning:
            out["reasoning"] = list(self.reasoning)
        return out


class Agent:
    """A model, the tools it may call, and the stages every call goes through.

    Args:
        model: The model client (e.g. `OpenAICompatibleClient`).
        tools: A `ToolRegistry` or an iterable of `Tool`s.
        prompt: How requests are composed: system prompt template, few-shot
            examples (validated against the tools here, at construction),
            think-first, tools rendered in the prompt. See `runtime.prompting`.
        system_prompt: Shorthand for `Prompt(system=...)`: a literal system
            prompt or a `PromptTemplate`. Not together with `prompt`.
        examples: Shorthand for `Prompt(examples=...)`: few-shot conversations
            inserted between the system prompt and the user's prompt.
        retrieval: Supplies messages inserted just before the user's prompt,
            e.g. `runtime.rag.RetrievalContext` (retrieved passages with
            citations).
        settings: Sampling settings, or a preset name (`precise`, `balanced`,
            `creative`), for the turns that choose and fill tool calls. A
            `tool_choice` that names a tool must name one of `tools`
            (`ValueError` at construction otherwise).
        answer_settings: Settings (or preset) for the turns that follow tool
            results (the final answer), e.g. `balanced` after `precise`, or
            `tool_choice="auto"` after a first turn forced with
            `tool_choice="required"`; default: `settings`.
        limits: Turn, concurrency and per-turn call limits.
        executor: Where approved calls run (default: in-process, trusted tools
            only; `runtime.stack.build_stack` builds the Docker sandbox).
        policy: The allowlist stage. Without one the agent runs no tool: every
            call ends `denied` ("no policy is configured"), audited. Pass
            `load_policies(DIR)`, or `runtime.policy.allow_all()` to run every
            call that validates.
        audit: The audit sink (default: none). A `HashChainSink` is given the
            policy's `audit.redact` paths, so they never reach the log in clear.
        name: The agent's name, for policy scopes and the audit log.
        argument_limits: Size and depth caps for argument JSON.
        observer: Called at each stage of each call, for live displays.
        approvals: Where calls that need a human are persisted; without it a
            run that hits `require_approval` stops and cannot be resumed.
        audit_conversation: Also record the user's request (`agentrt.prompt`
            on `run.started`), the final answer (`agentrt.output` on
            `run.finished`) and any think-first reasoning (`agentrt.reasoning`);
            the sink still redacts secret-looking values.
            `agentrt dataset export` needs them. Off by default.
    """

    def __init__(
        self,
        model: ModelClient,
        tools: ToolRegistry | Iterable[Tool],
        *,
        prompt: Prompt | None = None,
        system_prompt: str | PromptTemplate | None = None,
        examples: Sequence[Any] = (),
        retrieval: ContextProvider | None = None,
        settings: SamplingSettings | str | None = None,
        answer_settings: SamplingSettings | str | None = None,
        limits: RunLimits | None = None,
        executor: ToolExecutor | None = None,
        policy: PolicyEngine | None = None,
        audit: AuditSink | None = None,
        name: str = "agent",
        argument_limits: ArgumentLimits = ArgumentLimits(),
        observer: Observer | None = None,
        approvals: ApprovalStore | None = None,
        audit_conversation: bool = False,
    ) -> None:
        self.model = model
        self.audit_conversation = audit_conversation
        self.approvals = approvals
        self.registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        if prompt is not None and (system_prompt is not None or examples):
            raise ValueError("give either prompt=Prompt(...) or system_prompt/examples, not both")
        self.prompt = prompt or Prompt(system=system_prompt, examples=examples)
        self.retrieval = retrieval
        self.settings = resolve_settings(settings) or SamplingSettings()
        self.answer_settings = resolve_settings(answer_settings) or self.settings
        for chosen in (self.settings, self.answer_settings):
            check_tool_choice(chosen.tool_choice, self.registry)
        self.limits = limits or RunLimits()
        self.executor = executor or InProcessExecutor()
        self.audit = audit or NullAuditSink()
        self.name = name
        self.pipeline = ToolCallPipeline(
            self.registry,
            self.executor,
            policy=policy,
            audit=self.audit,
            limits=argument_limits,
            agent_name=name,
            model_name=model.model,
            observer=observer,
        )
        # The same builder evaluates prompts (finetune.eval_variants): what is
        # measured there is what is sent here.
        self._requests = RequestBuilder(self.prompt, self.registry.openai_schemas())

    async def _opening(self, prompt: str) -> list[dict[str, Any]]:
        return await self._requests.opening([{"role": "user", "content": prompt}], self.retrieval)

    async def run(
        self,
        prompt: str,
        *,
        tenant: str | None = None,
        conversation_id: str | None = None,
        principal: str | None = None,
        context: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunResult:
        """Run the agent on one prompt until it answers or a limit stops it.

        `run_id` names the run (default: a new uuid), for a caller that must
        know it before the run ends (a service answering "started").
        Cancelling the task running this coroutine cancels the calls in flight;
        executors clean up their containers before the cancellation propagates.
        """
        run_id = run_id or uuid.uuid4().hex
        call_context = CallContext(
            tenant=tenant,
            agent=self.name,
            conversation_id=conversation_id or run_id,
            run_id=run_id,
            principal=principal,
            extra=dict(context or {}),
        )
        try:
            opening = await self._opening(prompt)
        except Exception as exc:  # a failing retriever is the caller's to see, not a crash
            state = _RunState(run_id=run_id, messages=[{"role": "user", "content": prompt}])
            return state.finish(
                RunStatus.CONTEXT_ERROR, error=f"retrieval failed: {type(exc).__name__}: {exc}"
            )
        state = _RunState(run_id=run_id, messages=opening)
        return await self._drive(state, call_context)

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run that stopped with `pending_approval`, once humans decided.

        Approved calls run exactly once (claimed in the store first; edited
        arguments are validated and policy-checked again); rejected and
        expired ones go back to the model as denied. Calling `resume` twice,
        or after a crash, never runs a call twice. `tool_calls` of the result
        holds the calls from the resumption on.

        Raises:
            ResumeError: The agent has no approval store, the store has no
                paused run `run_id`, or that run was already resumed.
        """
        if self.approvals is None:
            raise ResumeError("this agent has no approval store; pass approvals=ApprovalStore(...)")
        approvals = self.approvals
        saved, records, waiting = await approval_resume.decided_calls(approvals, run_id)
        state, call_context = _RunState.from_saved(saved)
        if waiting:
            return state.finish(
                RunStatus.PENDING_APPROVAL,
                error=f"still waiting for a human on {len(waiting)} call(s)",
                approval_ids=waiting,
            )
        for record in records:
            if record.call_id not in state.pending_call_ids:
                continue
            outcome = await approval_resume.run_approved(
                self.pipeline, record, approvals, call_context
            )
            state.calls.append(outcome)
            state.messages.append(_tool_message(outcome))
        state.pending_call_ids = []
        # From here on a second resume must not replay the conversation; a crash
        # before this line resumes again safely (claimed calls are never re-run).
        await approval_resume.mark_resumed(approvals, saved)
        return await self._drive(state, call_context, resumed=True)

    async def _drive(
        self, state: _RunState, call_context: CallContext, *, resumed: bool = False
    ) -> RunResult:
        run_id = state.run_id
        try:
            record_prompt = self.audit_conversation and not resumed
            events.write(
                self.audit,
                events.run_started(
                    call_context,
                    agent_name=self.name,
                    model_name=self.model.model,
                    prompt=state.messages[-1]["content"] if record_prompt else None,
                    resumed=resumed,
                ),
            )
            result = await self._loop(state, call_context)
            events.write(
                self.audit,
                events.run_finished(
                    call_context,
                    agent_name=self.name,
                    status=result.status.value,
                    input_tokens=result.usage.prompt_tokens,
                    output_tokens=result.usage.completion_tokens,
                    output=result.output if self.audit_conversation else None,
                    reasoning=result.reasoning,
                ),
            )
            return result
        except AuditWriteError as exc:
            return state.finish(
                RunStatus.AUDIT_ERROR,
                error=f"the audit log cannot be written: {exc}{_unaudited(state)}",
            )
        finally:
            await self.executor.end_run(run_id)

    async def _loop(self, state: _RunState, context: CallContext) -> RunResult:
        while state.turns < self.limits.max_turns:
            try:
                request = self._requests.next(state.messages, self.settings, self.answer_settings)
                turn = await self.model.complete(request.messages, request.tools, request.settings)
                read = self._requests.read(turn)
            except ModelError as exc:
                return state.finish(RunStatus.MODEL_ERROR, error=f"{exc.kind}: {exc}")
            except Exception as exc:  # any client's bug or odd reply: a status, never a crash
                return state.finish(
                    RunStatus.MODEL_ERROR,
                    error=f"bad_response: the model client failed ({type(exc).__name__}: {exc})",
                )
            turn = read.turn
            if read.reasoning:
                state.reasoning.append(read.reasoning)
            state.turns += 1
            state.usage.add(turn.usage)
            state.messages.append(_assistant_message(turn))
            if not turn.tool_calls:
                return state.finish(
                    RunStatus.COMPLETED, output=turn.text, truncated=turn.finish_reason == "length"
                )
            outcomes = await self._run_calls(turn, context)
            state.calls.extend(outcomes)
            pending = [o for o in outcomes if o.status is CallStatus.PENDING_APPROVAL]
            for outcome in outcomes:
                if outcome.status is not CallStatus.PENDING_APPROVAL:
                    state.messages.append(_tool_message(outcome))
            if pending:
                return await self._pause(state, context, pending)
            stop = self._check_limits(state, outcomes)
            if stop is not None:
                return stop
        return state.finish(
            RunStatus.MAX_TURNS,
            error=f"the model was still calling tools after {self.limits.max_turns} turns",
        )

    def _check_limits(self, state: _RunState, outcomes: list[CallOutcome]) -> RunResult | None:
        if any(o.status is CallStatus.AUDIT_ERROR or not o.audited for o in outcomes):
            return state.finish(
                RunStatus.AUDIT_ERROR, error="the audit log cannot be written" + _unaudited(state)
            )
        # A tool's budget counts turns in which it failed, not calls: three bad
        # calls in one reply are one mistake the model gets told about at once.
        failed = {
            outcome.tool: outcome for outcome in outcomes if outcome.status is not CallStatus.OK
        }
        for key, outcome in failed.items():
            state.failures[key] = state.failures.get(key, 0) + 1
            tool = self.registry.get(key)
            budget = tool.retries if tool is not None else DEFAULT_RETRIES
            if state.failures[key] > budget:
                return state.finish(
                    RunStatus.RETRIES_EXHAUSTED,
                    error=(
                        f"calls to {key!r} failed {state.failures[key]} times "
                        f"(retry budget {budget}); last: {outcome.status.value}"
                    ),
                )
        return None

    async def _pause(
        self, state: _RunState, context: CallContext, pending: list[CallOutcome]
    ) -> RunResult:
        """Persist the calls waiting for a human, with the run's state, and stop."""
        names = ", ".join(sorted({o.tool for o in pending}))
        state.pending_call_ids = [o.request.id for o in pending]
        if self.approvals is None:
            return state.finish(
                RunStatus.PENDING_APPROVAL,
                error=f"{names} needs a human approval, and this agent has no approval store",
            )
        ids = await approval_resume.pause(
            self.approvals, pending, context, run_id=state.run_id, saved=state.to_saved(context)
        )
        state.calls = [
            dataclasses.replace(o, approval_id=ids[o.request.id]) if o.request.id in ids else o
            for o in state.calls
        ]
        return state.finish(
            RunStatus.PENDING_APPROVAL,
            error=f"waiting for a human to approve: {names}",
            approval_ids=[ids[o.request.id] for o in pending],
        )

    async def _run_calls(self, turn: ModelTurn, context: CallContext) -> list[CallOutcome]:
        requests = list(turn.tool_calls)
        semaphore = asyncio.Semaphore(self.limits.max_parallel_calls)
        allowed = requests[: self.limits.max_calls_per_turn]
        think = self._requests.think

        async def one(request: Any) -> CallOutcome:
            if think is not None and think.leaks_into(request.arguments):
                return self.pipeline.reject(
                    request,
                    context,
                    CallStatus.INVALID_ARGUMENTS,
                    ErrorInfo(
                        type="reasoning_in_arguments",
                        message=(
                            f"the arguments contain <{think.tag}> reasoning; put only the "
                            f"argument values in a call and keep reasoning inside the tags"
                        ),
                    ),
                )
            async with semaphore:
                return await self.pipeline.process(request, context)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(request)) for request in allowed]
        outcomes = [task.result() for task in tasks]
        for request in requests[self.limits.max_calls_per_turn :]:
            outcomes.append(
                self.pipeline.too_many_calls(request, context, self.limits.max_calls_per_turn)
            )
        return outcomes


@dataclasses.dataclass(slots=True)
class _RunState:
    run_id: str
    messages: list[dict[str, Any]]
    calls: list[CallOutcome] = dataclasses.field(default_factory=list)
    usage: Usage = dataclasses.field(default_factory=Usage)
    turns: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    pending_call_ids: list[str] = dataclasses.field(default_factory=list)
    reasoning: list[str] = dataclasses.field(default_factory=list)

    def finish(
        self,
        status: RunStatus,
        *,
        output: str = "",
        error: str | None = None,
        truncated: bool = False,
        approval_ids: list[str] | None = None,
    ) -> RunResult:
        return RunResult(
            status=status,
            output=output,
            tool_calls=self.calls,
            usage=self.usage,
            messages=self.messages,
            turns=self.turns,
            run_id=self.run_id,
            error=error,
            truncated=truncated,
            approval_ids=approval_ids or [],
            reasoning=self.reasoning,
        )

    def to_saved(self, context: CallContext) -> SavedRun:
        """The paused run, as the approval store keeps it."""
        return SavedRun(
            run_id=self.run_id,
            messages=self.messages,
            context=context,
            turns=self.turns,
            usage=self.usage.to_dict(),
            failures=self.failures,
            pending_call_ids=self.pending_call_ids,
        )

    @classmethod
    def from_saved(cls, saved: SavedRun) -> tuple[_RunState, CallContext]:
        usage = saved.usage
        state = cls(
            run_id=saved.run_id,
            messages=list(saved.messages),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            turns=saved.turns,
            failures=dict(saved.failures),
            pending_call_ids=list(saved.pending_call_ids),
        )
        return state, saved.context


def check_tool_choice(choice: str, registry: ToolRegistry) -> None:
    """Refuse a `tool_choice` that forces a tool `registry` does not have.

    Raises:
        ValueError: `choice` is neither a mode (auto, required, none) nor a tool's name.
    """
    if choice in _CHOICE_MODES or choice in registry:
        return
    known = ", ".join(registry.names) or "none"
    raise ValueError(
        f"tool_choice {choice!r} is not one of this agent's tools ({known}); "
        "use auto, required, none or one of those names"
    )


def _unaudited(state: _RunState) -> str:
    """The calls that ran but are missing from the log, for a run's error sentence."""
    ran = [call for call in state.calls if not call.audited]
    if not ran:
        return ""
    names = ", ".join(f"{call.tool} ({call.status.value})" for call in ran)
    return f"; these calls ran but are not fully audited: {names}"


def _tool_message(outcome: CallOutcome) -> dict[str, Any]:
    return {
        "role": "tool",
        "tool_call_id": outcome.request.id,
        "content": outcome.tool_message_content(),
    }


def _assistant_message(turn: ModelTurn) -> dict[str, Any]:
    """The assistant turn as it goes into the history (calls kept as proposed)."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.tool_calls
        ]
    return message
