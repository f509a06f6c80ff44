"""System prompt templates with named parts.

A `PromptTemplate` renders a system prompt from a role (the priming), a list of
rules, tool-use instructions and any extra named sections, in that order,
each under its own heading. Text may use `$name` / `${name}` variables
(`string.Template` syntax, so JSON braces need no escaping; `$$` is a dollar
sign); `$tools` is the comma-separated tool names. Rendering is pure: the same
template, variables and tools always give the same text.

Templates load from YAML or JSON:

    role: You are the operations assistant for $team.
    rules:
      - Answer in English.
      - Never guess a value a tool can compute.
    tool_use: default          # or your own text, or null to leave it out
    sections:
      Tone: Short, plain sentences.
    variables:
      team: the platform team
"""

from __future__ import annotations

import dataclasses
import json
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_ROLE", "DEFAULT_TOOL_USE", "PromptError", "PromptTemplate"]

DEFAULT_ROLE = "You are a helpful assistant that can call tools."

DEFAULT_TOOL_USE = (
    "Call a tool only when the request needs what it computes or reads; otherwise answer "
    "directly. Use only the tools provided ($tools). Give every required argument, with "
    "values taken from the request; never invent one. After a tool result, answer the user "
    "in one or two sentences using that result."
)

_FILE_KEYS = {"role", "rules", "tool_use", "sections", "variables"}


class PromptError(ValueError):
    """A prompt template, few-shot example or prompt file is invalid."""


@dataclasses.dataclass(frozen=True, slots=True)
class PromptTemplate:
    """The named parts of a system prompt.

    Attributes:
        role: Who the assistant is and what it is for (the priming).
        rules: Rules rendered as a bulleted list under "Rules".
        tool_use: How to use tools, under "Using tools"; `None` leaves the part
            out. Rendered only when the agent has tools.
        sections: Further `(title, text)` parts, rendered in order.
        variables: Default values for `$name` variables.
    """

    role: str = DEFAULT_ROLE
    rules: tuple[str, ...] = ()
    tool_use: str | None = DEFAULT_TOOL_USE
    sections: tuple[tuple[str, str], ...] = ()
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.role.strip():
            raise PromptError("the template's role is empty")
        for rule in self.rules:
            if not isinstance(rule, str) or not rule.strip():
                raise PromptError("every rule must be a non-empty string")
        titles = [title for title, _ in self.sections]
        reserved = {"rules", "using tools"} & {t.strip().lower() for t in titles}
        if reserved:
            raise PromptError(f"section title {sorted(reserved)[0]!r} is reserved")
        if len(set(titles)) != len(titles):
            raise PromptError("section titles must be unique")
        for name in self.variables:
            if not name.isidentifier():
                raise PromptError(f"variable name {name!r} is not an identifier")

    def render(
        self, variables: Mapping[str, str] | None = None, *, tool_names: Sequence[str] = ()
    ) -> str:
        """The system prompt text.

        Args:
            variables: Values for `$name` variables, over the template's defaults.
            tool_names: The agent's tools; `$tools` lists them and the tool-use
                part is rendered only when there is at least one.

        Raises:
            PromptError: A variable is used but has no value, or `$` is misused.
        """
        values = {**self.variables, **(variables or {})}
        values.setdefault("tools", ", ".join(tool_names) or "none")
        parts = [self._fill("role", self.role, values)]
        if self.rules:
            bullets = "\n".join(f"- {self._fill('rules', rule, values)}" for rule in self.rules)
            parts.append(f"# Rules\n{bullets}")
        if self.tool_use and tool_names:
            parts.append(f"# Using tools\n{self._fill('tool_use', self.tool_use, values)}")
        for title, text in self.sections:
            parts.append(f"# {title}\n{self._fill(title, text, values)}")
        return "\n\n".join(part.strip() for part in parts)

    @staticmethod
    def _fill(part: str, text: str, values: Mapping[str, str]) -> str:
        template = string.Template(text)
        missing = sorted({name for name in template.get_identifiers() if name not in values})
        if missing:
            raise PromptError(
                f"prompt part {part!r} uses ${missing[0]} but no value was given "
                f"(pass variables={{{missing[0]!r}: ...}} or add it under `variables`)"
            )
        try:
            return template.substitute(values)
        except ValueError as exc:  # a lone `$` or `${` that names nothing
            raise PromptError(f"prompt part {part!r}: {exc}; write $$ for a dollar sign") from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "template") -> PromptTemplate:
        """Build a template from parsed YAML/JSON, refusing unknown keys."""
        if not isinstance(data, Mapping):
            raise PromptError(f"{source}: expected a mapping of prompt parts")
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown:
            raise PromptError(
                f"{source}: unknown key {unknown[0]!r}; expected {', '.join(sorted(_FILE_KEYS))}"
            )
        role = data.get("role", DEFAULT_ROLE)
        rules = data.get("rules") or []
        tool_use = data.get("tool_use", "default")
        sections = data.get("sections") or {}
        variables = data.get("variables") or {}
        if not isinstance(role, str):
            raise PromptError(f"{source}: role must be a string")
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise PromptError(f"{source}: rules must be a list of strings")
        if tool_use is not None and not isinstance(tool_use, str):
            raise PromptError(f"{source}: tool_use must be a string, 'default' or null")
        if not isinstance(sections, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sections.items()
        ):
            raise PromptError(f"{source}: sections must map titles to text")
        if not isinstance(variables, Mapping) or not all(
            isinstance(v, str) for v in variables.values()
        ):
            raise PromptError(f"{source}: variables must map names to strings")
        return cls(
            role=role,
            rules=tuple(rules),
            tool_use=DEFAULT_TOOL_USE if tool_use == "default" else tool_use,
            sections=tuple(sections.items()),
            variables=dict(variables),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        """Load a template from a `.yaml`/`.yml` or `.json` file."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            from runtime.policy.loader import PolicyLoadError, read_strict_yaml

            try:
                data, _ = read_strict_yaml(path)
            except PolicyLoadError as exc:
                raise PromptError(str(exc).replace("policies", "the prompt template")) from None
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise PromptError(f"cannot read prompt template {path}: {exc}") from None
        return cls.from_mapping(data, source=str(path))
