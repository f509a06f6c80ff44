"""Tools by decorator: `@tool` turns a typed, documented function into a `Tool`.

The JSON Schema of a tool's arguments comes from its type hints (through
pydantic) and the parameter descriptions from its Google-style docstring. A
signature that cannot be described in JSON, or a schema the gate cannot read
(a `pattern` that is not ECMA-262), fails when the module is imported, naming
the parameter, rather than when a model first calls it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from runtime.binding import Converter, bind_plain, plain_binder

if TYPE_CHECKING:  # pydantic and jsonschema load on first need: sandbox workers skip them
    import pydantic
    from jsonschema.protocols import Validator

__all__ = [
    "Mount",
    "SandboxSpec",
    "Tool",
    "ToolDefinitionError",
    "ToolExample",
    "ToolRegistry",
    "to_jsonable",
    "tool",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_schemas_deferred = False


def defer_schemas() -> None:
    """Build tools from here on without their JSON Schema (for sandbox workers only).

    The host that sends calls to a sandbox worker imported the same module and
    built and checked every tool's schema; the worker only binds arguments that
    already passed the gate. Skipping the schema, the definition checks and the
    argument model (built on first need instead, and never for tools whose
    parameters are plain JSON) saves most of a worker's start-up: a tool built
    this way has `parameters == {}` and no examples.
    """
    global _schemas_deferred
    _schemas_deferred = True


class ToolDefinitionError(TypeError):
    """A function cannot become a tool: raised at decoration or registration time."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Docstring:
    summary: str
    params: dict[str, str]
    examples: tuple[str, ...] = ()


# What a tool asks of its sandbox (`@tool(sandbox=...)`). It lives here, with the
# tool, not in runtime.sandbox: the sandbox package runs tools and so depends on
# this module, never the reverse.


