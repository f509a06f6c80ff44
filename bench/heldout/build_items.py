"""Build the held-out evaluation items from the hand-written request files.

For every `<domain>.requests.yaml` next to this script: load the tool module it
names, check every expected call against the module's tool schemas, and write
`<domain>.items.jsonl`, one item per line:

    {"id": "<domain>-001", "messages": [{"role": "user", "content": "..."}],
     "tools": [...openai schemas...], "expected": [{"name": ..., "arguments":
     {"<arg>": [<accepted value>, ...]}}], "category": "single" | "parallel" |
     "no_tool", "check": "call"}

Any problem (unknown tool or argument, a value the schema rejects, a missing
required argument, a call the tool itself refuses, wrong counts per category)
is reported and nothing is written.

Run from the repository root:

    .venv/bin/python bench/heldout/build_items.py [FOLDER]

FOLDER (default: this one) may be another set in the same format, such as
bench/calibration; only the held-out sets must have the counts below.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jsonschema  # noqa: E402
import yaml  # noqa: E402

from runtime.module_loader import load_module  # noqa: E402
from runtime.tools import ToolRegistry  # noqa: E402

CATEGORIES = ("single", "parallel", "no_tool")
CALLS_PER_CATEGORY = {"single": 1, "parallel": 2, "no_tool": 0}
COUNTS = {"single": 24, "parallel": 6, "no_tool": 10}
OMITTED = ""  # among an optional argument's accepted values: "may be left out"


class BuildError(Exception):
    pass


def _is_json(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _check_call(
    where: str,
    call: Any,
    tools: dict[str, dict[str, Any]],
    registry: ToolRegistry,
    errors: list[str],
) -> dict[str, Any] | None:
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        errors.append(f"{where}: a call needs exactly 'name' and 'arguments', got {call!r}")
        return None
    name, arguments = call["name"], call["arguments"]
    if name not in tools:
        errors.append(f"{where}: unknown tool {name!r} (module has {sorted(tools)})")
        return None
    if not isinstance(arguments, dict):
        errors.append(f"{where}: {name}: 'arguments' must be a mapping")
        return None
    schema = tools[name]
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    validator_cls = jsonschema.validators.validator_for(schema)
    ok = True

    for missing in sorted(required - set(arguments)):
        errors.append(f"{where}: {name}: required argument {missing!r} has no expected value")
        ok = False
    for arg, accepted in arguments.items():
        if not isinstance(arg, str):
            errors.append(
                f"{where}: {name}: argument name {arg!r} is not a string (quote it in YAML)"
            )
            ok = False
            continue
        if arg not in properties:
            errors.append(
                f"{where}: {name}: no argument {arg!r} in the schema ({sorted(properties)})"
            )
            ok = False
            continue
        if not isinstance(accepted, list) or not accepted:
            errors.append(f"{where}: {name}.{arg}: accepted values must be a non-empty list")
            ok = False
            continue
        not_json = [v for v in accepted if not _is_json(v)]
        if not_json:
            errors.append(
                f"{where}: {name}.{arg}: {not_json[0]!r} is not a JSON value "
                f"(quote dates and times in YAML)"
            )
            ok = False
            continue
        if len({json.dumps(v, sort_keys=True) for v in accepted}) != len(accepted):
            errors.append(f"{where}: {name}.{arg}: duplicate accepted values")
        if OMITTED in accepted and arg in required:
            errors.append(f'{where}: {name}.{arg}: "" (may be omitted) on a required argument')
            ok = False
        if accepted == [OMITTED]:
            errors.append(f'{where}: {name}.{arg}: only ""; leave the argument out instead')
        validator = validator_cls(properties[arg])
        for value in accepted:
            if value == OMITTED and arg not in required:
                continue
            problems = [e.message for e in validator.iter_errors(value)]
            if problems:
                errors.append(f"{where}: {name}.{arg}: {value!r} is invalid: {problems[0]}")
                ok = False
    if not ok:
        return None

    # The tool itself must accept every accepted value: run it with each one in
    # turn on top of a base call made of the first value of every argument.
    tool = registry.get(name)
    assert tool is not None
    base = {
        arg: next(v for v in accepted if v != OMITTED or arg in required)
        for arg, accepted in arguments.items()
        if any(v != OMITTED for v in accepted)
    }
    jsonschema_errors = [e.message for e in validator_cls(schema).iter_errors(base)]
    if jsonschema_errors:
        errors.append(f"{where}: {name}: {base!r} is invalid: {jsonschema_errors[0]}")
        return None
    variants = [base] + [
        {**base, arg: value}
        for arg, accepted in arguments.items()
        for value in accepted
        if value != OMITTED and value != base.get(arg)
    ]
    for args in variants:
        try:
            tool.invoke_sync(copy.deepcopy(args))
        except Exception as exc:  # a fake that refuses an expected call is a bad item
            errors.append(f"{where}: {name}({args!r}) raised {type(exc).__name__}: {exc}")
            return None
    return {"name": name, "arguments": arguments}


def build(
    requests_path: Path, counts_wanted: dict[str, int] | None = COUNTS
) -> tuple[Path, list[dict[str, Any]]]:
    domain = requests_path.name.removesuffix(".requests.yaml")
    spec = yaml.safe_load(requests_path.read_text(encoding="utf-8"))
    errors: list[str] = []
    module_path = requests_path.parent / spec["module"]
    registry = ToolRegistry.from_module(load_module(str(module_path)))
    schemas = registry.openai_schemas()
    tools = {s["function"]["name"]: s["function"]["parameters"] for s in schemas}
    if not tools:
        raise BuildError(f"{module_path}: no tools found")

    items: list[dict[str, Any]] = []
    counts = dict.fromkeys(CATEGORIES, 0)
    covered: set[str] = set()
    seen_requests: set[str] = set()
    for index, raw in enumerate(spec["items"], start=1):
        item_id = f"{domain}-{index:03d}"
        where = f"{requests_path.name} item {index} ({item_id})"
        if set(raw) != {"category", "request", "expected"}:
            errors.append(f"{where}: keys must be category, request, expected; got {sorted(raw)}")
            continue
        category, request, expected = raw["category"], raw["request"], raw["expected"]
        if category not in CATEGORIES:
            errors.append(f"{where}: unknown category {category!r}")
            continue
        if not isinstance(request, str) or not request.strip():
            errors.append(f"{where}: empty request")
            continue
        if request.strip().lower() in seen_requests:
            errors.append(f"{where}: duplicate request {request!r}")
        seen_requests.add(request.strip().lower())
        if not isinstance(expected, list) or len(expected) != CALLS_PER_CATEGORY[category]:
            errors.append(
                f"{where}: a {category} item expects {CALLS_PER_CATEGORY[category]} call(s), "
                f"got {expected!r}"
            )
            continue
        counts[category] += 1
        calls = [
            _check_call(f"{where} call {n}", call, tools, registry, errors)
            for n, call in enumerate(expected, start=1)
        ]
        if any(call is None for call in calls):
            continue
        if category == "single":
            covered.update(call["name"] for call in calls if call)
        items.append(
            {
                "id": item_id,
                "messages": [{"role": "user", "content": request}],
                "tools": schemas,
                "expected": calls,
                "category": category,
                "check": "call",
            }
        )

    if counts_wanted is not None and counts != counts_wanted:
        errors.append(f"{requests_path.name}: counts {counts}, want {counts_wanted}")
    for name in sorted(set(tools) - covered):
        errors.append(f"{requests_path.name}: tool {name!r} has no single item")
    if errors:
        raise BuildError("\n".join(errors))
    return requests_path.with_name(f"{domain}.items.jsonl"), items


def main(argv: list[str]) -> int:
    folder = Path(argv[0]).resolve() if argv else HERE
    # the held-out sets keep their fixed shape; other sets (bench/calibration) any counts
    counts_wanted = COUNTS if folder == HERE else None
    sources = sorted(folder.glob("*.requests.yaml"))
    if not sources:
        print(f"no *.requests.yaml in {folder}", file=sys.stderr)
        return 1
    built: list[tuple[Path, list[dict[str, Any]]]] = []
    failed = False
    for source in sources:
        try:
            built.append(build(source, counts_wanted))
        except BuildError as exc:
            failed = True
            print(f"{source.name}: FAILED\n{exc}", file=sys.stderr)
    if failed:
        print("nothing written", file=sys.stderr)
        return 1
    for out, items in built:
        with out.open("w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        by_category = {c: sum(i["category"] == c for i in items) for c in CATEGORIES}
        print(f"{out.relative_to(ROOT)}: {len(items)} items {by_category}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
