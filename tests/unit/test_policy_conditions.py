"""Operators and normalisation: every "bad input → outcome" of issue 4 at operator level."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runtime.calls import CallContext
from runtime.policy.conditions import (
    ERROR,
    FALSE,
    REGEX_MAX_INPUT,
    TRUE,
    AllNode,
    AnyNode,
    FieldTest,
    NotNode,
    build_field_test,
)
from runtime.policy.model import UrlSpec
from runtime.policy.normalise import EvalError, compile_regex, normalise_host, parse_url

CTX = CallContext(tenant="acme", agent="support-1", extra={"region": "eu"})


def run(op: str, arg: Any, value: Any, field: str = "args.v") -> int:
    test = build_field_test(field, [(op, arg)])
    return test.evaluate({"v": value}, CTX)


# ----------------------------------------------------------------- path_under


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/workspace/a.txt", TRUE),
        ("/workspace", TRUE),
        ("/workspace/./docs//a.md", TRUE),
        ("/workspace/docs/../a.md", TRUE),
        ("/workspace/../etc/passwd", FALSE),
        ("/workspace-evil/a.txt", FALSE),  # sibling sharing the prefix
        ("/workspacex", FALSE),
        ("/etc/passwd", FALSE),
        ("workspace/a.txt", FALSE),  # relative is not under an absolute root
        ("/../workspace/a.txt", FALSE),  # climbs above / first: refused
        ("/workspace/%2e%2e/etc/passwd", FALSE),  # URL-encoded dots
        ("/workspace/%252e%252e/etc", FALSE),  # double-encoded
        ("/workspace/a%20b.txt", TRUE),
        ("/workspace\\..\\etc", FALSE),  # backslash is a separator
        ("/workspace/a.txt\x00.png", ERROR),  # NUL
        ("/workspace/%00", ERROR),  # encoded NUL
    ],
)
def test_path_under_absolute_root(path: str, expected: int) -> None:
    assert run("path_under", ["/workspace"], path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("notes.txt", TRUE),
        ("docs/a.md", TRUE),
        (".", TRUE),
        ("docs/../a.md", TRUE),
        ("../x", FALSE),
        ("docs/../../x", FALSE),
        ("/etc/passwd", FALSE),
        ("%2e%2e/x", FALSE),
    ],
)
def test_path_under_relative_root(path: str, expected: int) -> None:
    assert run("path_under", ["."], path) == expected


def test_path_under_wrong_type_is_an_error() -> None:
    assert run("path_under", ["."], ["a"]) == ERROR
    assert run("path_under", ["."], 3) == ERROR


# ----------------------------------------------------------------- SSRF forms

METADATA = ["169.254.0.0/16"]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://2852039166/",
        "http://0xA9FEA9FE/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://169.254.169.254./",
    ],
)
def test_ip_in_sees_every_spelling_of_the_metadata_address(url: str) -> None:
    assert run("ip_in", METADATA, url) == TRUE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://good.example@169.254.169.254/", ERROR),  # userinfo
        ("http://evil.com@good.example/", ERROR),
        ("http://docs.python.org/", FALSE),  # a name, not an address
        ("http://8.8.8.8/", FALSE),
        ("169.254.169.254", TRUE),  # bare host literal
        ("::ffff:169.254.169.254", TRUE),
        ("http://1.2.3.999/", ERROR),  # ends in a number but is no address
        ("http://%31%36%39.254.169.254/", ERROR),  # percent-encoded host
        ("http://169.254.169.254\\@good.example/", ERROR),  # backslash trick
        # NAT64 reaches 169.254.169.254 but is itself outside the block: the
        # readings disagree, so ERROR (a deny rule matches, an allow does not).
        ("http://[64:ff9b::a9fe:a9fe]/", ERROR),
    ],
)
def test_ip_in_edge_cases(value: str, expected: int) -> None:
    assert run("ip_in", METADATA, value) == expected


def test_ip_in_embedded_address_with_different_verdict_is_an_error() -> None:
    # 2002:a9fe:a9fe:: is a 6to4 address carrying 169.254.169.254.
    assert run("ip_in", ["2002::/16"], "http://[2002:a9fe:a9fe::1]/") == ERROR


SPEC = UrlSpec.model_validate(
    {"schemes": ["https"], "hosts": ["docs.python.org", "*.acme.example"]}
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://docs.python.org/3/", TRUE),
        ("HTTPS://DOCS.PYTHON.ORG/", TRUE),  # uppercase
        ("https://docs.python.org./", TRUE),  # trailing dot
        ("https://api.acme.example/x", TRUE),
        ("https://bücher.acme.example/", TRUE),  # IDNA
        ("https://xn--bcher-kva.acme.example/", TRUE),
        ("https://acme.example/", FALSE),
        ("https://docs.python.org.evil.example/", FALSE),
        ("http://docs.python.org/", FALSE),
        ("file:///etc/passwd", FALSE),
        ("https://docs.python.org@evil.example/", ERROR),
        ("https://user:pw@docs.python.org/", ERROR),
        ("https://docs.python.org\\.evil.example/", ERROR),
        ("https://docs.python.org /", ERROR),
        ("https://docs.python.org:99999/", ERROR),
        ("https:///nohost", ERROR),
        ("https://docs.python.org../", ERROR),
    ],
)
def test_url_allowlist(url: str, expected: int) -> None:
    assert run("url", SPEC, url) == expected


def test_url_ports_and_default_schemes() -> None:
    spec = UrlSpec.model_validate({"hosts": ["example.com"], "ports": [443]})
    assert run("url", spec, "https://example.com/") == TRUE
    assert run("url", spec, "https://example.com:443/") == TRUE
    assert run("url", spec, "http://example.com/") == FALSE  # port 80
    assert run("url", spec, "gopher://example.com:443/") == FALSE  # scheme not allowed


def test_full_width_digits_normalise_to_the_address() -> None:
    assert normalise_host("１６９.２５４.１６９.２５４") == "169.254.169.254"
    assert normalise_host("EXAMPLE.com.") == "example.com"
    with pytest.raises(EvalError):
        parse_url("http://a@b/")


# ----------------------------------------------------------------- regex


def test_regex_is_a_full_match() -> None:
    assert run("regex", "[a-z]+", "abc") == TRUE
    assert run("regex", "[a-z]+", "abc1") == FALSE
    assert run("regex", "[a-z]+", 12) == ERROR


def test_regex_bomb_argument_is_cheap_and_fails_closed() -> None:
    # The deny-secrets pattern against a megabyte of input: not even
    # tried (ERROR, so a deny rule matches), and quick.
    pattern = r".*(\.env|id_rsa|\.pem)$"
    start = time.perf_counter()
    assert run("regex", pattern, "a" * 1_000_000) == ERROR
    assert run("regex", pattern, "/" * (REGEX_MAX_INPUT + 1)) == ERROR
    # At the cap, adversarial input for the worst shape allowed (two .*) stays fast.
    assert run("regex", ".*a.*b", "a" * REGEX_MAX_INPUT) == FALSE
    assert run("regex", "[a-z0-9]+(?:-[a-z0-9]+)*+", "a-" * 511 + "!") == FALSE
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("value", ["12345\n", "߀߁߂߃߄", "١٢٣٤٥"])
def test_regex_reads_digits_and_end_as_a_tool_schema_does(value: str) -> None:
    assert run("regex", r"\d{5}$", value) == FALSE
    assert run("regex", r"\d{5}", value) == FALSE
    assert run("regex", r"\d{5}$", "12345") == TRUE


# Patterns in the syntax Python and ECMA-262 share, against the characters where
# their meanings part: each verdict must be ECMA-262's (a tool schema's `pattern`).
SHARED_SYNTAX = [
    r"\d+", r"\D+", r"\w+", r"\W+", r"\s+", r"\S+", r"[\s\S]*", r"[^\s]*", r"[a\S]*",
    r"[^a\S]*", r"[\d_]+", r"[^\w]+", r"\bcat\b[\s\S]*", r"[\s\S]*\Bat", r"ab$", r"(?:ab|cd)+$",
    r"[$]", r"[\u00e9\s]+",
]  # fmt: skip
PARTING_VALUES = [
    "", "123", "߀", "١", "৪", "é", "a_1", "ａ", " ", "\xa0", "\ufeff", "\u2028", "\u3000",
    "\x1c", "\x85", "\t\n", "ab", "ab\n", "cdab\n", "cat", "ßcat", "écat", "\u200b", "$", "x]",
    "x\u1680", "\U0001f600",
]  # fmt: skip


@pytest.mark.parametrize("pattern", SHARED_SYNTAX)
def test_regex_verdicts_are_ecma_262s(pattern: str) -> None:
    import regress

    ecma = regress.Regex(f"^(?:{pattern})$", flags="u")
    for value in PARTING_VALUES:
        expected = TRUE if ecma.find(value) is not None else FALSE
        assert run("regex", pattern, value) == expected, (pattern, value)


def test_regex_whitespace_is_ecma_262s_over_the_whole_bmp() -> None:
    import regress

    ecma = regress.Regex(r"^\s$", flags="u")
    space, non_space = compile_regex(r"\s"), compile_regex(r"[\S]")
    for code in [*range(0xD800), *range(0xE000, 0x10000), 0x10000, 0x10FFFF]:
        char = chr(code)
        assert (space.fullmatch(char) is not None) is (ecma.find(char) is not None), hex(code)
        assert (non_space.fullmatch(char) is None) is (ecma.find(char) is not None), hex(code)


def test_regex_class_with_a_leading_bracket_is_read_as_python_does() -> None:
    assert run("regex", r"[]\s]+", "]\xa0") == TRUE  # Python's `]` first is literal
    assert run("regex", r"[^]\S]", "\xa0") == TRUE


def test_regex_dot_keeps_pythons_reach() -> None:
    # ECMA-262's `.` stops at \r, U+2028 and U+2029; a deny rule's `.*` should not
    assert run("regex", ".*secret.*", "a\rsecret") == TRUE
    assert run("regex", ".*secret.*", "a\u2028secret") == TRUE


@pytest.mark.parametrize("pattern", ["(?m)a$", "a(?m:$)", "(?x)a b", "(?u)a"])
def test_regex_flags_that_change_the_reading_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="bad regex"):
        compile_regex(pattern)


def test_regex_case_folding_is_ascii() -> None:
    assert run("regex", "(?i)key", "KEY") == TRUE
    assert run("regex", "(?i)key", "\u212aey") == FALSE  # KELVIN SIGN folds to k in Unicode


# ----------------------------------------------------------------- numbers and scalars


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 100, FALSE),
        ("gt", 100.000001, TRUE),
        ("gte", 100, TRUE),
        ("lt", 100, FALSE),
        ("lte", 100, TRUE),
        ("lte", 100.0, TRUE),
        ("gt", 10**400, TRUE),  # exact big-int comparison, no float overflow
        ("gt", -(10**400), FALSE),
        ("gt", float("nan"), ERROR),  # NaN never reaches a comparison
        ("lte", float("nan"), ERROR),
        ("lte", float("inf"), ERROR),
        ("gt", True, ERROR),  # a boolean is not a number
        ("gt", "101", ERROR),  # neither is a string
        ("gt", None, ERROR),
    ],
)
def test_numbers_at_the_limits(op: str, value: Any, expected: int) -> None:
    assert run(op, 100, value) == expected


def test_nan_inside_a_list_is_an_error_for_contains() -> None:
    assert run("contains", 1, [float("nan"), 1]) == ERROR


def test_equals_keeps_booleans_apart_from_numbers() -> None:
    assert run("equals", 1, True) == FALSE
    assert run("equals", True, 1) == FALSE
    assert run("equals", 1, 1.0) == TRUE
    assert run("equals", "1", 1) == FALSE
    assert run("equals", None, None) == TRUE
    assert run("equals", "a", {"x": 1}) == ERROR
    assert run("in", [1, "a"], True) == FALSE
    assert run("not_in", ["EUR"], "USD") == TRUE
    assert run("not_in", ["EUR"], ["EUR"]) == ERROR


def test_string_and_list_operators() -> None:
    assert run("prefix", "ab", "abc") == TRUE
    assert run("prefix", "ab", 5) == ERROR
    assert run("contains", "b", "abc") == TRUE
    assert run("contains", "x", ["x", "y"]) == TRUE
    assert run("contains", "x", 3) == ERROR
    assert run("max_len", 3, "abc") == TRUE
    assert run("max_len", 3, "abcd") == FALSE
    assert run("max_items", 1, [1, 2]) == FALSE
    assert run("max_items", 1, "ab") == ERROR


# ----------------------------------------------------------------- fields and logic


def test_a_missing_field_is_false_for_every_operator() -> None:
    for op, arg in [
        ("equals", 1),
        ("in", ["a"]),
        ("not_in", ["a"]),  # "not in the list" does not hold for nothing either
        ("regex", "a+"),
        ("gt", 0),
        ("max_len", 3),
        ("path_under", ["."]),
        ("url", UrlSpec()),
        ("ip_in", ["10.0.0.0/8"]),
        ("exists", True),
    ]:
        assert build_field_test("args.nope", [(op, arg)]).evaluate({}, CTX) == FALSE, op
    guarded = build_field_test("args.nope", [("exists", True), ("equals", 1)])
    assert guarded.evaluate({}, CTX) == FALSE
    absent = build_field_test("args.nope", [("exists", False)])
    assert absent.evaluate({}, CTX) == TRUE
    assert absent.evaluate({"nope": None}, CTX) == FALSE
    # `exists: false` with another operator: the other one does not hold for nothing.
    both = build_field_test("args.nope", [("exists", False), ("equals", 1)])
    assert both.evaluate({}, CTX) == FALSE


def test_an_evaluation_error_needs_a_present_value() -> None:
    regex = build_field_test("args.v", [("regex", "[a-z]+")])
    assert regex.evaluate({"v": 12}, CTX) == ERROR  # present, wrong type
    assert regex.evaluate({}, CTX) == FALSE  # absent
    url = build_field_test("args.v", [("url", UrlSpec())])
    assert url.evaluate({"v": "http://user@host.example/"}, CTX) == ERROR
    ip = build_field_test("args.v", [("ip_in", ["10.0.0.0/8"])])
    assert ip.evaluate({"v": "1.2.3.999"}, CTX) == ERROR


def test_non_finite_numbers_are_present() -> None:
    nan = {"v": float("nan")}
    assert build_field_test("args.v", [("exists", True)]).evaluate(nan, CTX) == TRUE
    assert build_field_test("args.v", [("exists", False)]).evaluate(nan, CTX) == FALSE
    assert build_field_test("args.v", [("exists", True), ("gt", 1)]).evaluate(nan, CTX) == ERROR


def test_context_and_nested_fields() -> None:
    assert build_field_test("context.tenant", [("equals", "acme")]).evaluate({}, CTX) == TRUE
    assert build_field_test("context.region", [("in", ["eu"])]).evaluate({}, CTX) == TRUE
    assert build_field_test("context.conversation_id", [("equals", "x")]).evaluate({}, CTX) == FALSE
    nested = build_field_test("args.a.0.b", [("equals", 2)])
    assert nested.evaluate({"a": [{"b": 2}]}, CTX) == TRUE
    assert nested.evaluate({"a": []}, CTX) == FALSE


def _const(result: int) -> FieldTest:
    # equals 1 on args.k<result>: TRUE for 1, FALSE for 2, ERROR for an object.
    return build_field_test(f"args.k{result}", [("equals", 1)])


ARGS = {f"k{TRUE}": 1, f"k{FALSE}": 2, f"k{ERROR}": {"not": "a scalar"}}


@pytest.mark.parametrize("a", [TRUE, FALSE, ERROR])
@pytest.mark.parametrize("b", [TRUE, FALSE, ERROR])
def test_kleene_logic(a: int, b: int) -> None:
    order = {FALSE: 0, ERROR: 1, TRUE: 2}
    value = {0: FALSE, 1: ERROR, 2: TRUE}
    assert AllNode([_const(a), _const(b)]).evaluate(ARGS, CTX) == value[min(order[a], order[b])]
    assert AnyNode([_const(a), _const(b)]).evaluate(ARGS, CTX) == value[max(order[a], order[b])]
    assert NotNode(_const(a)).evaluate(ARGS, CTX) == value[2 - order[a]]


def test_not_of_a_missing_field_holds() -> None:
    assert NotNode(build_field_test("args.nope", [("equals", 1)])).evaluate({}, CTX) == TRUE


def test_explain_names_failed_conditions() -> None:
    node = AllNode(
        [
            build_field_test("args.path", [("path_under", ["/w"])]),
            build_field_test("args.size", [("lte", 10)]),
        ]
    )
    result, failures = node.explain({"path": "/etc/x"}, CTX)
    assert result == FALSE
    assert failures == [
        "args.path: path_under ['/w'] did not hold",
        "args.size: missing, so it does not hold (args.size {lte: 10})",
    ]
