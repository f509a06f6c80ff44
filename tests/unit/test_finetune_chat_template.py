"""The Jinja chat template and the Python renderer produce the same text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import runtime
import tools
from runtime.finetune.chat_template import (
    CHAT_TEMPLATE,
    render_prompt,
    render_segments,
    render_text,
)
from runtime.model.compat import extract_text_tool_calls
from runtime.model.tool_format import TOOLS_FOOTER, TOOLS_HEADER
from runtime.prompting import render_tools_block
from runtime.tools import ToolRegistry

jinja2 = pytest.importorskip("jinja2")

SCHEMAS = ToolRegistry.from_module(tools).openai_schemas()
CALL = {
    "id": "call_0",
    "type": "function",
    "function": {
        "name": "convert_units",
        "arguments": '{"value": 5, "from_unit": "km", "to_unit": "mi"}',
    },
}
CONVERSATIONS: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = [
    ([{"role": "user", "content": "Convert 5 km to miles"}], SCHEMAS),
    (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": 'Two things: 5 km in mi, and "2+2"'},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    CALL,
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "calculate", "arguments": {"expression": "2+2"}},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": '{"value": 3.1, "unit": "mi"}'},
            {"role": "tool", "tool_call_id": "call_1", "content": "4"},
            {"role": "assistant", "content": "3.1 mi, and 4.\nDone — ünïcode ok"},
        ],
        SCHEMAS,
    ),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], []),
    ([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}], []),
]


def _hf_env_render(messages: Any, tools_: Any, generation: bool) -> str:
    """Render the way transformers and llama-cpp-python 0.3.x do (tojson = json.dumps)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value, **_: json.dumps(value, ensure_ascii=False)
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, tools=tools_ or None, add_generation_prompt=generation
    )


@pytest.mark.parametrize(("messages", "tools_"), CONVERSATIONS)
@pytest.mark.parametrize("generation", [False, True])
def test_jinja_template_equals_python_renderer(
    messages: Any, tools_: Any, generation: bool
) -> None:
    expected = render_text(messages, tools_, add_generation_prompt=generation)
    assert _hf_env_render(messages, tools_, generation) == expected


def test_llama_cpp_formatter_renders_the_same_prompt() -> None:
    llama_chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
    formatter = llama_chat_format.Jinja2ChatFormatter(
        template=CHAT_TEMPLATE, eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    messages, tools_ = CONVERSATIONS[1]
    prompt = formatter(messages=messages, tools=tools_).prompt
    assert prompt == render_prompt(messages, tools_)


def test_the_runtime_server_registers_the_same_template() -> None:
    server_main = pytest.importorskip("runtime.model.llama_server_main")
    assert server_main.tool_chat_template() == CHAT_TEMPLATE


def test_transformers_apply_chat_template_matches() -> None:
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    messages, tools_ = CONVERSATIONS[1]
    text = tokenizer.apply_chat_template(messages, tools=tools_, tokenize=False)
    assert text == render_text(messages, tools_)


def test_layout_tools_system_and_trainable_segments() -> None:
    messages, tools_ = CONVERSATIONS[1]
    segments = render_segments(messages, tools_)
    text = "".join(s.text for s in segments)
    assert text.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert (
        text.count('{"type": "function", "function": {"name": "convert_units", "description": ')
        == 1
    )
    trained = [s.text for s in segments if s.trainable]
    assert trained == [
        '<tool_call>\n{"name": "convert_units", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+2"}}\n</tool_call><|im_end|>',
        "3.1 mi, and 4.\nDone — ünïcode ok<|im_end|>",
    ]
    assert "<|im_start|>user\n<tool_response>\n" in text and text.count("<tool_response>") == 2
    default = render_text(*CONVERSATIONS[0])
    assert default.startswith("<|im_start|>system\n# Tools")


def test_runtime_client_parses_what_the_template_teaches() -> None:
    messages, tools_ = CONVERSATIONS[1]
    body = next(s.text for s in render_segments(messages, tools_) if s.trainable).removesuffix(
        "<|im_end|>"
    )
    text, calls = extract_text_tool_calls(body)
    assert text == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"}),
        ("calculate", {"expression": "2+2"}),
    ]


def test_tools_in_the_prompt_say_what_the_template_says() -> None:
    messages, tools_ = CONVERSATIONS[0]
    block = render_tools_block(tools_)
    assert f"<|im_start|>system\n{block}<|im_end|>\n" in render_text(messages, tools_)


def test_the_tool_call_instructions_are_written_once() -> None:
    # The template defines them; tool_format reads them; every renderer uses those.
    assert TOOLS_HEADER.endswith("<tools>") and "For each function call" in TOOLS_FOOTER
    root = Path(runtime.__file__).parent
    homes = [
        path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*"))
        if path.suffix in (".py", ".jinja") and "For each function call" in path.read_text()
    ]
    assert homes == ["model/templates/tool_chat_template.jinja"]
