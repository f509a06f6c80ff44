"""Prompt composition: system prompt templates, few-shot examples, think-first, tools in prompt.

from runtime.prompting import Prompt, PromptTemplate

agent = Agent(client, tools, prompt=Prompt(
    system=PromptTemplate(role="You are the billing assistant.", rules=("Answer briefly.",)),
    examples="examples.jsonl",
    think_first=True,
))
"""

from runtime.prompting.compose import BoundPrompt, ContextProvider, Prompt, ReadTurn
from runtime.prompting.examples import FewShotExamples, load_examples
from runtime.prompting.request import ModelRequest, RequestBuilder
from runtime.prompting.similar_requests import SimilarRequests
from runtime.prompting.template import DEFAULT_ROLE, DEFAULT_TOOL_USE, PromptError, PromptTemplate
from runtime.prompting.text_tools import render_tools_block, to_text_protocol
from runtime.prompting.think import DEFAULT_THINK_INSTRUCTION, ThinkFirst, split_reasoning

__all__ = [
    "DEFAULT_ROLE",
    "DEFAULT_THINK_INSTRUCTION",
    "DEFAULT_TOOL_USE",
    "BoundPrompt",
    "ContextProvider",
    "FewShotExamples",
    "ModelRequest",
    "Prompt",
    "PromptError",
    "PromptTemplate",
    "ReadTurn",
    "RequestBuilder",
    "SimilarRequests",
    "ThinkFirst",
    "load_examples",
    "render_tools_block",
    "split_reasoning",
    "to_text_protocol",
]