@dataclasses.dataclass(frozen=True)
class Mount:
    """A host directory made visible to the tool, read-only unless stated."""

    source: str
    target: str
    read_only: bool = True

    def __post_init__(self) -> None:
        for name in ("source", "target"):
            if not isinstance(getattr(self, name), str):
                raise ToolDefinitionError(f"a mount's {name} must be a string path")
        if not isinstance(self.read_only, bool):
            raise ToolDefinitionError("a mount's read_only must be true or false")

    @classmethod
    def of(cls, value: Mount | Mapping[str, Any]) -> Mount:
        """A `Mount` from itself or a mapping with source, target and read_only."""
        if isinstance(value, Mount):
            return value
        if not isinstance(value, Mapping):
            raise ToolDefinitionError(f"a mount must be a mapping, not {value!r}")
        _no_unknown_keys("mount", value, {"source", "target", "read_only"})
        return cls(**dict(value))


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    """Overrides of the sandbox defaults for one tool.

    Every field is optional: `None` means "the executor's hardened default".

    Attributes:
        memory: Memory limit (and memory+swap), e.g. "256m".
        cpus: CPU quota in cores, e.g. 0.5.
        network: Ask for network access. Granted only when policy allows it too.
        image: Sandbox image to use instead of the default one.
        mounts: Host directories to mount (read-only by default).
        pids_limit: Maximum processes/threads inside the container.
        tmpfs_size: Size of the writable /tmp, e.g. "64m".
    """

    memory: str | None = None
    cpus: float | None = None
    network: bool = False
    image: str | None = None
    mounts: tuple[Mount, ...] = ()
    pids_limit: int | None = None
    tmpfs_size: str | None = None

    def __post_init__(self) -> None:
        for name in ("memory", "image", "tmpfs_size"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ToolDefinitionError(f"sandbox {name} must be a string")
        if not isinstance(self.network, bool):
            raise ToolDefinitionError("sandbox network must be true or false")
        if self.cpus is not None:
            if isinstance(self.cpus, bool) or not isinstance(self.cpus, int | float):
                raise ToolDefinitionError("sandbox cpus must be a number of cores")
            if not self.cpus > 0:
                raise ToolDefinitionError("sandbox cpus must be greater than 0")
            object.__setattr__(self, "cpus", float(self.cpus))
        if self.pids_limit is not None and (
            isinstance(self.pids_limit, bool)
            or not isinstance(self.pids_limit, int)
            or self.pids_limit <= 0
        ):
            raise ToolDefinitionError("sandbox pids_limit must be a positive integer")
        if isinstance(self.mounts, str) or not isinstance(self.mounts, Iterable):
            raise ToolDefinitionError("sandbox mounts must be a list of mounts")
        object.__setattr__(self, "mounts", tuple(Mount.of(m) for m in self.mounts))

    @classmethod
    def of(cls, value: SandboxSpec | Mapping[str, Any] | None) -> SandboxSpec:
        """A `SandboxSpec` from itself, a mapping of its fields, or None (all defaults)."""
        if value is None:
            return cls()
        if isinstance(value, SandboxSpec):
            return value
        if not isinstance(value, Mapping):
            raise ToolDefinitionError(f"sandbox= must be a mapping or a SandboxSpec, not {value!r}")
        _no_unknown_keys("sandbox", value, {f.name for f in dataclasses.fields(cls)})
        return cls(**dict(value))


def _no_unknown_keys(what: str, value: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise ToolDefinitionError(
            f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ToolExample:
    """A natural request and the call it should produce (a seed for `dataset synth`).

    Attributes:
        request: What a person would write ("convert 12 miles to km").
        arguments: The call's arguments (validated against the tool's schema).
    """

    request: str
    arguments: dict[str, Any]


_SECTION_RE = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$"
)
_PARAM_RE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> _Docstring:
    """Read the summary and the `Args:` section of a Google-style docstring."""
    if not doc:
        return _Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines: list[str] = []
    params: dict[str, str] = {}
    examples: list[str] = []
    section: str | None = None
    current: str | None = None
    param_indent: int | None = None
    for line in lines:
        stripped = line.strip()
        header = _SECTION_RE.match(stripped)
        if header and not line.startswith(" "):
            section, current, param_indent = header.group(1), None, None
            continue
        if section is None:
            if not stripped and summary_lines:
                section = "body"
            elif stripped:
                summary_lines.append(stripped)
            continue
        if section in ("Example", "Examples") and stripped:
            examples.append(stripped)
            continue
        if section not in ("Args", "Arguments", "Parameters") or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        match = _PARAM_RE.match(stripped)
        if match and (param_indent is None or indent <= param_indent):
            param_indent = indent
            current = match.group(1).lstrip("*")
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {stripped}".strip()
    return _Docstring(" ".join(summary_lines), params, tuple(examples))


def _parse_examples(
    tool_name: str,
    given: Iterable[ToolExample | Mapping[str, Any] | tuple[str, Mapping[str, Any]]],
    doc_lines: Iterable[str],
    validator: Validator,
) -> tuple[ToolExample, ...]:
    """Seed examples from `@tool(examples=...)` and the docstring's `Examples:` lines.

    A docstring line reads `request -> {"arg": value}`; lines without `->` are
    ignored (prose). Every example's arguments must pass `validator`, the
    check the gate makes.
    """
    found: list[ToolExample] = []
    for item in given:
        if isinstance(item, ToolExample):
            found.append(item)
        elif isinstance(item, Mapping):
            found.append(ToolExample(str(item["request"]), dict(item.get("arguments", {}))))
        else:
            request, arguments = item
            found.append(ToolExample(str(request), dict(arguments)))
    for line in doc_lines:
        if "->" not in line:
            continue
        request, _, call = line.rpartition("->")
        try:
            arguments = json.loads(call.strip())
        except ValueError as exc:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: docstring example {line!r}: the part after '->' "
                f"must be a JSON object of arguments ({exc})"
            ) from None
        if not isinstance(arguments, dict):
            raise ToolDefinitionError(
                f"tool {tool_name!r}: docstring example {line!r}: arguments must be a JSON object"
            )
        found.append(ToolExample(request.strip().strip("`\"'"), arguments))
    for example in found:
        if not example.request.strip():
            raise ToolDefinitionError(f"tool {tool_name!r}: an example has an empty request")
        errors = sorted(
            validator.iter_errors(example.arguments), key=lambda e: [str(p) for p in e.path]
        )
        if errors:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: example {example.request!r} has arguments that do not "
                f"match the schema: {errors[0].message}"
            )
    return tuple(found)


def _validator(tool_name: str, parameters: dict[str, Any]) -> Validator:
    """The gate's validator for `parameters`; a schema it cannot read fails the definition."""
    import jsonschema

    from runtime.schema import schema_validator

    try:
        return schema_validator(parameters)
    except jsonschema.SchemaError as exc:
        reason = exc.message if exc.cause is None else str(exc.cause)  # the cause says more
        raise ToolDefinitionError(
            f"tool {tool_name!r}: its JSON Schema is invalid at {exc.json_path}: {reason}"
        ) from None


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's generated `title` keys: they cost prompt tokens and say nothing."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "title" and isinstance(value, str):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
            else:
                out[key] = _strip_titles(value)
        return out
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    return schema


