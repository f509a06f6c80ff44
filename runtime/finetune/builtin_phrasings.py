"""Phrasings for the built-in tools (`tools`: calculate, convert_units, files, run_python).

`builtin_phrasebook()` is what `agentrt dataset synth --module tools` uses.
The samplers are public (`UNIT_NAMES`, `sample_expression`, ...) so a held-out
set can draw the same kinds of arguments while using its own wording (see
`bench/finetune/make_heldout.py`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from runtime.finetune.phrasebook import Case, Phrasebook, ToolPhrases

__all__ = [
    "FILES",
    "PROGRAMS",
    "UNIT_GROUPS",
    "UNIT_NAMES",
    "builtin_phrasebook",
    "calculate_result",
    "convert_result",
    "directory_result",
    "file_result",
    "general_no_tool",
    "program_result",
    "sample_conversion",
    "sample_directory",
    "sample_expression",
    "sample_file",
    "sample_program",
]

UNIT_GROUPS: dict[str, list[str]] = {
    "length": ["m", "km", "cm", "mm", "mi", "yd", "ft", "in"],
    "mass": ["kg", "g", "mg", "lb", "oz"],
    "temperature": ["c", "f", "k"],
    "time": ["s", "min", "h", "day"],
    "volume": ["l", "ml", "gal"],
}
UNIT_NAMES: dict[str, list[str]] = {
    "m": ["meters", "metres", "m"],
    "km": ["kilometers", "km", "kilometres"],
    "cm": ["centimeters", "cm"],
    "mm": ["millimeters", "mm"],
    "mi": ["miles", "mi"],
    "yd": ["yards", "yd"],
    "ft": ["feet", "ft"],
    "in": ["inches", "in"],
    "kg": ["kilograms", "kg", "kilos"],
    "g": ["grams", "g"],
    "mg": ["milligrams", "mg"],
    "lb": ["pounds", "lb", "lbs"],
    "oz": ["ounces", "oz"],
    "c": ["degrees Celsius", "Celsius", "°C"],
    "f": ["degrees Fahrenheit", "Fahrenheit", "°F"],
    "k": ["kelvin", "K"],
    "s": ["seconds", "secs", "s"],
    "min": ["minutes", "mins", "min"],
    "h": ["hours", "hrs", "h"],
    "day": ["days"],
    "l": ["liters", "litres", "L"],
    "ml": ["milliliters", "ml", "mL"],
    "gal": ["gallons", "gal"],
}


def _number(rng: random.Random, group: str) -> tuple[float | int, str]:
    """A value and how a person would write it."""
    roll = rng.random()
    value: float | int
    if group == "temperature" and roll < 0.3:
        value = rng.choice([-40, -10, -5, 0, 37, 98.6, 100, 212, 300])
    elif roll < 0.55:
        value = rng.randint(1, 100)
    elif roll < 0.75:
        value = round(rng.uniform(0.1, 50), rng.choice([1, 2]))
    elif roll < 0.9:
        value = rng.randint(100, 5000)
    else:
        value = rng.choice([0.5, 0.25, 1.5, 2.5, 12.5, 1000, 1500, 2000])
    text = (
        f"{value:,}"
        if isinstance(value, int) and value >= 1000 and rng.random() < 0.5
        else str(value)
    )
    return value, text


def sample_conversion(rng: random.Random) -> Case:
    """Units of one kind, a value, and the names a request uses for them."""
    group = rng.choice(list(UNIT_GROUPS))
    source, target = rng.sample(UNIT_GROUPS[group], 2)
    value, text = _number(rng, group)
    return Case(
        {"value": value, "from_unit": source, "to_unit": target},
        {
            "value": text,
            "from_unit": rng.choice(UNIT_NAMES[source]),
            "to_unit": rng.choice(UNIT_NAMES[target]),
        },
    )


def convert_result(arguments: Mapping[str, Any], rng: random.Random) -> Any:
    """The real tool's answer (a pure function, safe to run while synthesising)."""
    from tools.units import convert_units

    out = convert_units.invoke_sync(arguments)
    value = out["value"]
    out["value"] = round(value, 4) if isinstance(value, float) else value
    return out


