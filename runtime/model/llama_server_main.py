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
from importlib.resources import files
from pathlib import Path
from typing import Any

from runtime.model.tool_grammar import ToolGrammarError, tool_call_grammar

CHAT_FORMAT = "agentrt-tools"


def tool_chat_template() -> str:
    """The Jinja chat template shared by llama.cpp, vLLM and fine-tuning."""
    return files("runtime.model").joinpath("templates/tool_chat_template.jinja").read_text()


def with_tool_grammar(handler: Any) -> Any:
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
                    tool_call_grammar(tools, tool_choice=choice), verbose=False
                )
            except (ToolGrammarError, ValueError) as exc:
                logging.getLogger(__name__).warning("serving without a tool grammar: %s", exc)
            else:
                kwargs["grammar"] = grammar
        return handler(**kwargs)

    return constrained


def register_chat_format(template: str | None = None, *, tool_grammar: bool = True) -> None:
    """Register `template` (default: the shared tool template) as `agentrt-tools`,
    decoding calls under the tools' grammar unless `tool_grammar` is False."""
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template or tool_chat_template(), eos_token="<|im_end|>", bos_token=""
    )
    handler = formatter.to_chat_handler()
    if tool_grammar:
        handler = with_tool_grammar(handler)
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
    with; `--tool_grammar on|off` switches constrained decoding (both ours, removed
    before llama_cpp.server parses the rest)."""
    args = sys.argv[1:]
    template_file = _take_option(args, "--chat_template_file")
    template = Path(template_file).read_text(encoding="utf-8") if template_file else None
    grammar = _take_option(args, "--tool_grammar") or "on"
    if grammar not in ("on", "off"):
        sys.exit(f"--tool_grammar is 'on' or 'off', not {grammar!r}")
    register_chat_format(template, tool_grammar=grammar == "on")
    sys.argv[:] = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
