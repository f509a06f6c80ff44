"""`python -m runtime.model.llama_server_main ...`: llama-cpp-python's server with our tool format.

Registers the `agentrt-tools` chat format — the Qwen2.5-style template in
`templates/tool_chat_template.jinja` that renders `tools` into the prompt and
expects `<tool_call>{json}</tool_call>` replies, the same format vLLM's hermes
parser reads and `agentrt finetune` trains — then runs `llama_cpp.server` with
the remaining arguments.

Every request that offers `tools` is decoded under a grammar built from them
(`runtime/model/tool_grammar.py`): calls name an offered tool and match its
schema, or the reply is plain text. `--tool_grammar off` (ours) serves without it.
Each call's optional arguments are then grounded in the conversation
(`runtime/model/grounding.py`): the model is asked, one at a time, for the
optional arguments it left out, and a value is kept when the request states it;
one it made up is dropped; a boolean left out is set when the request moves the
model off its default; and a call on a required value nobody gave is withdrawn
(a reply left without calls asks for it).
`--ground_arguments off` (ours) serves the calls as decoded.

Why not llama-cpp-python's `chatml-function-calling`: in `auto` mode it
generates call arguments with `max_tokens=None`, so a small model can run on
for thousands of tokens inside one call (observed here: minutes per request),
and it answers 500 for `tool_choice: required`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from runtime.model.call_form import (
    CALL_FORMS,
    CallForm,
    drop_unstated_in_text,
    spell_out_messages,
)
from runtime.model.grounding import (
    Probe,
    SwitchProbe,
    ValueProbe,
    ground_reply,
    withdraw_invented_calls,
)
from runtime.model.tool_grammar import (
    ToolGrammarError,
    next_argument_grammar,
    tool_call_grammar,
)

CHAT_FORMAT = "agentrt-tools"


def tool_chat_template() -> str:
    """The Jinja chat template shared by llama.cpp, vLLM and fine-tuning."""
    return files("runtime.model").joinpath("templates/tool_chat_template.jinja").read_text()


def with_tool_grammar(handler: Any, call_form: CallForm = "plain") -> Any:
    """Wrap a llama-cpp-python chat handler so requests with `tools` decode under
    the tools' grammar (unless the request brings its own `grammar`)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    def constrained(**kwargs: Any) -> Any:
        tools = kwargs.get("tools")
        choice = kwargs.get("tool_choice")
        # A named choice keeps llama-cpp-python's own handling: it decodes the
        # arguments under that tool's schema and answers with `tool_calls`.
        if tools and kwargs.get("grammar") is None and choice in (None, "auto", "required"):
            try:
                grammar = LlamaGrammar.from_string(
                    tool_call_grammar(tools, tool_choice=choice, call_form=call_form),
                    verbose=False,
                )
            except (ToolGrammarError, ValueError) as exc:
                logging.getLogger(__name__).warning("serving without a tool grammar: %s", exc)
            else:
                kwargs["grammar"] = grammar
        return handler(**kwargs)

    return constrained


def with_call_form(handler: Any) -> Any:
    """Wrap a chat handler for an adapter trained in the `every-key` call form
    (`runtime.model.call_form`): earlier calls in the history are shown in that
    form, and the unstated (`null`) optional arguments of the reply's calls are
    dropped, so clients see ordinary calls. A streamed reply that is a call is
    sent in one piece when it is complete; a plain answer streams as it comes."""

    def spelled(**kwargs: Any) -> Any:
        tools = kwargs.get("tools") or []
        if not tools:
            return handler(**kwargs)
        kwargs["messages"] = spell_out_messages(kwargs.get("messages") or [], tools)
        return _rewrite_reply(handler(**kwargs), lambda text: drop_unstated_in_text(text, tools))

    return spelled