_OPS = [("+", ["plus", "+", "added to"]), ("-", ["minus", "-"]), ("*", ["times", "*", "multiplied by", "x"]), ("/", ["divided by", "/", "over"])]  # fmt: skip


def sample_expression(rng: random.Random) -> Case:
    """An arithmetic expression, written in symbols or in words."""
    roll = rng.random()
    a, b, c = rng.randint(2, 999), rng.randint(2, 99), rng.randint(2, 20)
    if roll < 0.45:
        op, words = rng.choice(_OPS)
        expression = f"{a} {op} {b}"
        spoken = f"{a} {rng.choice(words)} {b}"
    elif roll < 0.65:
        (op1, w1), (op2, w2) = rng.choice(_OPS), rng.choice(_OPS[:3])
        expression = f"({a} {op1} {b}) {op2} {c}"
        spoken = (
            expression if rng.random() < 0.6 else f"({a} {rng.choice(w1)} {b}) {rng.choice(w2)} {c}"
        )
    elif roll < 0.75:
        n = rng.choice([16, 25, 49, 81, 144, 2, 10, 200, 625, 1024])
        expression = f"sqrt({n})"
        spoken = rng.choice([f"the square root of {n}", f"sqrt({n})", f"√{n}"])
    elif roll < 0.85:
        base, power = rng.randint(2, 12), rng.randint(2, 8)
        expression = f"{base} ** {power}"
        spoken = rng.choice(
            [f"{base} to the power of {power}", f"{base} ** {power}", f"{base}^{power}"]
        )
    elif roll < 0.93:
        pct, total = rng.choice([5, 10, 15, 18, 20, 25, 30, 75]), rng.randint(20, 900)
        expression = f"{total} * {pct} / 100"
        spoken = rng.choice([f"{pct}% of {total}", f"{pct} percent of {total}"])
    else:
        expression = f"{a} % {c}"
        spoken = rng.choice([f"{a} mod {c}", f"{a} % {c}", f"the remainder of {a} divided by {c}"])
    if rng.random() < 0.5:
        spoken = expression
    return Case({"expression": expression}, {"expression": spoken})


def calculate_result(arguments: Mapping[str, Any], rng: random.Random) -> Any:
    """The calculator's real answer."""
    from tools.calculator import calculate

    value = calculate.invoke_sync(arguments)
    return round(value, 6) if isinstance(value, float) else value


_DIRS = ["notes", "docs", "src", "config", "data", "logs", "reports", "scripts", "tests", "assets"]
FILES: dict[str, str] = {
    "todo.txt": "- renew the TLS certificate\n- review PR 42\n- book the team offsite",
    "README.md": "# Inventory service\nRun `make dev` to start it locally.",
    "main.py": "def main():\n    print('hello')\n",
    "settings.yaml": "debug: false\nport: 8080\nregion: eu-west-1",
    "sales.csv": "month,total\njan,1200\nfeb,1350\nmar,1410",
    "app.log": "INFO started\nWARN slow query (812 ms)\nINFO ready",
    "notes.md": "Meeting moved to Thursday. Budget approved.",
    "requirements.txt": "requests==2.32\npydantic>=2",
    "changelog.md": "## 1.4.0\n- faster exports\n- fixed login bug",
    "users.json": '[{"name": "Alice"}, {"name": "Bob"}]',
    "schedule.txt": "Mon: standup 9:30\nWed: planning 14:00",
    "budget.csv": "item,cost\nlaptops,4200\ntravel,1800",
    "deploy.sh": "#!/bin/sh\nset -e\ndocker compose up -d",
    "index.html": "<h1>Status: all systems normal</h1>",
    "q3-summary.txt": "Revenue up 12%. Churn down to 3.1%.",
}