def _close_objects(schema: Any) -> None:
    """Give every object schema with properties `additionalProperties: false`."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close_objects(value)
    elif isinstance(schema, list):
        for item in schema:
            _close_objects(item)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local `$ref`s with their definitions when none is recursive.

    Small local models fill flat schemas far better than `$ref` chains; a
    recursive model (or a `$ref` to a definition that is not there) keeps its
    `$defs`.
    """
    defs = schema.get("$defs")
    if not defs:
        return schema

    def resolve(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                key = ref.removeprefix("#/$defs/")
                if key in stack:
                    raise RecursionError(key)
                merged = {
                    **resolve(defs[key], (*stack, key)),
                    **{k: resolve(v, stack) for k, v in node.items() if k != "$ref"},
                }
                return merged
            return {k: resolve(v, stack) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item, stack) for item in node]
        return node

    try:
        return resolve(schema, ())  # type: ignore[no-any-return]
    except (RecursionError, KeyError):
        return schema


def _check_json_type(func_name: str, param: str, annotation: Any) -> None:
    import pydantic
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        pydantic.TypeAdapter(annotation).json_schema()
    except (
        PydanticSchemaGenerationError,
        PydanticUserError,
        TypeError,
        ValueError,
    ) as exc:
        raise ToolDefinitionError(
            f"tool {func_name!r}: parameter {param!r} has type {annotation!r}, which has no "
            f"JSON Schema form; use str, int, float, bool, list, dict, Literal, Enum or a "
            f"pydantic model ({type(exc).__name__})"
        ) from None


def _module_location(fn: Callable[..., Any]) -> tuple[str, str | None]:
    module_name = getattr(fn, "__module__", None) or "__main__"
    module = sys.modules.get(module_name)
    return module_name, getattr(module, "__file__", None)


@dataclasses.dataclass(eq=False)
class Tool:
    """A function the model may call, with the schema its arguments must satisfy.

    Calling a `Tool` object calls the wrapped function directly, so decorated
    functions stay usable as plain Python.

    Attributes:
        name: The name the model uses.
        description: What the tool does, shown to the model.
        fn: The wrapped function (sync or async).
        parameters: JSON Schema (draft 2020-12) of the arguments object.
        timeout_s: Wall-clock limit for one call.
        retries: How many rejected or failed calls of this tool a run tolerates
            before it stops (the model's chance to correct itself).
        requires_sandbox: Refuse to run in-process unless explicitly allowed.
        sandbox: Per-tool sandbox overrides (memory, cpus, network, mounts...).
        module_name: The module that defines the tool, for re-import in a sandbox.
        module_file: That module's source file, when it has one.
        runs_on_host: A runtime built-in that reads host-side data (such as
            `search_docs` over a retrieval index) and runs in this process under
            every executor. Set it only on code you trust with the host: such a
            tool gets no sandbox. The audit records its sandbox mode as `host`.
        examples: Natural requests with their calls, seeds for `dataset synth`
            (from `@tool(examples=...)` and the docstring's `Examples:` section).
    """

    name: str
    description: str
    fn: Callable[..., Any]
    parameters: dict[str, Any]
    args_model: type[pydantic.BaseModel] | None
    timeout_s: float = 30.0
    retries: int = 2
    requires_sandbox: bool = False
    sandbox: SandboxSpec = dataclasses.field(default_factory=SandboxSpec)
    module_name: str = "__main__"
    module_file: str | None = None
    runs_on_host: bool = False
    examples: tuple[ToolExample, ...] = ()
    plain_arguments: dict[str, Converter] | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.fn)

    @property
    def model(self) -> type[pydantic.BaseModel]:
        """The pydantic model of the arguments, built on first use when it was deferred."""
        if self.args_model is None:
            self.args_model = _arguments_model(self.name, self.fn)
        return self.args_model

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def audit_fields(self) -> dict[str, Any]:
        """Extra identity fields every audit record of a call to this tool carries."""
        return {}

    def openai_schema(self) -> dict[str, Any]:
        """The entry for this tool in an OpenAI `tools` array."""
        return function_entry(self.name, self.description, self.parameters)

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Turn validated JSON arguments into the Python values the function takes.

        Pydantic-model and Enum parameters become instances; everything else is
        passed through. Call only with arguments that passed validation.
        """
        if self.plain_arguments is not None:
            return bind_plain(self.plain_arguments, arguments)
        model = self.model.model_validate(dict(arguments))
        return {name: getattr(model, name) for name in arguments}

    def invoke_sync(self, arguments: Mapping[str, Any]) -> Any:
        """Run a sync tool with validated arguments and return a JSON-ready result."""
        return to_jsonable(self.fn(**self.bind(arguments)))

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Run the tool (awaiting it if async) and return a JSON-ready result."""
        result = self.fn(**self.bind(arguments))
        if inspect.isawaitable(result):
            result = await result
        return to_jsonable(result)


