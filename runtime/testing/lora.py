"""vLLM's LoRA adapter endpoints, scripted: what `ScriptedServer(enable_lora=True)` answers.

A vLLM server started with `--enable-lora` (and, for the two endpoints,
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`) keeps a table of loaded adapters by
name. This class keeps the same table and answers as vLLM does
(`vllm/entrypoints/openai/models/serving.py`, `serve/lora/api_router.py`):

- `POST /v1/load_lora_adapter {"lora_name", "lora_path"}`: 200 with the plain
  text `Success: LoRA adapter 'X' added successfully.` (no content type); 400
  `InvalidUserInput` when a field is missing or the name is already loaded
  ("...has already been loaded. If you want to load the adapter in place, set
  'load_inplace' to True."); 404 `NotFoundError` "Loading lora X failed: No
  adapter found for PATH" when the path holds no adapter; 500
  `InternalServerError` "LoRA rank R is greater than max_lora_rank M." when the
  adapter's rank is above `--max-lora-rank` (the engine's error, passed on).
- `POST /v1/unload_lora_adapter {"lora_name"}`: 200 `Success: LoRA adapter 'X'
  removed successfully.`; 400 without a name; 404 "The lora adapter 'X' cannot
  be found."
- Without runtime updating the routes do not exist: FastAPI's 404
  `{"detail": "Not Found"}`.
- `/v1/models` lists the base (`root` its path, `parent` null) and every
  loaded adapter (`root` its path, `parent` the base's name).
- A completion naming neither the base nor a loaded adapter gets 404
  "The model `X` does not exist." (`param: "model"`), as captured from vLLM.

Error bodies use vLLM's current shape, `{"error": {"message", "type", "param",
"code"}}`. The scripted server reads `adapter_config.json` under the path it
is given (it runs on this machine), so a rank above the limit is refused the
way the engine refuses it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["AdapterEvent", "AdminReply", "ScriptedAdapters"]


@dataclasses.dataclass(frozen=True, slots=True)
class AdminReply:
    """One answer of an adapter endpoint: a JSON body, or text with no content type."""

    status: int
    body: Mapping[str, Any] | str


@dataclasses.dataclass(frozen=True, slots=True)
class AdapterEvent:
    """A load or unload request as the server saw it, and its answer's status."""

    action: str
    name: str
    path: str | None
    status: int


def _error(status: int, kind: str, message: str, param: str | None = None) -> AdminReply:
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return AdminReply(status, body)


def _rank_of(config: Mapping[str, Any]) -> int:
    """The largest rank an adapter uses (`r`, or any `rank_pattern` entry)."""
    ranks = [int(config.get("r") or 0)]
    pattern = config.get("rank_pattern") or {}
    if isinstance(pattern, Mapping):
        ranks.extend(int(v) for v in pattern.values() if isinstance(v, int))
    return max(ranks)


class ScriptedAdapters:
    """The loaded-adapter table of one scripted vLLM server (thread-safe).

    Args:
        base: The served base model's name (`--served-model-name`).
        root: The base's path as `/v1/models` reports it.
        static: Adapters loaded at start (`--lora-modules NAME=PATH`).
        runtime_updating: Whether the load/unload routes exist
            (`VLLM_ALLOW_RUNTIME_LORA_UPDATING`).
        max_lora_rank: `--max-lora-rank` (vLLM's default is 16).
    """

    def __init__(
        self,
        base: str,
        *,
        root: str,
        static: Mapping[str, str | Path] | None = None,
        runtime_updating: bool = True,
        max_lora_rank: int = 16,
    ) -> None:
        self.base = base
        self.root = root
        self.runtime_updating = runtime_updating
        self.max_lora_rank = max_lora_rank
        self._lock = threading.Lock()
        self._loaded: dict[str, str] = {name: str(path) for name, path in (static or {}).items()}
        self._events: list[AdapterEvent] = []
        self._unknown: list[str] = []
        self._created = int(time.time())

    @property
    def loaded(self) -> dict[str, str]:
        """Loaded adapters: name -> path."""
        with self._lock:
            return dict(self._loaded)

    @property
    def events(self) -> list[AdapterEvent]:
        """Every load and unload request, in order."""
        with self._lock:
            return list(self._events)

    @property
    def unknown_model_requests(self) -> list[str]:
        """Model names of completions refused because nothing by that name was loaded."""
        with self._lock:
            return list(self._unknown)

    def path_of(self, name: str) -> str | None:
        """The path a loaded adapter came from, or None."""
        with self._lock:
            return self._loaded.get(name)

    def check_model(self, name: str | None) -> AdminReply | None:
        """vLLM's 404 for a completion naming no served model; None when it is served."""
        with self._lock:
            if not name or name == self.base or name in self._loaded:
                return None
            self._unknown.append(name)
        return _error(404, "NotFoundError", f"The model `{name}` does not exist.", "model")

    def cards(self) -> list[dict[str, Any]]:
        """The `data` of `/v1/models`: the base first, then each adapter."""
        with self._lock:
            loaded = dict(self._loaded)
        cards = [self._card(self.base, self.root, None, 4096)]
        cards.extend(self._card(name, path, self.base, None) for name, path in loaded.items())
        return cards

    def _card(
        self, name: str, root: str, parent: str | None, max_model_len: int | None
    ) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": self._created,
            "owned_by": "vllm",
            "root": root,
            "parent": parent,
            "max_model_len": max_model_len,
            "permission": [],
        }

    def route(self, path: str, raw: bytes) -> AdminReply | None:
        """Answer `path` if it is an adapter endpoint; None for any other path."""
        route = path.split("?", 1)[0].rstrip("/")
        if route not in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            return None
        if not self.runtime_updating:
            return AdminReply(404, {"detail": "Not Found"})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "BadRequestError", "request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "BadRequestError", "request body is not a JSON object")
        if route.endswith("/load_lora_adapter"):
            return self._load(body)
        return self._unload(body)

    def _load(self, body: Mapping[str, Any]) -> AdminReply:
        name, path = body.get("lora_name"), body.get("lora_path")
        reply = self._check_load(name, path, bool(body.get("load_inplace")))
        with self._lock:
            if reply.status == 200:
                self._loaded[str(name)] = str(path)
            self._events.append(AdapterEvent("load", str(name), path, reply.status))
        return reply

    def _check_load(self, name: Any, path: Any, inplace: bool) -> AdminReply:
        if not name or not path:
            return _error(
                400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided."
            )
        with self._lock:
            taken = name in self._loaded
        if taken and not inplace:
            return _error(
                400,
                "InvalidUserInput",
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True.",
            )
        config_file = Path(str(path)) / "adapter_config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return _error(
                404, "NotFoundError", f"Loading lora {name} failed: No adapter found for {path}"
            )
        rank = _rank_of(config) if isinstance(config, Mapping) else 0
        if rank > self.max_lora_rank:
            return _error(
                500,
                "InternalServerError",
                f"LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.",
            )
        return AdminReply(200, f"Success: LoRA adapter '{name}' added successfully.")

    def _unload(self, body: Mapping[str, Any]) -> AdminReply:
        name = body.get("lora_name")
        with self._lock:
            if not name:
                reply = _error(
                    400,
                    "InvalidUserInput",
                    "'lora_name' needs to be provided to unload a LoRA adapter.",
                )
            elif name not in self._loaded:
                reply = _error(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.")
            else:
                del self._loaded[name]
                reply = AdminReply(200, f"Success: LoRA adapter '{name}' removed successfully.")
            self._events.append(AdapterEvent("unload", str(name), None, reply.status))
        return reply
