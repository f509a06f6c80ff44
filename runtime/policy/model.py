"""Pydantic models of the policy file format (`apiVersion: agentrt/v1`, `kind: ToolPolicy`).

The format is a contract (issue 4): these models accept exactly what it
describes, plus a few compatible extensions, each marked below:

- a rule may carry a `reason` (the sentence shown to the model) and a
  `description` (for reviewers);
- the `exists` operator (`true`/`false`): a condition on a missing field is
  false, so `exists: true` is how a rule requires presence and
  `exists: false` how it tests absence;
- a top-level `audit: {redact: ["args.password", ...]}` block.

Every model forbids unknown keys. Values are validated strictly: a number is
never read from a string, a boolean never from `0`/`1`, and non-finite numbers
are refused. Semantic checks that need more than a type (regex safety, CIDR
syntax, URL host normalisation) live in `runtime.policy.conditions` and run
from the validators here, so a bad file fails at load, never at decide time.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from runtime.policy import conditions

__all__ = [
    "RESERVED_IDS",
    "AllOf",
    "AnyOf",
    "Approval",
    "AuditConfig",
    "Condition",
    "Limit",
    "Metadata",
    "NotOf",
    "Operators",
    "PolicyFile",
    "Rule",
    "Scope",
    "UrlSpec",
    "parse_duration",
]

#: Rule ids the engine itself puts in decisions; a policy may not reuse them.
RESERVED_IDS = frozenset({"default-deny", "policy-error", "no-policy", "rate-limit-store"})

Identifier = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", strict=True)
]
Glob = Annotated[str, StringConstraints(min_length=1, max_length=256, strict=True)]
# `args.<dotted path>` or `context.<name>`; a numeric segment indexes a list.
FieldPath = Annotated[
    str, StringConstraints(pattern=r"^(args|context)(\.[A-Za-z0-9_$-]+)+$", strict=True)
]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Number = Annotated[int, Field(strict=True)] | FiniteFloat
Scalar = bool | Annotated[int, Field(strict=True)] | FiniteFloat | str | None
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]

_DURATION_RE = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^([1-9][0-9]{0,8})/(second|minute|hour|day|s|m|h|d)$")
_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_UNITS.update(s=1, m=60, h=3600, d=86400)
_PER_RE = re.compile(
    r"^(tool|tenant|agent|conversation_id|principal|run_id|"
    r"(args|context)(\.[A-Za-z0-9_$-]+)+)$"
)


def parse_duration(text: str) -> float:
    """Turn `"15m"` into seconds (units s, m, h, d).

    Raises:
        ValueError: The text is not a positive whole number followed by a unit.
    """
    match = _DURATION_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like '30s', '15m', '2h' or '1d'")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Metadata(_Model):
    """Who this policy file is: `id` must be unique across the policy set."""

    id: Identifier
    description: str | None = None


class Scope(_Model):
    """Which callers a file applies to; an omitted key means any, globs allowed."""

    tenants: Annotated[list[Glob], Field(min_length=1)] | None = None
    agents: Annotated[list[Glob], Field(min_length=1)] | None = None


class UrlSpec(_Model):
    """Arguments of the `url` operator: what a URL argument may point at.

    An omitted key allows any value, except `schemes`, which defaults to
    http and https (never `file`, `gopher`, ... unless named).
    """

    schemes: Annotated[list[str], Field(min_length=1)] = ["http", "https"]
    hosts: Annotated[list[Glob], Field(min_length=1)] | None = None
    ports: Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1)] | None = None

    @field_validator("schemes")
    @classmethod
    def _lower_schemes(cls, value: list[str]) -> list[str]:
        for scheme in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
                raise ValueError(f"{scheme!r} is not a URL scheme")
        return [scheme.lower() for scheme in value]

    @field_validator("hosts")
    @classmethod
    def _normalise_hosts(cls, value: list[str] | None) -> list[str] | None:
        # Hosts are compared in the same form the evaluator gives the argument:
        # lower-case, no trailing dot, IDNA A-labels, IP literals canonical.
        if value is None:
            return None
        return [conditions.normalise_host_pattern(host) for host in value]


class Operators(_Model):
    """The operators of one field test; every operator given must hold."""

    equals: Scalar = None
    in_: Annotated[list[Scalar], Field(min_length=1)] | None = Field(default=None, alias="in")
    not_in: Annotated[list[Scalar], Field(min_length=1)] | None = None
    contains: Scalar = None
    prefix: str | None = None
    regex: str | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    max_len: NonNegativeInt | None = None
    max_items: NonNegativeInt | None = None
    path_under: Annotated[list[str], Field(min_length=1)] | None = None
    url: UrlSpec | None = None
    ip_in: Annotated[list[str], Field(min_length=1)] | None = None
    exists: bool | None = None  # extension: the one operator a missing field can satisfy

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            conditions.compile_regex(value)  # raises ValueError naming the problem
        return value

    @field_validator("path_under")
    @classmethod
    def _check_roots(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for root in value:
                conditions.normalise_root(root)
        return value

    @field_validator("ip_in")
    @classmethod
    def _check_cidrs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for cidr in value:
                try:
                    ipaddress.ip_network(cidr, strict=True)
                except ValueError as exc:
                    raise ValueError(f"{cidr!r} is not a CIDR block: {exc}") from None
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> Operators:
        if not self.model_fields_set:
            raise ValueError("a field test needs at least one operator")
        return self


class AllOf(_Model):
    """`{all: [...]}`: every condition holds."""

    all: Annotated[list[Condition], Field(min_length=1)]


class AnyOf(_Model):
    """`{any: [...]}`: at least one condition holds."""

    any: Annotated[list[Condition], Field(min_length=1)]


class NotOf(_Model):
    """`{not: condition}`: the condition does not hold."""

    not_: Condition = Field(alias="not")


FieldTests = Annotated[dict[FieldPath, Operators], Field(min_length=1)]


def _condition_kind(value: Any) -> str:
    """Pick the union member from the mapping's keys, so errors name one shape only."""
    if isinstance(value, AllOf | AnyOf | NotOf):
        return {AllOf: "all", AnyOf: "any", NotOf: "not"}[type(value)]
    if isinstance(value, dict):
        for key in ("all", "any", "not"):
            if key in value:
                return key
    return "field"


