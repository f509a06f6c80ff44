"""The curated public API: every name `runtime` exports resolves, and the safe stack is in it."""

from __future__ import annotations

import runtime


def test_every_exported_name_resolves() -> None:
    for name in runtime.__all__:
        assert getattr(runtime, name) is not None, name


def test_the_safe_stack_and_its_explicit_opt_out_are_public() -> None:
    from runtime.policy.decision import AllowAllPolicy
    from runtime.stack import build_stack

    assert runtime.build_stack is build_stack
    assert isinstance(runtime.allow_all(), AllowAllPolicy)