def sample_file(rng: random.Random) -> Case:
    """A workspace file path (sometimes at the root)."""
    name = rng.choice(list(FILES))
    path = name if rng.random() < 0.3 else f"{rng.choice(_DIRS)}/{name}"
    return Case({"path": path}, {"path": path})


def file_result(arguments: Mapping[str, Any], rng: random.Random) -> Any:
    name = str(arguments["path"]).rsplit("/", 1)[-1]
    return {"path": arguments["path"], "content": FILES.get(name, "(empty)"), "truncated": False}


_ROOT_LISTING = [
    "What files are in the workspace?",
    "List the files in the root of the workspace.",
    "Show me what's in the current directory.",
    "What's in the top-level folder?",
    "List everything in the workspace root.",
]


def sample_directory(rng: random.Random) -> Case:
    """A directory to list: a named one, or the workspace root."""
    if rng.random() < 0.2:
        return Case({"path": "."}, {}, requests=tuple(_ROOT_LISTING))
    path = rng.choice(_DIRS)
    if rng.random() < 0.25:
        path = f"{path}/{rng.choice(['2024', 'old', 'archive', 'v2'])}"
    return Case({"path": path}, {"path": path})


def directory_result(arguments: Mapping[str, Any], rng: random.Random) -> Any:
    names = rng.sample(list(FILES), 3)
    return {
        "path": arguments.get("path", "."),
        "entries": [{"name": n, "type": "file"} for n in names],
        "truncated": False,
    }


# (code, what it prints)
PROGRAMS: list[tuple[str, str]] = [
    ("print(sum(range(1, 101)))", "5050"),
    ("print('hello world')", "hello world"),
    ("import math; print(math.factorial(10))", "3628800"),
    ("print(sorted([5, 3, 9, 1]))", "[1, 3, 5, 9]"),
    ("print([i * i for i in range(1, 6)])", "[1, 4, 9, 16, 25]"),
    ("print(len('supercalifragilistic'))", "20"),
    ("print('racecar' == 'racecar'[::-1])", "True"),
    ("print(2 ** 32)", "4294967296"),
    ("import sys; print(sys.version_info.major)", "3"),
    ("print(', '.join(str(n) for n in range(10, 0, -2)))", "10, 8, 6, 4, 2"),
    ("print({'a': 1, 'b': 2}['b'])", "2"),
    ("print(max([17, 4, 23, 8]))", "23"),
    ("print(round(22 / 7, 3))", "3.143"),
    ("print('Python'.upper())", "PYTHON"),
    ("for i in range(3): print(i)", "0\n1\n2"),
    ("import statistics; print(statistics.mean([2, 4, 9]))", "5"),
    ("print(list(reversed('abc')))", "['c', 'b', 'a']"),
    ("print(divmod(17, 5))", "(3, 2)"),
    ("print(bin(42))", "0b101010"),
    ("print(sum(x for x in range(50) if x % 3 == 0))", "408"),
]


def sample_program(rng: random.Random) -> Case:
    """A short program the request quotes."""
    code, _ = rng.choice(PROGRAMS)
    return Case({"code": code}, {"code": code})


def program_result(arguments: Mapping[str, Any], rng: random.Random) -> Any:
    output = dict(PROGRAMS).get(str(arguments["code"]), "")
    return {"exit_code": 0, "stdout": output + "\n", "stderr": ""}


