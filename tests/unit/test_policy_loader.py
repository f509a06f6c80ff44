"""The strict policy loader: YAML that means one thing, errors that name file, line, key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from runtime.policy.loader import PolicyLoadError, load_policies, read_strict_yaml
from runtime.policy.model import PolicyFile
from runtime.policy.ratelimit import InMemoryRateLimitStore

GOOD = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: base}
rules:
  - id: allow-read
    effect: allow
    tools: [read_file]
    when: {args.path: {path_under: ["/workspace"]}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(*sources: Path) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as info:
        load_policies(*sources, rate_limits=InMemoryRateLimitStore())
    return info.value


def test_good_file_loads(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", GOOD)
    policy = load_policies(tmp_path, rate_limits=InMemoryRateLimitStore())
    assert policy.policy_ids == ("base",)
    assert len(policy.sha256) == 64


def test_issue_example_loads(tmp_path: Path) -> None:
    write(
        tmp_path,
        "acme.yaml",
        """\
        apiVersion: agentrt/v1
        kind: ToolPolicy
        metadata: {id: acme-base}
        scope: {tenants: ["acme"], agents: ["support-*"]}
        rules:
          - id: allow-read-workspace
            effect: allow
            tools: ["read_file", "list_dir"]
            when: {all: [{args.path: {path_under: ["/workspace"]}}, {args.path: {max_len: 4096}}]}
          - id: deny-secrets
            effect: deny
            tools: ["*"]
            when: {args.path: {regex: '.*(\\.env|id_rsa|\\.pem)$'}}
          - id: approve-big-refunds
            effect: require_approval
            tools: ["issue_refund"]
            when: {args.amount: {gt: 100}}
            approval: {timeout: "15m"}
        limits:
          - {id: refund-rate, tools: ["issue_refund"], per: [tenant], rate: "10/minute"}
        """,
    )
    policy = load_policies(tmp_path, rate_limits=InMemoryRateLimitStore())
    assert policy.policy_ids == ("acme-base",)


def test_duplicate_yaml_key_is_an_error_with_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.yaml",
        """\
        apiVersion: agentrt/v1
        kind: ToolPolicy
        metadata: {id: dup}
        rules:
          - id: allow-read
            effect: allow
            effect: deny
            tools: [read_file]
        """,
    )
    (problem,) = load_error(path).problems
    assert problem.file == str(path)
    assert problem.line == 7
    assert "duplicate key 'effect'" in problem.message
    assert "line 6" in problem.message


@pytest.mark.parametrize("word", ["NO", "no", "on", "Off", "yes", "True", "FALSE", "Null"])
def test_yaml11_booleans_are_never_guessed(tmp_path: Path, word: str) -> None:
    text = GOOD.replace('{path_under: ["/workspace"]}', f"{{equals: {word}}}")
    problem = load_error(write(tmp_path, "b.yaml", text)).problems[0]
    assert problem.line == 8
    assert repr(word) in problem.message and "quote it" in problem.message


@pytest.mark.parametrize(
    "number",
    ["1.10", "1.0", "0x1F", "0o17", "007", "1e3", "1_000", "+1", ".5", ".inf", ".nan", "1:30"],
)
def test_ambiguous_numbers_are_errors(tmp_path: Path, number: str) -> None:
    text = GOOD.replace('{path_under: ["/workspace"]}', f"{{equals: {number}}}")
    assert load_error(write(tmp_path, "n.yaml", text)).problems[0].line == 8


def test_quoted_words_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "q.yaml", GOOD.replace('["/workspace"]', '["/workspace"], equals: "NO"'))
    data, _ = read_strict_yaml(path)
    assert data["rules"][0]["when"]["args.path"]["equals"] == "NO"


def test_plain_numbers_and_booleans_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.yaml", "a: 1\nb: -2.5\nc: true\nd: null\ne: ~\nf: v1.10\ng: 2024-01-01\n"
    )
    data, _ = read_strict_yaml(path)
    assert data == {
        "a": 1,
        "b": -2.5,
        "c": True,
        "d": None,
        "e": None,
        "f": "v1.10",
        "g": "2024-01-01",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x 1\nb: *x\n", "aliases"),
        ("base: &b {x: 1}\nother:\n  <<: *b\n", "aliases"),
        ("a: !!float 1\n", "explicit tag"),
        ("a: !!python/object:os.system x\n", "explicit tag"),
        ("a: 1\n---\nb: 2\n", "YAML"),
        ("", "empty"),
        ("a: [1, 2\n", "YAML"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, "x.yaml", text)
    with pytest.raises(PolicyLoadError) as info:
        read_strict_yaml(path)
    assert fragment in str(info.value)


def test_unknown_operator_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "op.yaml", GOOD.replace("path_under", "path_undr"))
    (problem,) = load_error(path).problems
    assert (problem.file, problem.line) == (str(path), 8)
    assert problem.key == 'rules[0].when["args.path"].path_undr'
    assert "unknown operator 'path_undr'" in problem.message


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "k.yaml", GOOD.replace("    effect: allow", "    effect: allow\n    efect: x")
    )
    (problem,) = load_error(path).problems
    assert problem.key == "rules[0].efect" and problem.line == 7
    assert "unknown key" in problem.message


def test_bad_regex_is_a_load_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "r.yaml", GOOD.replace('{path_under: ["/workspace"]}', "{regex: '(unclosed'}")
    )
    (problem,) = load_error(path).problems
    assert problem.line == 8 and "bad regex" in problem.message


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*b", "(x+x+)+y", ".*a.*b.*c", "(a)\\1"])
def test_catastrophic_regex_is_a_load_error(tmp_path: Path, pattern: str) -> None:
    text = GOOD.replace('{path_under: ["/workspace"]}', f"{{regex: '{pattern}'}}")
    assert load_error(write(tmp_path, "r.yaml", text)).problems


def test_numbers_must_be_real_numbers(tmp_path: Path) -> None:
    text = GOOD.replace('{path_under: ["/workspace"]}', '{gt: "100"}')
    assert "valid" in load_error(write(tmp_path, "g.yaml", text)).problems[0].message


def test_non_finite_numbers_are_refused_by_the_model() -> None:
    data = {
        "apiVersion": "agentrt/v1",
        "kind": "ToolPolicy",
        "metadata": {"id": "x"},
        "rules": [
            {"id": "r", "effect": "allow", "tools": ["t"], "when": {"args.a": {"gt": float("nan")}}}
        ],
    }
    with pytest.raises(pydantic.ValidationError):
        PolicyFile.model_validate(data)
    data["rules"][0]["when"] = {"args.a": {"lte": float("inf")}}  # type: ignore[index]
    with pytest.raises(pydantic.ValidationError):
        PolicyFile.model_validate(data)


def test_duplicate_rule_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD.replace("id: base", "id: other"))
    (problem,) = load_error(tmp_path).problems
    assert problem.file.endswith("b.yaml") and problem.line == 5
    assert "allow-read" in problem.message and "a.yaml:5" in problem.message


def test_duplicate_policy_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD.replace("allow-read", "allow-read-2"))
    assert "policy id 'base'" in str(load_error(tmp_path))


def test_a_broken_file_refuses_the_whole_set(tmp_path: Path) -> None:
    write(tmp_path, "a-good.yaml", GOOD)
    write(
        tmp_path,
        "b-broken.yaml",
        GOOD.replace("id: base", "id: broken").replace("allow-read", "x") + "  - {",
    )
    error = load_error(tmp_path)
    assert all(p.file.endswith("b-broken.yaml") for p in error.problems)


def test_missing_and_empty_sources(tmp_path: Path) -> None:
    assert "no such file" in str(load_error(tmp_path / "nope"))
    assert "no policy files" in str(load_error(tmp_path))


def test_subdirectories_are_not_loaded(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", GOOD)
    (tmp_path / "examples").mkdir()
    write(tmp_path / "examples", "broken.yaml", "not: [valid")
    assert load_policies(tmp_path, rate_limits=InMemoryRateLimitStore()).policy_ids == ("base",)


def test_reserved_and_repeated_ids_within_a_file(tmp_path: Path) -> None:
    assert "reserved" in str(
        load_error(write(tmp_path, "r.yaml", GOOD.replace("allow-read", "default-deny")))
    )


def test_approval_block_only_on_approval_rules(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    tools: [read_file]", "    tools: [read_file]\n    approval: {timeout: 15m}"
    )
    assert "approval" in str(load_error(write(tmp_path, "a.yaml", text)))


@pytest.mark.parametrize("rate", ["10/minutes", "0/minute", "ten/minute", "10 per minute"])
def test_bad_rates_are_refused(tmp_path: Path, rate: str) -> None:
    text = GOOD + f'limits:\n  - {{id: l, tools: ["*"], per: [tenant], rate: "{rate}"}}\n'
    assert load_error(write(tmp_path, "l.yaml", text)).problems[0].line == 10


def test_sha256_ignores_formatting_and_file_order(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    write(one, "a.yaml", GOOD)
    write(one, "b.yaml", GOOD.replace("id: base", "id: zz").replace("allow-read", "allow-b"))
    reformatted = (
        "# a comment\nkind: ToolPolicy\napiVersion: 'agentrt/v1'\nmetadata:\n  id: base\nrules:\n"
        "- {id: allow-read, tools: [read_file], effect: allow,"
        " when: {args.path: {path_under: ['/workspace']}}}\n"
    )
    write(two, "z.yaml", reformatted)
    write(two, "a.yaml", GOOD.replace("id: base", "id: zz").replace("allow-read", "allow-b"))
    store = InMemoryRateLimitStore()
    first = load_policies(one, rate_limits=store)
    second = load_policies(two, rate_limits=store)
    assert first.sha256 == second.sha256
    changed = write(two, "z.yaml", reformatted.replace("/workspace", "/other"))
    assert load_policies(changed.parent, rate_limits=store).sha256 != first.sha256


def test_redact_paths_are_merged_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD + "audit: {redact: [args.password, args.token]}\n")
    other = GOOD.replace("id: base", "id: b2").replace("allow-read", "allow-2")
    write(tmp_path, "b.yaml", other + "audit: {redact: [args.password, args.card.number]}\n")
    policy = load_policies(tmp_path, rate_limits=InMemoryRateLimitStore())
    assert policy.redact_paths == ("args.card.number", "args.password", "args.token")


def test_redact_paths_must_be_argument_paths(tmp_path: Path) -> None:
    assert load_error(write(tmp_path, "a.yaml", GOOD + "audit: {redact: [password]}\n")).problems