def _stream_rewriting_calls(chunks: Iterator[Any], rewrite: Callable[[str], str]) -> Iterator[Any]:
    """A stream whose reply, when it is a call, is held until complete and sent as
    `rewrite(text)` in one chunk; a plain answer streams as it comes."""
    held: list[Any] = []
    text = ""
    calls: bool | None = None  # unknown until the first character of content
    for chunk in chunks:
        choices = chunk.get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        if calls is None and content:
            calls = content.lstrip().startswith("<")
        if not calls:
            yield chunk
            continue
        if content:
            text += content
            if not held:
                held.append(chunk)  # the one chunk that will carry the whole call
            continue
        if held and choices[0].get("finish_reason") is not None:
            first = held.pop()
            first["choices"][0]["delta"]["content"] = rewrite(text)
            yield first
        yield chunk
    if held:  # the stream ended without a finish reason: pass on what came
        first = held.pop()
        first["choices"][0]["delta"]["content"] = rewrite(text)
        yield first


def _rewrite_reply(result: Any, rewrite: Callable[[str], str]) -> Any:
    """A chat completion (whole or streamed) with its reply text rewritten."""
    if isinstance(result, dict):
        for choice in result.get("choices") or []:
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                message["content"] = rewrite(message["content"])
        return result
    return _stream_rewriting_calls(result, rewrite)


# A probed value longer than this is not one a person stated in passing.
_PROBE_MAX_TOKENS = 40


def _next_token_logits(llama: Any, tokens: list[int]) -> Any:
    """The model's logits for the token after `tokens`, reusing the cached prefix."""
    cached = llama.input_ids[: llama.n_tokens].tolist()
    common = 0
    for have, want in zip(cached, tokens, strict=False):
        if have != want:
            break
        common += 1
    llama.n_tokens = min(common, len(tokens) - 1)  # at least one token is evaluated
    llama.eval(tokens[llama.n_tokens :])
    return _last_logits(llama)


def _last_logits(llama: Any) -> Any:
    """A view of the logits after the last evaluated token (valid until the next eval)."""
    import numpy as np

    return np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),))


def _logprob_of(llama: Any, prefix: list[int], continuation: list[int]) -> float:
    """log p(`continuation` | `prefix`) under the loaded model, one token at a time."""
    import numpy as np

    total = 0.0
    logits = _next_token_logits(llama, prefix)
    for i, token in enumerate(continuation):
        scores = logits.astype(np.float64)
        top = float(scores.max())
        total += float(scores[token]) - top - math.log(float(np.exp(scores - top).sum()))
        if i + 1 < len(continuation):
            llama.eval([token])
            logits = _last_logits(llama)
    return total


def _share_of(llama: Any, prefix: list[int], candidates: list[list[int]], mine: int) -> float:
    """log p(candidate `mine` | `prefix`), among `candidates` when there are several
    (the values a grammar would allow: a model that wants to write a synonym
    spreads its probability over them as the request says)."""
    scores = [_logprob_of(llama, prefix, tokens) for tokens in candidates]
    if len(scores) == 1:
        return scores[0]
    top = max(scores)
    return scores[mine] - top - math.log(sum(math.exp(s - top) for s in scores))


def _call_so_far(prefix: str, arguments: Mapping[str, Any]) -> str:
    """The reply up to a call's arguments, then its arguments so far, left open for
    one more (`{"room": "kitchen", `)."""
    so_far = json.dumps(dict(arguments), ensure_ascii=False)[:-1]
    return prefix + so_far + (", " if arguments else "")


