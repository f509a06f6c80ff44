"""Allowlist policies: the decide stage of the gate and its rate limits.

Approvals live in `runtime.approvals`.

Imported lazily so `import runtime` does not load YAML or SQLite code.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PolicyDecision": "runtime.policy.decision",
    "PolicyEngine": "runtime.policy.decision",
    "AllowAllPolicy": "runtime.policy.decision",
    "NoPolicy": "runtime.policy.decision",
    "allow_all": "runtime.policy.decision",
    "PolicySet": "runtime.policy.engine",
    "load_policies": "runtime.policy.loader",
    "default_policy_dir": "runtime.policy.loader",
    "PolicyLoadError": "runtime.policy.loader",
    "InMemoryRateLimitStore": "runtime.policy.ratelimit",
    "SQLiteRateLimitStore": "runtime.policy.ratelimit",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
