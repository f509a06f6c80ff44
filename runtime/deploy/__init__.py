"""Deploying LoRA adapters to a live vLLM server, behind an eval gate.

- `checkpoint`: what an adapter directory and a base model directory hold (headers only).
- `compatibility`: the refusals (unmatched modules, rank, added tokens, modules_to_save, base).
- `server`: vLLM's adapter endpoints and `/v1/models`, over HTTP.
- `registry`: the record of versions (`NAME@vN`), which one serves, in SQLite or PostgreSQL.
- `gate`: the promotion rule ("not worse", paired McNemar tests).
- `deployer`: deploy, roll back, restore.
- `resolve`: the model name a request for `NAME` is sent under (`DeployedModel`: per run).

The CLI is `agentrt adapter deploy|list|rollback|restore`; see the README,
"Deploying adapters to vLLM".
"""

from runtime.deploy.checkpoint import AdapterDir, BaseModelDir, CheckpointError
from runtime.deploy.compatibility import Refusal, check_adapter
from runtime.deploy.deployer import (
    DeployOptions,
    DeployOutcome,
    DeployStatus,
    deploy_adapter,
    restore_adapter,
    rollback_adapter,
)
from runtime.deploy.gate import GateResult, decide_promotion
from runtime.deploy.registry import (
    AdapterRegistry,
    AdapterVersion,
    RegistryError,
    ServingChanged,
    SQLAdapterRegistry,
    SQLiteAdapterRegistry,
    VersionStatus,
    open_existing_registry,
    open_registry,
)
from runtime.deploy.resolve import AdapterNotLoaded, DeployedModel, ResolvedModel, resolve_model
from runtime.deploy.server import AdapterServer, AdapterServerError, ModelCard

__all__ = [
    "AdapterDir",
    "AdapterNotLoaded",
    "AdapterRegistry",
    "AdapterServer",
    "AdapterServerError",
    "AdapterVersion",
    "BaseModelDir",
    "CheckpointError",
    "DeployOptions",
    "DeployOutcome",
    "DeployStatus",
    "DeployedModel",
    "GateResult",
    "ModelCard",
    "Refusal",
    "RegistryError",
    "ResolvedModel",
    "SQLAdapterRegistry",
    "SQLiteAdapterRegistry",
    "ServingChanged",
    "VersionStatus",
    "check_adapter",
    "decide_promotion",
    "deploy_adapter",
    "open_existing_registry",
    "open_registry",
    "resolve_model",
    "restore_adapter",
    "rollback_adapter",
]