def function_entry(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """One entry of an OpenAI `tools` array (for `Tool`s and schema-only tools alike)."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def to_jsonable(value: Any) -> Any:
    """Serialise a tool result: pydantic models are dumped; the rest must be JSON already.

    Raises:
        TypeError: The value has no JSON form (the caller reports `tool_error`).
    """
    models = sys.modules.get("pydantic.main")  # not loaded: no value can be a model
    if models is not None and isinstance(value, models.BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value, allow_nan=False)
        return value
    except ValueError as exc:  # NaN or infinity: JSON has no such number
        raise TypeError(f"tool result is not JSON-serialisable: {exc}") from None
    except TypeError as exc:
        problem = exc
    try:
        # Dataclasses, datetimes, sets and models nested in containers have a JSON form.
        import pydantic

        converted = pydantic.TypeAdapter(Any).dump_python(value, mode="json")
        json.dumps(converted, allow_nan=False)
    except Exception:
        raise TypeError(f"tool result is not JSON-serialisable: {problem}") from None
    return converted


def _build_tool(
    fn: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout_s: float,
    retries: int,
    requires_sandbox: bool,
    sandbox: SandboxSpec | Mapping[str, Any] | None,
    examples: Iterable[Any] = (),
) -> Tool:
    if not callable(fn) or isinstance(fn, Tool):
        raise ToolDefinitionError(f"@tool needs a function, got {fn!r}")
    func_name = getattr(fn, "__name__", repr(fn))
    tool_name = name or func_name
    if not _NAME_RE.match(tool_name):
        raise ToolDefinitionError(
            f"tool name {tool_name!r} must match {_NAME_RE.pattern} (OpenAI function-name rules)"
        )
    if timeout_s <= 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: timeout_s must be > 0")
    if retries < 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: retries must be >= 0")

    doc = _parse_docstring(fn.__doc__)
    fields, hints = _argument_fields(
        tool_name, fn, doc, check=not _schemas_deferred, with_fields=not _schemas_deferred
    )
    module_name, module_file = _module_location(fn)
    tool_description = (description or doc.summary or tool_name).strip()
    plain = plain_binder(hints)
    if _schemas_deferred:
        return Tool(
            name=tool_name,
            description=tool_description,
            fn=fn,
            parameters={},
            args_model=None,
            timeout_s=timeout_s,
            retries=retries,
            requires_sandbox=requires_sandbox,
            sandbox=SandboxSpec.of(sandbox),
            module_name=module_name,
            module_file=module_file,
            plain_arguments=plain,
        )
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    args_model = _model_from_fields(tool_name, fields)
    try:
        schema = args_model.model_json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: cannot build a JSON Schema: {exc}"
        ) from None

    parameters = inline_refs(_strip_titles(schema))
    _close_objects(parameters)
    parameters.setdefault("properties", {})
    parameters["additionalProperties"] = False
    seeds = _parse_examples(tool_name, examples, doc.examples, _validator(tool_name, parameters))
    spec = SandboxSpec.of(sandbox)
    return Tool(
        name=tool_name,
        description=tool_description,
        fn=fn,
        parameters=parameters,
        args_model=args_model,
        timeout_s=timeout_s,
        retries=retries,
        requires_sandbox=requires_sandbox,
        sandbox=spec,
        module_name=module_name,
        module_file=module_file,
        examples=seeds,
        plain_arguments=plain,
    )


def _argument_fields(
    tool_name: str,
    fn: Callable[..., Any],
    doc: _Docstring,
    *,
    check: bool = True,
    with_fields: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each parameter's (annotation, pydantic Field) and its type hint.

    With `check`, every annotation must have a JSON Schema form (costly: it
    builds one per parameter); signature rules are always enforced. Without
    `with_fields` only the hints are collected (pydantic is not needed).
    """
    signature = inspect.signature(fn)
    try:
        all_hints = inspect.get_annotations(fn, eval_str=True)
    except NameError as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: cannot resolve a type hint: {exc}"
        ) from None

    fields: dict[str, Any] = {}
    hints: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {param.name!r} is *args/**kwargs; a tool's "
                f"arguments must be named and typed"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {param.name!r} is positional-only; "
                f"arguments arrive by name"
            )
        if param.name not in all_hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {param.name!r} has no type hint; every "
                f"parameter needs one so its JSON Schema can be generated"
            )
        annotation = hints[param.name] = all_hints[param.name]
        if check:
            _check_json_type(tool_name, param.name, annotation)
        default = ... if param.default is param.empty else param.default
        # A description only in `Annotated[..., Field(description=...)]` must survive:
        # an explicit `description=None` here would overwrite it.
        if not with_fields:
            continue
        import pydantic

        described = doc.params.get(param.name)
        field_info = (
            pydantic.Field(default, description=described) if described else pydantic.Field(default)
        )
        fields[param.name] = (annotation, field_info)
    return fields, hints


def _model_from_fields(tool_name: str, fields: dict[str, Any]) -> type[pydantic.BaseModel]:
    import pydantic
    from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

    try:
        return pydantic.create_model(
            f"{tool_name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, ValueError) as exc:
        raise ToolDefinitionError(
            f"tool {tool_name!r}: cannot build a JSON Schema: {exc}"
        ) from None


def _arguments_model(tool_name: str, fn: Callable[..., Any]) -> type[pydantic.BaseModel]:
    """The arguments model of a tool built with deferred schemas, built now."""
    fields, _ = _argument_fields(tool_name, fn, _parse_docstring(fn.__doc__), check=False)
    return _model_from_fields(tool_name, fields)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = 30.0,
    retries: int = 2,
    requires_sandbox: bool = False,
    sandbox: SandboxSpec | Mapping[str, Any] | None = None,
    examples: Iterable[ToolExample | Mapping[str, Any] | tuple[str, Mapping[str, Any]]] = (),
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = 30.0,
    retries: int = 2,
    requires_sandbox: bool = False,
    sandbox: SandboxSpec | Mapping[str, Any] | None = None,
    examples: Iterable[ToolExample | Mapping[str, Any] | tuple[str, Mapping[str, Any]]] = (),
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Register a function as a tool, as `@tool` or `@tool(name=..., ...)`.

    Args:
        fn: The function, when used without parentheses.
        name: Name the model sees; defaults to the function's name.
        description: Defaults to the docstring's summary line.
        timeout_s: Wall-clock limit per call.
        retries: Rejected or failed calls of this tool a run tolerates.
        requires_sandbox: Never run in-process unless the executor is told to.
        sandbox: Sandbox overrides (see `SandboxSpec`).
        examples: Seed requests for `dataset synth`: `ToolExample`s,
            `{"request": ..., "arguments": {...}}` dicts or (request, arguments)
            pairs; each is validated against the schema. A docstring
            `Examples:` section with `request -> {"arg": value}` lines adds more.
    """
    options = dict(
        name=name,
        description=description,
        timeout_s=timeout_s,
        retries=retries,
        requires_sandbox=requires_sandbox,
        sandbox=sandbox,
        examples=tuple(examples),
    )
    if fn is not None:
        return _build_tool(fn, **options)  # type: ignore[arg-type]

    def decorate(func: Callable[..., Any]) -> Tool:
        return _build_tool(func, **options)  # type: ignore[arg-type]

    return decorate


class ToolRegistry:
    """The set of tools an agent may call, by unique name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._refused: dict[str, str] = {}
        for item in tools:
            self.add(item)

    def refuse(self, name: str, reason: str) -> None:
        """Record that a tool `name` exists elsewhere but is not offered, and why.

        A call to it ends `unknown_tool` with `reason` (e.g. an MCP tool whose
        definition changed since it was pinned).
        """
        self._tools.pop(name, None)
        self._refused[name] = reason

    def refusal(self, name: str) -> str | None:
        """Why a tool that is not offered was refused, if it was."""
        return self._refused.get(name)

    @property
    def refused(self) -> dict[str, str]:
        """Every refused tool name with its reason."""
        return dict(self._refused)

    def add(self, item: Tool) -> None:
        if not isinstance(item, Tool):
            raise ToolDefinitionError(f"{item!r} is not a Tool; decorate it with @tool")
        existing = self._tools.get(item.name)
        if existing is not None and existing is not item:
            raise ToolDefinitionError(
                f"two tools are named {item.name!r} ({existing.module_name}.{existing.fn.__name__} "
                f"and {item.module_name}.{item.fn.__name__}); rename one with @tool(name=...)"
            )
        self._tools[item.name] = item
        self._refused.pop(item.name, None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def openai_schemas(self) -> list[dict[str, Any]]:
        """The `tools` array for a chat-completions request."""
        return [item.openai_schema() for item in self._tools.values()]

    @classmethod
    def from_module(cls, module: Any) -> ToolRegistry:
        """Collect every `Tool` defined at the top level of a module, in definition order."""
        registry = cls()
        seen: set[int] = set()
        for value in vars(module).values():
            if isinstance(value, Tool) and id(value) not in seen:
                seen.add(id(value))
                registry.add(value)
        return registry
