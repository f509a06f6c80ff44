"""Build the held-out evaluation set for the built-in tools.

The arguments are drawn by the same samplers as training (units, expressions,
paths, programs), but every request template, every joiner and every no-tool
request here is written apart from `runtime.finetune.builtin_phrasings` and
checked not to occur there, and a different seed draws the values. Run:

    python bench/finetune/make_heldout.py --out bench/finetune/heldout_builtin.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import tools
from runtime.finetune import builtin_phrasings as train
from runtime.finetune.dataset_format import write_jsonl
from runtime.finetune.phrasebook import Case, Phrasebook, ToolPhrases
from runtime.finetune.synth import SynthConfig, Synthesizer
from runtime.tools import ToolRegistry

CONVERT = [
    "My recipe says {value} {from_unit}; what's that in {to_unit}?",
    "Quick question: {value} {from_unit} equals how many {to_unit}?",
    "Could you tell me how much {value} {from_unit} would be in {to_unit}?",
    "Express {value} {from_unit} as {to_unit}.",
    "The sign says {value} {from_unit}. Give me that in {to_unit}.",
    "Translate {value} {from_unit} into {to_unit}, thanks.",
    "I'm curious how {value} {from_unit} looks in {to_unit}.",
]
CALC = [
    "Help me figure out {expression}.",
    "Quick math: {expression}",
    "I'd like to know the result of {expression}.",
    "Tell me what {expression} equals.",
    "Crunch this number for me: {expression}",
    "Give me the exact value of {expression}, please.",
]
READ = [
    "Let me see the file {path}.",
    "Pull up {path} for me.",
    "I want to read the contents of {path}.",
    "Could you open the file at {path}?",
    "Fetch the text of {path}.",
]
LIST = [
    "Browse the {path} folder and tell me what's there.",
    "Enumerate the entries under {path}.",
    "Could you show me everything inside {path}?",
    "What does the {path} directory hold?",
]
ROOT = [
    "Give me an overview of the files at the top of the workspace.",
    "Which files sit in the workspace's root folder?",
]
PYTHON = [
    "Try running this snippet: {code}",
    "Go ahead and execute {code} in Python.",
    "Please run the following and report back: {code}",
    "Execute the Python statement {code}",
]
JOINERS = [
    "I have two requests. {a}. And {b}.",
    "{a}; after that, {b}.",
    "Could you handle both: {a}, plus {b}?",
]
NO_TOOL = [
    ("Write a limerick about a forgetful robot.", ""),
    ("What's a good name for a coffee shop?", ""),
    ("Who discovered penicillin?", ""),
    ("Explain gravity to a five-year-old.", ""),
    ("What year did World War II end?", ""),
    ("Give me a recipe idea for dinner tonight.", ""),
    ("How are you feeling today?", ""),
    ("What is the tallest mountain in the world?", ""),
    ("Translate 'see you tomorrow' into Italian.", ""),
    ("Summarize the story of Little Red Riding Hood.", ""),
    ("What does DNA stand for?", ""),
    ("Tell me something interesting about penguins.", ""),
    ("Can you recommend a podcast about history?", ""),
    ("What is the opposite of 'generous'?", ""),
    ("Who is the author of Pride and Prejudice?", ""),
    ("Please send a Slack message to the ops channel.", ""),
    ("Schedule a meeting with Dana for Monday.", ""),
    ("What's the current exchange rate of euros to dollars?", ""),
    ("Make a reservation at an Italian restaurant.", ""),
    ("Describe the color blue without using the word blue.", ""),
    ("Why do cats purr?", ""),
    ("Write a two-sentence horror story.", ""),
    ("What are the primary colors?", ""),
    ("Is Pluto a planet?", ""),
    ("Good evening, assistant!", ""),
    ("What's the plural of 'cactus'?", ""),
    ("Give me a tip for learning a new language.", ""),
    ("Who composed the Four Seasons?", ""),
    ("What is an inch, exactly?", ""),
    ("Why do we measure temperature in different scales?", ""),
    ("Upload my report to Google Drive.", ""),
    ("What is the speed of light?", ""),
    ("Write a thank-you note to a colleague.", ""),
    ("Name three famous painters.", ""),
]


def _root(rng: random.Random) -> Case:
    case = train.sample_directory(rng)
    if case.arguments["path"] == ".":
        return Case({"path": "."}, {}, requests=tuple(ROOT))
    return case


def heldout_phrasebook() -> Phrasebook:
    """Held-out wording for the built-in tools."""
    return Phrasebook(
        tools={
            "convert_units": ToolPhrases(CONVERT, train.sample_conversion, ["{result[value]} {to_unit}."], train.convert_result),
            "calculate": ToolPhrases(CALC, train.sample_expression, ["It equals {result}."], train.calculate_result),
            "read_file": ToolPhrases(READ, train.sample_file, ["The file reads: {result[content]}"], train.file_result),
            "list_dir": ToolPhrases(LIST, _root, ["Done."], train.directory_result),
            "run_python": ToolPhrases(PYTHON, train.sample_program, ["Output: {result[stdout]}"], train.program_result),
        },
        no_tool=[(request, "(any answer without a call)") for request, _ in NO_TOOL],
        joiners=JOINERS,
    )  # fmt: skip


def check_disjoint() -> None:
    """Fail when a held-out template or request also appears in the training phrasings."""
    seen = {
        *train.CONVERT_REQUESTS, *train.CALC_REQUESTS, *train.READ_REQUESTS,
        *train.LIST_REQUESTS, *train.PYTHON_REQUESTS, *train.JOINERS,
        *(request for request, _ in train.builtin_phrasebook().no_tool),
    }  # fmt: skip
    ours = {*CONVERT, *CALC, *READ, *LIST, *ROOT, *PYTHON, *JOINERS, *(r for r, _ in NO_TOOL)}
    overlap = seen & ours
    if overlap:
        raise SystemExit(f"held-out phrasings also used in training: {sorted(overlap)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/finetune/heldout_builtin.jsonl"))
    parser.add_argument("--per-tool", type=int, default=16)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    check_disjoint()
    config = SynthConfig(per_tool=args.per_tool, seed=args.seed, no_tool_share=0.2)
    examples = Synthesizer(ToolRegistry.from_module(tools), heldout_phrasebook(), config).generate()
    for index, example in enumerate(examples):
        example["metadata"]["id"] = f"heldout-{index:03d}"
        example["metadata"]["source"] = "heldout"
    count = write_jsonl(args.out, examples)
    kinds: dict[str, int] = {}
    for example in examples:
        kinds[example["metadata"]["kind"]] = kinds.get(example["metadata"]["kind"], 0) + 1
    print(json.dumps({"written": count, "out": str(args.out), "kinds": kinds}), file=sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