CONVERT_REQUESTS = [
    "Convert {value} {from_unit} to {to_unit}.",
    "How many {to_unit} is {value} {from_unit}?",
    "What is {value} {from_unit} in {to_unit}?",
    "{value} {from_unit} to {to_unit}, please.",
    "Can you convert {value} {from_unit} into {to_unit}?",
    "I have {value} {from_unit}. How much is that in {to_unit}?",
    "Please express {value} {from_unit} in {to_unit}.",
    "What's {value} {from_unit} when converted to {to_unit}?",
    "change {value} {from_unit} to {to_unit}",
    "How much is {value} {from_unit} in {to_unit}?",
    "Turn {value} {from_unit} into {to_unit} for me.",
    "I need {value} {from_unit} converted to {to_unit}.",
    "convert {value}{from_unit} -> {to_unit}",
    "What does {value} {from_unit} come to in {to_unit}?",
]
CALC_REQUESTS = [
    "What is {expression}?",
    "Calculate {expression}.",
    "Compute {expression} for me.",
    "How much is {expression}?",
    "Evaluate {expression}",
    "What do you get for {expression}?",
    "Work out {expression}.",
    "{expression} = ?",
    "Can you do {expression}?",
    "what's {expression}",
    "Please calculate {expression} exactly.",
    "I need the value of {expression}.",
]
READ_REQUESTS = [
    "Show me the contents of {path}.",
    "Read {path}",
    "What's in the file {path}?",
    "Open {path} and show me what it says.",
    "Print the file {path}",
    "Can you read {path} for me?",
    "Display {path}.",
    "I need to see what {path} contains.",
    "cat {path}",
    "What does {path} say?",
]
LIST_REQUESTS = [
    "List the files in {path}.",
    "What's inside the {path} directory?",
    "Show me the directory {path}",
    "ls {path}",
    "Which files are in {path}?",
    "Give me a listing of {path}.",
    "What is in the folder {path}?",
    "List the contents of {path}/",
]
PYTHON_REQUESTS = [
    "Run this Python code: {code}",
    "Execute `{code}`",
    "Can you run the following Python snippet? {code}",
    "Please run {code} and tell me the output.",
    "What does this print? {code}",
    "Run in Python:\n{code}",
    "Execute this program: {code}",
    "Use Python to run `{code}`.",
]