def with_grounded_arguments(handler: Any, formatter: Any) -> Any:
    """Wrap a chat handler so each call of a reply gets the optional arguments the
    conversation states and loses those it does not (`runtime.model.grounding`).
    The model is asked for one more argument at a time with a short greedy
    decode under a grammar of the parameters still open, after the reply so far,
    and for each boolean left out with two forward passes: how far the request
    moves the model's `true` against `false` from where it stands when the
    request is emptied, counted only when the model also picks that value.
    Calls on required values nobody gave are withdrawn first (unless the request
    demands a call with `tool_choice: required`): identifiers nobody wrote, and
    values the request does not move the model toward (the value's
    log-probability after the request against that with the request emptied)."""
    from llama_cpp.llama_grammar import LlamaGrammar

    def grounded(**kwargs: Any) -> Any:
        tools = kwargs.get("tools") or []
        messages = kwargs.get("messages") or []
        if not tools or kwargs.get("tool_choice") == "none":
            return handler(**kwargs)
        result = handler(**kwargs)
        llama = kwargs["llama"]
        rendered: dict[str, str] = {}  # prompts, rendered once and only when a call needs them

        def render(key: str, conversation: list[dict[str, Any]]) -> str:
            if key not in rendered:
                rendered[key] = formatter(
                    messages=conversation, tools=tools, tool_choice=kwargs.get("tool_choice")
                ).prompt
            return rendered[key]

        def prompt() -> str:
            return render("asked", messages)

        def tokens_of(text: str) -> list[int]:
            return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        def probe_for(prefix: str) -> Probe:
            def probe(
                arguments: Mapping[str, Any], open_: Mapping[str, Any]
            ) -> tuple[str, Any] | None:
                try:
                    grammar = LlamaGrammar.from_string(next_argument_grammar(open_), verbose=False)
                except (ToolGrammarError, ValueError):
                    return None
                tokens = tokens_of(prompt() + _call_so_far(prefix, arguments))
                out = llama.create_completion(
                    prompt=tokens, max_tokens=_PROBE_MAX_TOKENS, temperature=0.0, grammar=grammar
                )
                try:  # one more `"name": value`, then the "," or "}" that ended it
                    written = json.loads("{" + out["choices"][0]["text"].rstrip()[:-1] + "}")
                except (ValueError, KeyError, IndexError):
                    return None
                return next(iter(written.items())) if len(written) == 1 else None

            return probe

        # `"name":` is followed by one token, " true" or " false", in this tokenizer
        # and in most; a model whose tokenizer splits them gets no switch probe
        true_false = [tokens_of(" true"), tokens_of(" false")]
        one_token = all(len(t) == 1 for t in true_false)

        def true_over_false(tokens: list[int]) -> float:
            logits = _next_token_logits(llama, tokens)
            return float(logits[true_false[0][0]]) - float(logits[true_false[1][0]])

        def content_free_prompt() -> str:
            # the same conversation with the last request emptied: what the model
            # leans to for a switch whatever was asked, which a request must overcome
            emptied = [dict(m) for m in messages]
            users = [i for i, m in enumerate(emptied) if m.get("role") == "user"]
            if users:
                emptied[users[-1]]["content"] = ""
            return render("emptied", emptied)

        def switch_probe_for(prefix: str) -> SwitchProbe:
            def switch_probe(arguments: Mapping[str, Any], name: str) -> float | None:
                if not one_token:
                    return None
                text = _call_so_far(prefix, arguments) + json.dumps(name) + ":"
                try:
                    said = true_over_false(tokens_of(prompt() + text))
                    unsaid = true_over_false(tokens_of(content_free_prompt() + text))
                except (RuntimeError, ValueError) as exc:  # a failed decode: no switch set
                    logging.getLogger(__name__).warning("switch probe failed: %s", exc)
                    return None
                logging.getLogger("runtime.model.grounding").debug(
                    "grounding: %s: log-odds of true %.2f after the request, %.2f emptied",
                    name,
                    said,
                    unsaid,
                )
                moved = said - unsaid
                if moved * said <= 0:  # the request moves it, but not as far as that value
                    return 0.5
                return 1.0 / (1.0 + math.exp(-moved))

            return switch_probe

        def value_probe_for(prefix: str) -> ValueProbe:
            def value_probe(
                arguments: Mapping[str, Any], name: str, value: Any, choices: Sequence[Any] | None
            ) -> float | None:
                text = _call_so_far(prefix, arguments) + json.dumps(name) + ":"
                candidates = list(choices) if choices else [value]
                written = [tokens_of(" " + json.dumps(c, ensure_ascii=False)) for c in candidates]
                mine = candidates.index(value)
                try:
                    said, unsaid = (
                        _share_of(llama, tokens_of(context + text), written, mine)
                        for context in (prompt(), content_free_prompt())
                    )
                except (RuntimeError, ValueError) as exc:  # a failed decode: judged by text
                    logging.getLogger(__name__).warning("value probe failed: %s", exc)
                    return None
                return said - unsaid

            return value_probe

        def rewrite(text: str) -> str:
            if kwargs.get("tool_choice") != "required":
                text, _ = withdraw_invented_calls(text, tools, messages, value_probe_for)
            return ground_reply(text, tools, messages, probe_for, switch_probe_for)

        return _rewrite_reply(result, rewrite)

    return grounded