Condition = TypeAliasType(
    "Condition",
    Annotated[
        Annotated[AllOf, Tag("all")]
        | Annotated[AnyOf, Tag("any")]
        | Annotated[NotOf, Tag("not")]
        | Annotated[FieldTests, Tag("field")],
        Discriminator(_condition_kind),
    ],
)


class Approval(_Model):
    """How a `require_approval` rule waits for a human."""

    timeout: str = "15m"

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def timeout_s(self) -> float:
        """The timeout in seconds."""
        return parse_duration(self.timeout)


class Rule(_Model):
    """One allow, deny or require_approval rule."""

    id: Identifier
    effect: Literal["allow", "deny", "require_approval"]
    tools: Annotated[list[Glob], Field(min_length=1)]
    when: Condition | None = None
    approval: Approval | None = None
    reason: str | None = None  # extension: the sentence the model is shown
    description: str | None = None  # extension: for reviewers
    # extension: sandbox capabilities this rule grants the calls it allows; a tool
    # that asks for network (`@tool(sandbox={"network": True})`) gets it only then
    grants: list[Literal["network"]] = []

    @model_validator(mode="after")
    def _approval_only_for_approval_rules(self) -> Rule:
        if self.approval is not None and self.effect != "require_approval":
            raise ValueError("`approval` is only valid on a rule with effect require_approval")
        if self.grants and self.effect == "deny":
            raise ValueError("`grants` is only valid on allow and require_approval rules")
        return self


class Limit(_Model):
    """A sliding-window rate limit on calls allowed for the matching tools."""

    id: Identifier
    tools: Annotated[list[Glob], Field(min_length=1)]
    per: list[str] = []  # empty: one window shared by every caller
    rate: str

    @field_validator("per")
    @classmethod
    def _check_per(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _PER_RE.match(name):
                raise ValueError(
                    f"{name!r} is not a rate-limit key; use tool, tenant, agent, "
                    "conversation_id, principal, run_id, context.<name> or args.<path>"
                )
        if len(set(value)) != len(value):
            raise ValueError("`per` names a key twice")
        return value

    @field_validator("rate")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        if not _RATE_RE.match(value):
            raise ValueError(
                f"{value!r} is not a rate like '10/minute' (second, minute, hour, day)"
            )
        return value

    @property
    def capacity(self) -> int:
        """Calls allowed per window."""
        match = _RATE_RE.match(self.rate)
        assert match is not None  # checked by the validator
        return int(match.group(1))

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        match = _RATE_RE.match(self.rate)
        assert match is not None
        return float(_RATE_UNITS[match.group(2)])


RedactPath = Annotated[str, StringConstraints(pattern=r"^args(\.[A-Za-z0-9_$*-]+)+$", strict=True)]


class AuditConfig(_Model):
    """Extension: argument paths the audit log must redact (`args.password`)."""

    redact: list[RedactPath] = []


class PolicyFile(_Model):
    """One policy file."""

    api_version: Literal["agentrt/v1"] = Field(alias="apiVersion")
    kind: Literal["ToolPolicy"]
    metadata: Metadata
    scope: Scope = Scope()
    rules: list[Rule] = []
    limits: list[Limit] = []
    audit: AuditConfig | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicyFile:
        seen: set[str] = set()
        items: list[Rule | Limit] = [*self.rules, *self.limits]
        for item in items:
            if item.id in RESERVED_IDS:
                raise ValueError(f"id {item.id!r} is reserved for the engine")
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice in this file")
            seen.add(item.id)
        return self


for _model in (AllOf, AnyOf, NotOf, Rule, PolicyFile):
    _model.model_rebuild()