# Requests no built-in tool serves: chat, writing, knowledge, and actions
# that sound tool-like but have no tool here (the model must say so, not call).
NO_TOOL: list[tuple[str, str]] = [
    ("Write a haiku about autumn leaves.", "Red leaves drift and fall,\nwhispering to the cold ground:\nsummer says goodbye."),
    ("Write a short poem about the sea.", "The sea rolls in, the sea rolls out,\nit keeps its secrets, never doubts."),
    ("Tell me a joke.", "Why did the developer go broke? Because he used up all his cache."),
    ("Tell me a fun fact.", "Octopuses have three hearts and blue blood."),
    ("Hi! How are you today?", "I'm doing well, thanks for asking. How can I help you?"),
    ("Good morning!", "Good morning! What can I do for you today?"),
    ("Thanks, that's all for now.", "You're welcome! Let me know if you need anything else."),
    ("Who are you?", "I'm an assistant that can do calculations, convert units, read and list files, and run Python code."),
    ("What can you do?", "I can calculate, convert between units, read and list files in the workspace, and run short Python programs."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    ("What is photosynthesis?", "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("Explain what a black hole is in one sentence.", "A black hole is a region of space where gravity is so strong that nothing, not even light, can escape."),
    ("Give me a synonym for happy.", "A few synonyms for happy: cheerful, glad, content, joyful."),
    ("Translate 'good night' into Spanish.", "'Good night' in Spanish is 'buenas noches'."),
    ("How do I say thank you in French?", "Thank you in French is 'merci'."),
    ("What's the weather like in Paris right now?", "I can't check the weather: I have no weather tool. A weather service or app will have the current forecast."),
    ("Send an email to Bob saying the meeting moved.", "I can't send emails with the tools I have. You could write: 'Hi Bob, the meeting has moved.'"),
    ("Book me a flight to Berlin next Friday.", "I can't book flights; I have no travel tools. A booking site or your travel team can help."),
    ("Set an alarm for 7 am.", "I can't set alarms with my tools, but your phone's clock app can do it."),
    ("What time is it in Tokyo?", "I don't have a clock tool, so I can't tell the current time. Tokyo is UTC+9."),
    ("Order a pizza for tonight.", "I can't place orders; none of my tools do that."),
    ("Delete the file notes/old.txt.", "I can't delete files: my file tools only read and list them."),
    ("Write a new file called plan.txt with my goals.", "I can't write files; my tools only read and list the workspace."),
    ("What is a kilometer?", "A kilometer is a unit of length equal to 1,000 meters."),
    ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters the most, so the sky looks blue."),
    ("What's the difference between Celsius and Fahrenheit?", "Both measure temperature: water freezes at 0 °C or 32 °F and boils at 100 °C or 212 °F."),
    ("What is Python?", "Python is a popular, readable programming language used for scripting, data work and web services."),
    ("Explain recursion briefly.", "Recursion is when a function solves a problem by calling itself on smaller parts of it."),
    ("Give me three tips for better sleep.", "Keep a regular schedule, avoid screens before bed, and keep your room cool and dark."),
    ("Recommend a good book.", "Try 'The Hitchhiker's Guide to the Galaxy' by Douglas Adams: funny and short."),
    ("What does HTTP stand for?", "HTTP stands for HyperText Transfer Protocol."),
    ("Summarize the plot of Cinderella in one sentence.", "A kind young woman, helped by a fairy godmother, attends a royal ball and wins the prince's heart."),
    ("Is a tomato a fruit or a vegetable?", "Botanically a tomato is a fruit, though it is cooked like a vegetable."),
    ("Suggest a name for my cat.", "How about Miso, Pepper or Luna?"),
    ("What is the boiling point of water?", "Water boils at 100 °C (212 °F) at sea level."),
    ("How many continents are there?", "There are seven continents."),
    ("Can you help me write a birthday message for my mom?", "Happy birthday, Mom! Thank you for your love and support. I hope your day is as wonderful as you are."),
    ("What is machine learning?", "Machine learning is a way of building software that learns patterns from data instead of following hand-written rules."),
    ("Define the word 'ephemeral'.", "Ephemeral means lasting a very short time."),
    ("What's your favourite color?", "I don't have preferences, but many people love blue."),
    ("Who was the first person on the moon?", "Neil Armstrong, in 1969."),
    ("Search the web for the latest news.", "I can't browse the web; I have no search tool."),
    ("Play some music.", "I can't play music; none of my tools do that."),
    ("What is the meaning of life?", "Many say it is what you make of it; Douglas Adams said 42."),
    ("Write a SQL query that selects all users.", "SELECT * FROM users;"),
    ("How do I reverse a list in Python?", "Use my_list.reverse() to reverse in place, or my_list[::-1] for a reversed copy."),
    ("What is 'hola' in English?", "'Hola' means 'hello'."),
    ("Give me a motivational quote.", "\"The secret of getting ahead is getting started.\" - Mark Twain"),
    ("Explain what an API is.", "An API is a defined way for one program to ask another for data or actions."),
    ("Which planet is the largest?", "Jupiter is the largest planet in the solar system."),
    ("What language is spoken in Brazil?", "Portuguese is the official language of Brazil."),
    ("I'm feeling stressed. Any advice?", "Take a short walk, breathe slowly, and tackle one small task at a time. It helps."),
    ("Compose a limerick about a cat.", "A cat with a taste for the cream\nwould plot and would cleverly scheme;\nshe'd knock down a cup,\nthen lap it all up,\nand purr like a small steam machine."),
]  # fmt: skip

_CAPITALS = [
    ("Italy", "Rome"), ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"), ("Spain", "Madrid"),
    ("Germany", "Berlin"), ("India", "New Delhi"), ("Mexico", "Mexico City"), ("Greece", "Athens"),
]  # fmt: skip
_CAPITAL_REQUESTS = [
    "What's the capital of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital city of {c}.",
    "capital of {c}?",
]
_TOPICS = ["the ocean", "coffee", "mountains", "winter", "a city at night", "spring rain",
           "old friends", "the moon", "a quiet library", "trains", "the desert", "snow"]  # fmt: skip
_POEM_REQUESTS = [
    "Write a haiku about {t}.",
    "Compose a short poem about {t}.",
    "Give me a two-line rhyme about {t}.",
]
_UNSUPPORTED = [
    ("Text Alice that I'm running late.", "send messages"),
    ("Call a taxi to the airport.", "book rides"),
    ("Turn off the living room lights.", "control smart-home devices"),
    ("Check my calendar for tomorrow.", "read calendars"),
    ("Buy two tickets for the concert.", "buy tickets"),
    ("Post this on Twitter: launch day!", "post to social media"),
    ("Translate this page into German and email it to my boss.", "send email"),
    ("Remind me to water the plants at 6 pm.", "set reminders"),
    ("Find me a cheap hotel in Lisbon.", "search for hotels"),
    ("What's the stock price of Apple today?", "look up live stock prices"),
    ("Rename report.txt to final.txt.", "rename or change files"),
    ("Download the latest release from GitHub.", "download from the internet"),
]


def general_no_tool() -> list[tuple[str, str]]:
    """Knowledge and writing requests that suit any tool module (no action requests)."""
    pairs: list[tuple[str, str]] = []
    for i, (country, capital) in enumerate(_CAPITALS):
        request = _CAPITAL_REQUESTS[i % len(_CAPITAL_REQUESTS)].format(c=country)
        pairs.append((request, f"The capital of {country} is {capital}."))
    for i, topic in enumerate(_TOPICS):
        request = _POEM_REQUESTS[i % len(_POEM_REQUESTS)].format(t=topic)
        pairs.append(
            (
                request,
                f"Here is one about {topic}:\n{topic.capitalize()} in quiet light,\na moment held, then let go,\nthe day moves along.",
            )
        )
    return pairs


def _generated_no_tool() -> list[tuple[str, str]]:
    pairs = general_no_tool()
    for request, ability in _UNSUPPORTED:
        pairs.append((request, f"Sorry, I can't do that: none of my tools can {ability}."))
    return pairs


JOINERS = [
    "{a}. Also, {b}.",
    "{a}, and {b}.",
    "Two things: {a}; {b}.",
    "{a}. Then {b}.",
    "First {a_lc}, then {b}.",
    "{a} and also {b}.",
]


def builtin_phrasebook() -> Phrasebook:
    """The phrasebook for the `tools` package."""
    return Phrasebook(
        tools={
            "convert_units": ToolPhrases(
                requests=CONVERT_REQUESTS,
                sample=sample_conversion,
                answers=[
                    "{value} {from_unit} is {result[value]} {to_unit}.",
                    "That's {result[value]} {to_unit}.",
                    "{value} {from_unit} comes to {result[value]} {to_unit}.",
                ],
                result=convert_result,
            ),
            "calculate": ToolPhrases(
                requests=CALC_REQUESTS,
                sample=sample_expression,
                answers=[
                    "{expression} = {result}",
                    "The answer is {result}.",
                    "That comes to {result}.",
                ],
                result=calculate_result,
            ),
            "read_file": ToolPhrases(
                requests=READ_REQUESTS,
                sample=sample_file,
                answers=["Here is {path}:\n\n{result[content]}", "{path} says:\n{result[content]}"],
                result=file_result,
            ),
            "list_dir": ToolPhrases(
                requests=LIST_REQUESTS,
                sample=sample_directory,
                compose_answer=_dir_answer,
                result=directory_result,
            ),
            "run_python": ToolPhrases(
                requests=PYTHON_REQUESTS,
                sample=sample_program,
                answers=["It printed:\n{result[stdout]}", "The output is:\n{result[stdout]}"],
                result=program_result,
            ),
        },
        no_tool=[*NO_TOOL, *_generated_no_tool()],
        joiners=list(JOINERS),
    )


def _dir_answer(case: Case, result: Any, rng: random.Random) -> str:
    names = ", ".join(str(entry.get("name")) for entry in result.get("entries", []))
    where = case.slots.get("path", "The workspace root")
    return rng.choice(
        [f"{where} contains: {names}.", f"I found these entries in {where}: {names}."]
    )