def register_chat_format(
    template: str | None = None,
    *,
    tool_grammar: bool = True,
    call_form: CallForm = "plain",
    ground_arguments: bool = True,
) -> None:
    """Register `template` (default: the shared tool template) as `agentrt-tools`,
    decoding calls under the tools' grammar unless `tool_grammar` is False, in
    `call_form` (the form the served adapter was trained in), with optional
    arguments grounded in the conversation unless `ground_arguments` is False
    (plain form only: the `every-key` form decides each parameter itself)."""
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template or tool_chat_template(), eos_token="<|im_end|>", bos_token=""
    )
    handler = formatter.to_chat_handler()
    if tool_grammar:
        handler = with_tool_grammar(handler, call_form)
    if call_form == "every-key":
        handler = with_call_form(handler)
    elif ground_arguments:
        handler = with_grounded_arguments(handler, formatter)
    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(handler)


def _take_option(args: list[str], flag: str) -> str | None:
    """Remove `flag VALUE` from `args` and return VALUE (None when absent)."""
    if flag not in args:
        return None
    at = args.index(flag)
    value = args[at + 1]
    del args[at : at + 2]
    return value


def main() -> None:
    """`--chat_template_file PATH` serves an adapter with the template it was trained
    with; `--tool_grammar on|off` switches constrained decoding; `--call_form
    plain|every-key` is the form the adapter writes calls in; `--ground_arguments
    on|off` fills and drops optional arguments by what the conversation states
    (all ours, removed before llama_cpp.server parses the rest)."""
    args = sys.argv[1:]
    template_file = _take_option(args, "--chat_template_file")
    template = Path(template_file).read_text(encoding="utf-8") if template_file else None
    grammar = _take_option(args, "--tool_grammar") or "on"
    if grammar not in ("on", "off"):
        sys.exit(f"--tool_grammar is 'on' or 'off', not {grammar!r}")
    call_form = _take_option(args, "--call_form") or "plain"
    if call_form not in CALL_FORMS:
        sys.exit(f"--call_form is one of {', '.join(CALL_FORMS)}, not {call_form!r}")
    grounding = _take_option(args, "--ground_arguments") or "on"
    if grounding not in ("on", "off"):
        sys.exit(f"--ground_arguments is 'on' or 'off', not {grounding!r}")
    register_chat_format(
        template,
        tool_grammar=grammar == "on",
        call_form="every-key" if call_form == "every-key" else "plain",
        ground_arguments=grounding == "on",
    )
    # what grounding changes in a call goes to the server's log (AGENTRT_GROUNDING_LOG=DEBUG
    # also shows the values the model offered and were not kept)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    grounding_log = logging.getLogger("runtime.model.grounding")
    grounding_log.addHandler(handler)
    grounding_log.setLevel(os.environ.get("AGENTRT_GROUNDING_LOG", "INFO").upper())
    sys.argv[:] = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
