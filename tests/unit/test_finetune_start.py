"""Where `agentrt finetune` starts: the shipped general adapter on the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.cli.finetune_cmd import TrainingStart, training_start
from runtime.model.adapters import general_adapter_dir, similar_requests_of


def test_the_bundled_model_continues_the_general_adapter_by_default() -> None:
    start = training_start("bundled", None, None, None)
    assert start == TrainingStart(
        general_adapter_dir(), similar_requests_of(general_adapter_dir()), 5e-4
    )
    assert start.similar_requests > 0  # the general adapter learned with worked requests
    assert training_start("bundled", "general", None, None) == start


def test_none_is_the_bare_model_with_its_own_defaults() -> None:
    assert training_start("bundled", "none", None, None) == TrainingStart(None, 0, 1e-3)
    # another base: the general adapter was trained on the bundled one, so not by default
    assert training_start("/models/other", None, None, None) == TrainingStart(None, 0, 1e-3)


def test_given_flags_win(tmp_path: Path) -> None:
    (tmp_path / "agentrt_adapter.json").write_text(json.dumps({"similar_requests": 3}))
    assert training_start("bundled", str(tmp_path), None, None) == TrainingStart(tmp_path, 3, 5e-4)
    assert training_start("bundled", str(tmp_path), 0, 2e-3) == TrainingStart(tmp_path, 0, 2e-3)
    assert training_start("bundled", None, 1, 1e-4).similar_requests == 1


def test_bad_starts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="similar-requests"):
        training_start("bundled", None, -1, None)
    with pytest.raises(ValueError, match="not an adapter directory"):
        training_start("bundled", str(tmp_path / "missing"), None, None)
