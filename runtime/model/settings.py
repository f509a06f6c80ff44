"""Sampling settings sent with every chat-completions request, and named presets.

Every field the servers accept is validated up front, so an impossible value
fails when the settings are built, with a sentence naming the field, not as a
400 from the server halfway through a run:

    >>> SamplingSettings.preset("precise", max_tokens=128)
    >>> SamplingSettings.build(temperature=3)   # SettingsError: temperature: ...

Presets (`PRESETS`):
    precise:  greedy (temperature 0), fixed seed: choosing and filling tool calls.
    balanced: temperature 0.6, top_p 0.9: final answers that read naturally.
    creative: temperature 0.9, top_p 0.95, light presence penalty: drafting text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic

ToolChoice = Literal["auto", "required", "none"] | str

# Seeds go through llama.cpp as 32-bit unsigned values; vLLM takes any int.
MAX_SEED = 2**32 - 1
MAX_STOP_SEQUENCES = 4  # OpenAI's limit; vLLM and llama.cpp take more
MAX_STOP_LENGTH = 256


class SettingsError(ValueError):
    """Sampling settings with an impossible value; the message names each field."""


class SamplingSettings(pydantic.BaseModel):
    """Per-agent sampling and tool-calling settings, validated up front.

    `max_tokens` is always sent: small local models can run on for thousands of
    tokens. `top_k`, `min_p` and `repetition_penalty` are not OpenAI fields; they
    go in `extra_body`, which vLLM and llama.cpp read and other servers ignore.
    Numbers are strict: `True` is not a seed and `"0.5"` is not a temperature.

    Attributes:
        temperature: 0 (greedy) to 2.
        top_p: Nucleus sampling mass, in (0, 1].
        top_k: Keep the k likeliest tokens; -1 or 0 turns it off.
        min_p: Drop tokens below this fraction of the top token's probability, [0, 1].
        repetition_penalty: Multiplicative penalty, > 0 (1 is off; vLLM/llama.cpp).
        frequency_penalty: Additive penalty by count, -2 to 2.
        presence_penalty: Additive penalty once present, -2 to 2.
        seed: 0 to 2**32 - 1, for reproducible sampling where the server supports it.
        max_tokens: Tokens per reply, >= 1.
        stop: Up to 4 non-empty stop sequences (a single string is one sequence).
        tool_choice: `auto`, `required`, `none`, or the name of one tool.
        parallel_tool_calls: Let the model propose several calls in one turn.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = pydantic.Field(
        default=0.0, ge=0.0, le=2.0, allow_inf_nan=False, strict=True
    )
    top_p: float | None = pydantic.Field(
        default=None, gt=0.0, le=1.0, allow_inf_nan=False, strict=True
    )
    max_tokens: int = pydantic.Field(default=512, ge=1, le=131072, strict=True)
    frequency_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, allow_inf_nan=False, strict=True
    )
    presence_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, allow_inf_nan=False, strict=True
    )
    seed: int | None = pydantic.Field(default=None, ge=0, le=MAX_SEED, strict=True)
    stop: tuple[str, ...] | None = pydantic.Field(default=None, max_length=MAX_STOP_SEQUENCES)
    top_k: int | None = pydantic.Field(default=None, ge=-1, strict=True)
    min_p: float | None = pydantic.Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False, strict=True
    )
    repetition_penalty: float | None = pydantic.Field(
        default=None, gt=0.0, le=10.0, allow_inf_nan=False, strict=True
    )
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = pydantic.Field(default=None, strict=True)

    @pydantic.field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @pydantic.field_validator("stop")
    @classmethod
    def _stop_sequences(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for item in value or ():
            if not item:
                raise ValueError("a stop sequence cannot be empty")
            if len(item) > MAX_STOP_LENGTH:
                raise ValueError(f"a stop sequence is at most {MAX_STOP_LENGTH} characters")
        return value

    @pydantic.field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, value: str) -> str:
        if not value:
            raise ValueError("tool_choice is 'auto', 'required', 'none' or a tool name")
        return value

    @classmethod
    def build(cls, **fields: Any) -> SamplingSettings:
        """Construct, turning validation errors into one readable `SettingsError`."""
        try:
            return cls(**fields)
        except pydantic.ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SamplingSettings:
        """A named preset (see `PRESETS`), with fields overridden and re-validated."""
        if name not in PRESETS:
            raise SettingsError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        return PRESETS[name].updated(**overrides) if overrides else PRESETS[name]

    def updated(self, **overrides: Any) -> SamplingSettings:
        """A copy with fields changed, validated like a new instance."""
        return self.build(**{**self.model_dump(exclude_unset=True), **overrides})

    def request_fields(self, *, has_tools: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split into chat-completions keyword arguments and `extra_body` fields."""
        fields: dict[str, Any] = {"max_tokens": self.max_tokens}
        for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty", "seed"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        if self.stop:
            fields["stop"] = list(self.stop)
        if has_tools:
            if self.tool_choice in ("auto", "required", "none"):
                fields["tool_choice"] = self.tool_choice
            else:
                fields["tool_choice"] = {"type": "function", "function": {"name": self.tool_choice}}
            if self.parallel_tool_calls is not None:
                fields["parallel_tool_calls"] = self.parallel_tool_calls
        extra = {
            name: getattr(self, name)
            for name in ("top_k", "min_p", "repetition_penalty")
            if getattr(self, name) is not None
        }
        return fields, extra


PRESETS: Mapping[str, SamplingSettings] = {
    "precise": SamplingSettings(temperature=0.0, seed=0),
    "balanced": SamplingSettings(temperature=0.6, top_p=0.9),
    "creative": SamplingSettings(temperature=0.9, top_p=0.95, presence_penalty=0.3),
}


def resolve_settings(value: SamplingSettings | str | None) -> SamplingSettings | None:
    """A `SamplingSettings`, a preset name, or None, as settings (None stays None)."""
    if value is None or isinstance(value, SamplingSettings):
        return value
    return SamplingSettings.preset(value)


def describe_errors(exc: pydantic.ValidationError, *, flag_style: bool = False) -> str:
    """One line per invalid field: `temperature: must be <= 2 (got 3)`."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        if flag_style:
            field = "--" + field.replace("_", "-")
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a sampling setting"
        elif "input" in error and error["type"] != "missing":
            message = f"{message} (got {error['input']!r})"
        problems.append(f"{field}: {message}")
    return "invalid sampling settings: " + "; ".join(problems)
