"""`python -m runtime.model.llama_server_main ...`: llama-cpp-python's server with our tool format.

Registers the `agentrt-tools` chat format — the Qwen2.5-style template in
`templates/tool_chat_template.jinja` that renders `tools` into the prompt and
expects `<tool_call>{json}</tool_call>` replies, the same format vLLM's hermes
parser reads and `agentrt finetune` trains — then runs `llama_cpp.server` with
the remaining arguments.

Why not llama-cpp-python's `chatml-function-calling`: in `auto` mode it
generates call arguments with `max_tokens=None`, so a small model can run on
for thousands of tokens inside one call (observed here: minutes per request),
and it answers 500 for `tool_choice: required`.
"""

from __future__ import annotations

import runpy
import sys
from importlib.resources import files
from pathlib import Path

CHAT_FORMAT = "agentrt-tools"


def tool_chat_template() -> str:
    """The Jinja chat template shared by llama.cpp, vLLM and fine-tuning."""
    return files("runtime.model").joinpath("templates/tool_chat_template.jinja").read_text()


def register_chat_format(template: str | None = None) -> None:
    """Register `template` (default: the shared tool template) as `agentrt-tools`."""
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template or tool_chat_template(), eos_token="<|im_end|>", bos_token=""
    )
    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(formatter.to_chat_handler())


def main() -> None:
    """`--chat_template_file PATH` (ours, removed before llama_cpp.server parses the rest)
    serves an adapter with the template it was trained with."""
    args = sys.argv[1:]
    template = None
    if "--chat_template_file" in args:
        at = args.index("--chat_template_file")
        template = Path(args[at + 1]).read_text(encoding="utf-8")
        del args[at : at + 2]
    register_chat_format(template)
    sys.argv[:] = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
