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

CHAT_FORMAT = "agentrt-tools"


def tool_chat_template() -> str:
    """The Jinja chat template shared by llama.cpp, vLLM and fine-tuning."""
    return files("runtime.model").joinpath("templates/tool_chat_template.jinja").read_text()


def register_chat_format() -> None:
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=tool_chat_template(), eos_token="<|im_end|>", bos_token=""
    )
    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(formatter.to_chat_handler())


def main() -> None:
    register_chat_format()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
