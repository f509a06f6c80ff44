"""`python -m runtime.model.llama_server_main ...`: llama-cpp-python's server with our tool format.

Registers the `agentrt-tools` chat format — the Qwen2.5-style template in
`templates/tool_chat_template.jinja` that renders `tools` into the prompt and
expects `<tool_call>{json}</tool_call>` replies, the same format vLLM's hermes
parser reads and `agentrt finetune` trains — then runs `llama_cpp.server` with
the remaining arguments.

Every request that offers `tools` is decoded under a grammar built from them
(`runtime/model/tool_grammar.py`): calls name an offered tool and match its
schema, or the reply is plain text. `--tool_grammar off` (ours) serves without it.

Why not llama-cpp-python's `chatml-function-calling`: in `auto` mode it
generates call arguments with `max_tokens=None`, so a small model can run on
for thousands of tokens inside one call (observed here: minutes per request),
and it answers 500 for `tool_choice: required`.
"""

from __future__ import annotations

import logging
import runpy
import sys
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from runtime.model.call_form import (
    CALL_FORMS,
    CallForm,
    drop_unstated_in_text,
    spell_out_messages,
)
from runtime.model.tool_grammar import ToolGrammarError, tool_call_grammar

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
        result = handler(**kwargs)
        if isinstance(result, dict):
            for choice in result.get("choices") or []:
                message = choice.get("message") or {}
                if isinstance(message.get("content"), str):
                    message["content"] = drop_unstated_in_text(message["content"], tools)
            return result
        return _stream_without_unstated(result, tools)

    return spelled


def _stream_without_unstated(chunks: Iterator[Any], tools: Sequence[Any]) -> Iterator[Any]:
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
            first["choices"][0]["delta"]["content"] = drop_unstated_in_text(text, tools)
            yield first
        yield chunk
    if held:  # the stream ended without a finish reason: pass on what came
        first = held.pop()
        first["choices"][0]["delta"]["content"] = drop_unstated_in_text(text, tools)
        yield first


def register_chat_format(
    template: str | None = None, *, tool_grammar: bool = True, call_form: CallForm = "plain"
) -> None:
    """Register `template` (default: the shared tool template) as `agentrt-tools`,
    decoding calls under the tools' grammar unless `tool_grammar` is False, in
    `call_form` (the form the served adapter was trained in)."""
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template or tool_chat_template(), eos_token="<|im_end|>", bos_token=""
    )
    handler = formatter.to_chat_handler()
    if tool_grammar:
        handler = with_tool_grammar(handler, call_form)
    if call_form == "every-key":
        handler = with_call_form(handler)
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
    plain|every-key` is the form the adapter writes calls in (all ours, removed
    before llama_cpp.server parses the rest)."""
    args = sys.argv[1:]
    template_file = _take_option(args, "--chat_template_file")
    template = Path(template_file).read_text(encoding="utf-8") if template_file else None
    grammar = _take_option(args, "--tool_grammar") or "on"
    if grammar not in ("on", "off"):
        sys.exit(f"--tool_grammar is 'on' or 'off', not {grammar!r}")
    call_form = _take_option(args, "--call_form") or "plain"
    if call_form not in CALL_FORMS:
        sys.exit(f"--call_form is one of {', '.join(CALL_FORMS)}, not {call_form!r}")
    register_chat_format(
        template,
        tool_grammar=grammar == "on",
        call_form="every-key" if call_form == "every-key" else "plain",
    )
    sys.argv[:] = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
