"""Sampling settings: every field validated with a readable error; presets."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.model.settings import (
    MAX_SEED,
    PRESETS,
    SamplingSettings,
    SettingsError,
    resolve_settings,
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
        ({"temperature": "0.5"}, "temperature: Input should be a valid number"),
        ({"top_p": 0}, "top_p: Input should be greater than 0"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_k": -2}, "top_k: Input should be greater than or equal to -1"),
        ({"top_k": 3.5}, "top_k: Input should be a valid integer"),
        ({"min_p": -0.1}, "min_p"),
        ({"min_p": float("inf")}, "min_p: Input should be a finite number"),
        ({"repetition_penalty": 0}, "repetition_penalty: Input should be greater than 0"),
        ({"frequency_penalty": 2.1}, "frequency_penalty"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"seed": True}, "seed: Input should be a valid integer (got True)"),
        ({"seed": -1}, "seed"),
        ({"seed": MAX_SEED + 1}, "seed: Input should be less than or equal to 4294967295"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [""]}, "stop: a stop sequence cannot be empty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["x" * 300]}, "at most 256 characters"),
        ({"tool_choice": ""}, "tool_choice"),
        ({"temprature": 0.1}, "temprature: is not a sampling setting"),
    ],
)
def test_impossible_values_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        SamplingSettings.build(**fields)
    assert message in str(caught.value)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        SamplingSettings.build(temperature=-1, top_p=0, seed="1")
    text = str(caught.value)
    assert "temperature" in text and "top_p" in text and "seed" in text


def test_valid_edges_are_accepted() -> None:
    settings = SamplingSettings.build(
        temperature=2, top_p=1, top_k=-1, min_p=0, seed=MAX_SEED, stop="END", max_tokens=1
    )
    assert settings.stop == ("END",) and settings.temperature == 2.0


def test_presets_and_overrides() -> None:
    assert set(PRESETS) == {"precise", "balanced", "creative"}
    precise = SamplingSettings.preset("precise")
    assert (precise.temperature, precise.seed) == (0.0, 0)
    balanced = SamplingSettings.preset("balanced", max_tokens=64, seed=5)
    assert (balanced.temperature, balanced.top_p, balanced.max_tokens, balanced.seed) == (
        0.6,
        0.9,
        64,
        5,
    )
    assert PRESETS["balanced"].max_tokens == 512  # the preset itself is unchanged
    with pytest.raises(SettingsError, match="temperature"):
        SamplingSettings.preset("creative", temperature=9)
    with pytest.raises(SettingsError, match="presets: precise, balanced, creative"):
        SamplingSettings.preset("greedy")


def test_resolve_settings() -> None:
    assert resolve_settings(None) is None
    custom = SamplingSettings(temperature=0.3)
    assert resolve_settings(custom) is custom
    assert resolve_settings("balanced") == PRESETS["balanced"]


def test_cli_names_flags_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    code = main(
        ["run", "-m", "tools", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
         "--sandbox", "inprocess", "--audit-log", "none", "--top-p", "0", "--seed", "-4", "hi"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--top-p: Input should be greater than 0" in err and "--seed:" in err
