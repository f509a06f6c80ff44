"""Serve a GGUF model with the training chat template through llama-cpp-python.

llama-cpp-python's built-in `chatml-function-calling` format renders tools its
own way, and its `hf-tokenizer-config` format appends an empty assistant turn
to the prompt; neither matches what an adapter was trained on. This launcher
registers the training template (`runtime.finetune.chat_template`, or the
`chat_template.jinja` saved with an adapter) as the chat format
`agentrt-hermes`, then runs `python -m llama_cpp.server` unchanged::

    python -m runtime.finetune.llama_server --model M.gguf --lora_path adapter.gguf \\
        --chat_format agentrt-hermes [--chat_template_file chat_template.jinja]

Calls come back as `<tool_call>` text in `content`; the runtime's client
recovers them (`runtime.model.compat.extract_text_tool_calls`).
`HermesModelServer` is `LocalModelServer` started through this launcher.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runtime.finetune.chat_template import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN
from runtime.model.local_server import LocalModelServer

__all__ = ["CHAT_FORMAT", "HermesModelServer", "main", "register_chat_format"]

CHAT_FORMAT = "agentrt-hermes"


def register_chat_format(template: str = CHAT_TEMPLATE, name: str = CHAT_FORMAT) -> None:
    """Register `template` with llama-cpp-python under `name` (in this process)."""
    from llama_cpp import llama_chat_format

    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=EOS_TOKEN, bos_token=BOS_TOKEN
    )
    registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()  # type: ignore[no-untyped-call]
    registry.register_chat_completion_handler(name, formatter.to_chat_handler(), overwrite=True)


def main(argv: list[str] | None = None) -> None:
    """Register the template, then hand the remaining arguments to llama_cpp.server."""
    args = list(sys.argv[1:] if argv is None else argv)
    template = CHAT_TEMPLATE
    if "--chat_template_file" in args:
        at = args.index("--chat_template_file")
        template = Path(args[at + 1]).read_text(encoding="utf-8")
        del args[at : at + 2]
    register_chat_format(template)
    from llama_cpp.server.__main__ import main as server_main

    sys.argv = ["llama_cpp.server", *args]
    server_main()  # type: ignore[no-untyped-call]


class HermesModelServer(LocalModelServer):
    """`LocalModelServer` serving with the training chat template.

    Args:
        chat_template_file: A template saved with an adapter; default the built-in one.
        **kwargs: As for `LocalModelServer` (`adapter`, `model_path`, `port`, ...).
    """

    def __init__(self, *, chat_template_file: Path | None = None, **kwargs: object) -> None:
        kwargs.setdefault("chat_format", CHAT_FORMAT)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.chat_template_file = chat_template_file

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("-m") + 1  # whichever launcher LocalModelServer uses
        command[at] = "runtime.finetune.llama_server"
        if self.chat_template_file is not None:
            command += ["--chat_template_file", str(self.chat_template_file)]
        return command


if __name__ == "__main__":
    main()
