"""The served models an evaluation runs against, and how each is started.

`RemoteTarget` is a server someone else runs (vLLM, a llama.cpp server,
anything OpenAI-compatible); `LocalTarget` starts the embedded llama.cpp
server for the bundled model, with or without a GGUF adapter, for the
duration of a run. Both give `serve()`: a context that yields the base URL and
the model name to ask.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.model.call_form import CallForm

__all__ = ["LocalTarget", "RemoteTarget", "Target", "describe_target"]


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteTarget:
    """An OpenAI-compatible server someone else runs; `call_form` is the form
    its adapter writes calls in (`runtime.model.call_form`)."""

    label: str
    base_url: str
    model: str
    call_form: CallForm = "plain"

    @contextlib.contextmanager
    def serve(self) -> Iterator[tuple[str, str]]:
        yield self.base_url, self.model


@dataclasses.dataclass(frozen=True, slots=True)
class LocalTarget:
    """The embedded llama.cpp server, started for the run.

    Attributes:
        label: Name in the report.
        adapter: A GGUF LoRA file, or an adapter directory holding `adapter.gguf`.
        chat_format: `hermes` (the training template) or a llama-cpp-python
            format such as `chatml-function-calling` (the runtime's default).
        model_path: A GGUF base; default the bundled SmolLM2-135M.
        log_path: Where the server writes its log.
        tool_grammar: Decode calls under the tools' grammar (the server's default).
        ground_arguments: Ground optional arguments in the conversation (the
            server's default; `runtime.model.grounding`).
    """

    label: str
    adapter: Path | None = None
    chat_format: str = "hermes"
    model_path: Path | None = None
    log_path: Path | None = None
    tool_grammar: bool = True
    ground_arguments: bool = True

    @contextlib.contextmanager
    def serve(self) -> Iterator[tuple[str, str]]:
        from runtime.model.local_server import LocalModelServer

        adapter = self.adapter
        template: Path | None = None
        if adapter is not None and adapter.is_dir():
            template = adapter / "chat_template.jinja"
            adapter = adapter / "adapter.gguf"
        kwargs: dict[str, Any] = {
            "adapter": adapter,
            "model_path": self.model_path,
            "log_path": self.log_path,
            "tool_grammar": self.tool_grammar,
            "ground_arguments": self.ground_arguments,
        }
        server: LocalModelServer
        if self.chat_format == "hermes":
            server = LocalModelServer(
                chat_template_file=template if template and template.exists() else None, **kwargs
            )
        else:
            server = LocalModelServer(chat_format=self.chat_format, **kwargs)
        server.start(timeout_s=180)
        try:
            yield server.base_url, server.model_alias
        finally:
            server.stop()


Target = RemoteTarget | LocalTarget


def describe_target(target: Target) -> dict[str, Any]:
    """JSON-ready description of a target (paths as strings, no log path)."""
    out = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(target).items()}
    out.pop("log_path", None)
    return out
