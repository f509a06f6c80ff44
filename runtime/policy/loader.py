"""Strict loading of policy files: YAML that means one thing, or a load error.

PyYAML's `safe_load` keeps the last of duplicate keys and guesses YAML 1.1
types from bare words (`NO` → false, `on` → true, `1.10` → 1.1). Here:

- duplicate keys, aliases (`*name`), merge keys (`<<`), explicit tags
  (`!!float`) and multiple documents are errors;
- a quoted scalar is always a string;
- a bare (plain) scalar is `null` for `null`, `~` or nothing; `true`/`false`
  (lower case only); an int for `-?(0|[1-9][0-9]*)`; a float for
  `-?(0|[1-9][0-9]*).[0-9]*[1-9]`; and a string otherwise — EXCEPT that a bare
  word a YAML 1.1 parser would read as a boolean, number or null (`NO`, `on`,
  `True`, `1.10`, `1.0`, `0x1F`, `0o17`, `1e3`, `1_000`, `.inf`, `12:30`) is an
  error telling the author to quote it or write the canonical form. So
  reviewers and the engine can never disagree about a value.

Every problem names the file, the line and the key (`rules[0].when.all[1]`).
Across files, duplicate `metadata.id`s and duplicate rule/limit ids are
errors too. Any error refuses the whole set: the runtime must not start with
fewer rules than the reviewer saw.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml

from runtime.policy.engine import PolicySet
from runtime.policy.model import Limit, PolicyFile, Rule
from runtime.policy.ratelimit import RateLimitStore

__all__ = [
    "PolicyLoadError",
    "PolicyProblem",
    "default_policy_dir",
    "find_policy_files",
    "load_policies",
    "load_policy_file",
    "read_strict_yaml",
]

_MAX_FILE_BYTES = 1 << 20
_PLAIN = "tag:agentrt:plain"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_INT_RE = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_FLOAT_RE = re.compile(r"^-?(?:0|[1-9][0-9]*)\.[0-9]*[1-9]$")
# YAML 1.2 core-schema numbers and words: tools that follow 1.2 read these as
# non-strings (0o17 → 15, 1e3 → 1000.0), so they are refused like 1.1 guesses.
_YAML12_TYPED = re.compile(
    r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|true|True|TRUE|false|False|FALSE|Null|NULL)$"
)
_YAML11 = yaml.resolver.Resolver()
_YAML11_KINDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a float",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:merge": "a merge key",
    "tag:yaml.org,2002:value": "a value key",
}


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong with a policy file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class PolicyLoadError(ValueError):
    """The policy set cannot be loaded; nothing was loaded.

    Attributes:
        problems: Every problem found, each naming file, line and key.
    """

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"refusing to load policies ({len(self.problems)} problem(s)):\n{lines}")


class _YamlProblem(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


class _StrictLoader(yaml.SafeLoader):
    """Composes nodes only; plain scalars get a marker tag resolved by `_convert`."""

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        resolved: str = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return resolved

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _YamlProblem("aliases (*name) are not allowed in policy files", event.start_mark)
        node: yaml.Node | None = super().compose_node(parent, index)
        return node


def _resolve_plain(value: str, mark: yaml.Mark) -> Any:
    if value in ("", "~", "null"):
        return None
    if value in ("true", "false"):
        return value == "true"
    if _INT_RE.match(value):
        return int(value)
    if _FLOAT_RE.match(value):
        return float(value)
    tag = _YAML11.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    kind = _YAML11_KINDS.get(tag)
    if kind is None and _YAML12_TYPED.match(value):
        kind = "a number or boolean"
    if kind is not None:
        raise _YamlProblem(
            f"bare {value!r} would be read as {kind} by some YAML parsers; quote it if you "
            "mean a string, or write true/false, null, or a plain decimal number "
            "(no trailing zero after the point)",
            mark,
        )
    return value


def _convert(node: yaml.Node, path: tuple[str | int, ...], lines: dict[Any, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _YamlProblem(f"explicit tag {node.tag!r} is not allowed", node.start_mark)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (_PLAIN, _STR):
                raise _YamlProblem("mapping keys must be plain strings", key_node.start_mark)
            key = str(key_node.value)
            if key == "<<" and key_node.tag == _PLAIN:
                raise _YamlProblem("merge keys (<<) are not allowed", key_node.start_mark)
            if key in out:
                first = lines.get((*path, key))
                raise _YamlProblem(
                    f"duplicate key {key!r} (first at line {first})", key_node.start_mark
                )
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _YamlProblem(f"explicit tag {node.tag!r} is not allowed", node.start_mark)
        return [_convert(item, (*path, i), lines) for i, item in enumerate(node.value)]
    if node.tag == _PLAIN:
        return _resolve_plain(str(node.value), node.start_mark)
    if node.tag != _STR:
        raise _YamlProblem(f"explicit tag {node.tag!r} is not allowed", node.start_mark)
    return str(node.value)


def read_strict_yaml(path: Path) -> tuple[Any, dict[Any, int]]:
    """Parse one YAML file strictly.

    Returns:
        The data and a map from key path (tuple of keys and indexes) to line.

    Raises:
        PolicyLoadError: The file cannot be read or breaks a rule above.
    """
    name = str(path)
    try:
        raw = path.read_bytes()
        if len(raw) > _MAX_FILE_BYTES:
            raise _YamlProblem(f"file is larger than {_MAX_FILE_BYTES} bytes", None)
        loader = _StrictLoader(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
        if node is None:
            raise _YamlProblem("file is empty", None)
        lines: dict[Any, int] = {}
        return _convert(node, (), lines), lines
    except _YamlProblem as exc:
        raise PolicyLoadError([PolicyProblem(name, exc.line, "", str(exc))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise PolicyLoadError([PolicyProblem(name, line, "", f"YAML: {message}")]) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyLoadError([PolicyProblem(name, None, "", str(exc))]) from None


def format_key(path: Iterable[str | int]) -> str:
    """`("rules", 0, "when", "args.path")` → `rules[0].when["args.path"]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in part or not part.isidentifier():
            out += f"[{part!r}]".replace("'", '"')
        else:
            out += f".{part}" if out else part
    return out


def _locate(data: Any, loc: Sequence[Any]) -> tuple[str | int, ...]:
    """Follow a pydantic error location through the data, skipping union tags."""
    path: tuple[str | int, ...] = ()
    current = data
    for part in loc:
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            current = current[part]
            path = (*path, part)
    return path


_OPERATORS = (
    "equals, in, not_in, contains, prefix, regex, gt, gte, lt, lte, max_len, max_items, "
    "path_under, url, ip_in, exists"
)


def validation_problems(
    name: str, data: Any, lines: dict[Any, int], error: pydantic.ValidationError
) -> list[PolicyProblem]:
    """Turn pydantic errors into problems naming line and key."""
    grouped: dict[tuple[str | int, ...], list[str]] = {}
    for item in error.errors(include_url=False):
        path = _locate(data, item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and path:
            key = path[-1]
            holder = path[-2] if len(path) > 1 else None
            if isinstance(holder, str) and holder.startswith(("args.", "context.")):
                message = f"unknown operator {key!r} (known: {_OPERATORS})"
            else:
                message = f"unknown key {key!r}"
        elif item["type"] == "missing":
            message = f"missing required key {item['loc'][-1]!r}"
        grouped.setdefault(path, [])
        if message not in grouped[path]:
            grouped[path].append(message)
    problems = []
    for path, messages in grouped.items():
        text = messages[0] if len(messages) == 1 else "; or ".join(messages[:4])
        problems.append(PolicyProblem(name, lines.get(path), format_key(path), text))
    return problems


def load_policy_file(path: Path) -> tuple[PolicyFile, dict[Any, int]]:
    """Read and validate one policy file.

    Raises:
        PolicyLoadError: Naming every problem found in the file.
    """
    data, lines = read_strict_yaml(path)
    try:
        return PolicyFile.model_validate(data), lines
    except pydantic.ValidationError as exc:
        raise PolicyLoadError(validation_problems(str(path), data, lines, exc)) from None


def default_policy_dir() -> Path:
    """The policies shipped inside the package: least privilege for the built-in tools.

    `default.yaml` allows each built-in tool only with arguments of the shape
    it needs and denies everything else (every other tool included). The
    CLI loads it unless told `--policy DIR` or `--policy none`. Its
    `examples/` and `tests/` sub-directories are never loaded with it.
    """
    return Path(__file__).resolve().parents[1] / "policies"


def find_policy_files(sources: Iterable[str | Path]) -> list[Path]:
    """Expand directories (their top-level `*.yaml`/`*.yml`, sorted) and check files exist.

    Sub-directories are not searched, so `runtime/policies/examples/` and
    `runtime/policies/tests/` are never loaded with `runtime/policies/`.

    Raises:
        PolicyLoadError: A source does not exist, or no file was found.
    """
    files: list[Path] = []
    problems: list[PolicyProblem] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(PolicyProblem(str(path), None, "", "no such file or directory"))
    if not files and not problems:
        names = ", ".join(str(s) for s in sources) or "(none given)"
        problems.append(PolicyProblem(names, None, "", "no policy files (*.yaml) found"))
    if problems:
        raise PolicyLoadError(problems)
    return list(dict.fromkeys(files))


def load_policies(
    *sources: str | Path,
    rate_limits: RateLimitStore | None = None,
    clock: Callable[[], float] = time.time,
) -> PolicySet:
    """Load a policy set from directories and/or files, all or nothing.

    Args:
        sources: Policy directories (top-level `*.yaml`) or files.
        rate_limits: Window store; None uses SQLite at `.agentrt/ratelimits.db`,
            opened when a limit is first consulted.
        clock: Wall-clock seconds, injectable for tests.

    Raises:
        PolicyLoadError: Any file is broken, or ids collide across files.
    """
    files = find_policy_files(sources)
    problems: list[PolicyProblem] = []
    loaded: list[tuple[Path, PolicyFile, dict[Any, int]]] = []
    for path in files:
        try:
            policy, lines = load_policy_file(path)
        except PolicyLoadError as exc:
            problems.extend(exc.problems)
            continue
        loaded.append((path, policy, lines))
    problems.extend(_cross_file_problems(loaded))
    if problems:
        raise PolicyLoadError(problems)
    try:
        return PolicySet(
            [policy for _, policy, _ in loaded],
            rate_limits=rate_limits,
            clock=clock,
            sources=[path for path, _, _ in loaded],
        )
    except ValueError as exc:  # compile step; validation should have caught it
        raise PolicyLoadError([PolicyProblem(str(files[0]), None, "", str(exc))]) from None


def _cross_file_problems(
    loaded: Sequence[tuple[Path, PolicyFile, dict[Any, int]]],
) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    policy_ids: dict[str, str] = {}
    item_ids: dict[str, str] = {}
    for path, policy, lines in loaded:
        pid = policy.metadata.id
        if pid in policy_ids:
            problems.append(
                PolicyProblem(
                    str(path),
                    lines.get(("metadata", "id")),
                    "metadata.id",
                    f"policy id {pid!r} is also used by {policy_ids[pid]}",
                )
            )
        policy_ids.setdefault(pid, str(path))
        sections: list[tuple[str, Sequence[Rule | Limit]]] = [
            ("rules", policy.rules),
            ("limits", policy.limits),
        ]
        for section, items in sections:
            for index, item in enumerate(items):
                where = f"{path}:{lines.get((section, index, 'id'))}"
                if item.id in item_ids:
                    problems.append(
                        PolicyProblem(
                            str(path),
                            lines.get((section, index, "id")),
                            format_key((section, index, "id")),
                            f"id {item.id!r} is also used at {item_ids[item.id]}",
                        )
                    )
                item_ids.setdefault(item.id, where)
    return problems
