"""@tool: schema generation from hints and docstrings, and definition-time errors."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, Literal

import jsonschema
import pydantic
import pytest

from runtime import Tool, ToolDefinitionError, ToolRegistry, tool
from runtime.tools import Mount, SandboxSpec, to_jsonable


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(pydantic.BaseModel):
    street: str
    zip_code: Annotated[str, pydantic.Field(pattern=r"^\d{5}$")]


def test_schema_from_hints_defaults_and_docstring() -> None:
    @tool
    def book(
        city: str,
        nights: Annotated[int, pydantic.Field(ge=1, le=30)],
        price: float = 10.5,
        pets: bool = False,
        tags: list[str] | None = None,
        meta: dict[str, int] | None = None,
        room: Literal["single", "double"] = "single",
        color: Color = Color.RED,
    ) -> str:
        """Book a hotel.

        Longer text that is not the summary.

        Args:
            city: Where to stay,
                continued on the next line.
            nights (int): How many nights.
        """
        return city

    schema = book.parameters
    assert book.description == "Book a hotel."
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "nights"]
    props = schema["properties"]
    assert props["city"] == {
        "type": "string",
        "description": "Where to stay, continued on the next line.",
    }
    assert props["nights"]["minimum"] == 1 and props["nights"]["maximum"] == 30
    assert props["price"] == {"type": "number", "default": 10.5}
    assert props["pets"]["type"] == "boolean"
    assert {"type": "null"} in props["tags"]["anyOf"]
    assert props["room"]["enum"] == ["single", "double"]
    assert props["color"]["enum"] == ["red", "blue"]
    jsonschema.Draft202012Validator.check_schema(schema)


def test_pydantic_model_parameter_is_inlined_closed_and_bound() -> None:
    @tool
    def ship(address: Address, color: Color = Color.BLUE) -> dict[str, Any]:
        """Ship a parcel."""
        return {"zip": address.zip_code, "color": color.value}

    address_schema = ship.parameters["properties"]["address"]
    assert "$ref" not in str(ship.parameters)
    assert address_schema["additionalProperties"] is False
    bound = ship.bind({"address": {"street": "Main", "zip_code": "12345"}, "color": "red"})
    assert isinstance(bound["address"], Address)
    assert bound["color"] is Color.RED


def test_options_and_async_tool() -> None:
    @tool(name="fetch-it", description="Fetch.", timeout_s=3, retries=0)
    async def fetch(url: str) -> str:
        return url

    assert isinstance(fetch, Tool)
    assert (fetch.name, fetch.description, fetch.timeout_s, fetch.retries) == (
        "fetch-it",
        "Fetch.",
        3,
        0,
    )
    assert fetch.is_async


def test_decorated_function_stays_callable() -> None:
    @tool
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    assert double.__name__ == "double"


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("def f(x): return x", "'x' has no type hint"),
        ("def f(*xs: int): return xs", "'xs' is *args/**kwargs"),
        ("def f(**kw: int): return kw", "'kw' is *args/**kwargs"),
        ("def f(x: int, /): return x", "'x' is positional-only"),
        ("def f(cb: Callable[[], int]): return cb", "'cb' has type"),
        ("def f(s: socket.socket): return s", "'s' has type"),
    ],
)
def test_unsupported_signatures_fail_at_decoration_naming_the_parameter(
    source: str, needle: str
) -> None:
    import socket
    from collections.abc import Callable

    namespace: dict[str, Any] = {"Callable": Callable, "socket": socket}
    exec(source, namespace)
    with pytest.raises(ToolDefinitionError, match=needle.replace("*", r"\*").replace("[", r"\[")):
        tool(namespace["f"])


def test_invalid_tool_name_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="must match"):

        @tool(name="bad name!")
        def f(x: int) -> int:
            return x


def test_registry_rejects_name_clash() -> None:
    @tool(name="same")
    def one(x: int) -> int:
        return x

    @tool(name="same")
    def two(x: int) -> int:
        return x

    with pytest.raises(ToolDefinitionError, match="two tools are named 'same'"):
        ToolRegistry([one, two])


def test_registry_from_module_collects_tools_and_schemas() -> None:
    import tools

    registry = ToolRegistry.from_module(tools)
    assert set(registry.names) >= {
        "calculate",
        "convert_units",
        "read_file",
        "list_dir",
        "run_python",
    }
    schemas = registry.openai_schemas()
    assert all(entry["type"] == "function" for entry in schemas)
    assert {entry["function"]["name"] for entry in schemas} == set(registry.names)


def test_results_are_serialised() -> None:
    assert to_jsonable(Address(street="a", zip_code="12345")) == {
        "street": "a",
        "zip_code": "12345",
    }
    assert to_jsonable({"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        to_jsonable(object())
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        to_jsonable(float("nan"))


def test_a_pattern_that_is_not_ecma_262_fails_at_decoration() -> None:
    with pytest.raises(ToolDefinitionError, match=r"\$\.properties\.code\.pattern: .*ECMA-262"):

        @tool
        def f(code: Annotated[str, pydantic.Field(pattern=r"^(?P<area>[0-9]{3})$")]) -> str:
            """F."""
            return code


def test_examples_are_checked_as_the_gate_checks_calls() -> None:
    with pytest.raises(ToolDefinitionError, match="does not match"):

        @tool(examples=[("ship to ١٢٣٤٥", {"address": {"street": "Main", "zip_code": "١٢٣٤٥"}})])
        def ship(address: Address) -> str:
            """Ship a parcel."""
            return address.zip_code


@pytest.mark.parametrize(
    ("sandbox", "message"),
    [
        ({"memroy": "256m"}, "unknown sandbox setting(s) 'memroy'"),
        ({"cpus": 0}, "cpus must be greater than 0"),
        ({"cpus": "half"}, "cpus must be a number"),
        ({"pids_limit": -1}, "pids_limit must be a positive integer"),
        ({"network": "yes"}, "network must be true or false"),
        ({"mounts": [{"source": "/data", "target": "/data", "rw": True}]}, "unknown mount"),
        ({"mounts": "/data"}, "mounts must be a list"),
    ],
)
def test_a_bad_sandbox_setting_fails_the_definition(sandbox: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=re.escape(message)):

        @tool(sandbox=sandbox)
        def boxed(value: int) -> int:
            """Boxed."""
            return value


def test_sandbox_settings_from_a_mapping() -> None:
    @tool(sandbox={"memory": "256m", "cpus": 1, "mounts": [{"source": "/data", "target": "/d"}]})
    def boxed(value: int) -> int:
        """Boxed."""
        return value

    assert boxed.sandbox == SandboxSpec(memory="256m", cpus=1.0, mounts=(Mount("/data", "/d"),))
    assert boxed.sandbox.mounts[0].read_only is True
