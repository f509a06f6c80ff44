"""Sampling settings sent with every chat-completions request."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

ToolChoice = Literal["auto", "required", "none"] | str


class SamplingSettings(pydantic.BaseModel):
    """Per-agent sampling and tool-calling settings, validated up front.

    `max_tokens` is always sent: small local models can run on for thousands of
    tokens. `top_k`, `min_p` and `repetition_penalty` are not OpenAI fields; they
    go in `extra_body`, which vLLM and llama.cpp read and other servers ignore.

    Attributes:
        tool_choice: `auto`, `required`, `none`, or the name of one tool.
        parallel_tool_calls: Let the model propose several calls in one turn.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = pydantic.Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = pydantic.Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int = pydantic.Field(default=512, ge=1, le=131072)
    frequency_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, allow_inf_nan=False
    )
    presence_penalty: float | None = pydantic.Field(
        default=None, ge=-2.0, le=2.0, allow_inf_nan=False
    )
    seed: int | None = None
    stop: tuple[str, ...] | None = pydantic.Field(default=None, max_length=4)
    top_k: int | None = pydantic.Field(default=None, ge=-1)
    min_p: float | None = pydantic.Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    repetition_penalty: float | None = pydantic.Field(default=None, gt=0.0, allow_inf_nan=False)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool | None = None

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
