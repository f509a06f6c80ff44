"""The promotion rule, one clause at a time."""

from __future__ import annotations

from runtime.deploy.gate import decide_promotion
from runtime.finetune.evaluate import ItemScore, PredictedCall, Prediction


def _scores(call_right: list[bool], abstained: list[bool]) -> list[ItemScore]:
    calls = [
        ItemScore(f"c{i}", "single", True, ok, ok, ok, ok, False, ok)
        for i, ok in enumerate(call_right)
    ]
    chats = [
        ItemScore(f"n{i}", "no_tool", False, False, False, False, False, ok, ok)
        for i, ok in enumerate(abstained)
    ]
    return calls + chats


def _replies(n: int, text: str = "x", error: str | None = None) -> list[Prediction]:
    return [Prediction(text, (PredictedCall("t", "{}"),), error=error) for _ in range(n)]


def _decide(new: list[ItemScore], old: list[ItemScore], **kwargs: object) -> tuple[bool, str]:
    options = {
        "candidate_predictions": _replies(len(new), "new"),
        "incumbent_predictions": _replies(len(old), "old"),
        "against": "tools@v1",
        "against_base": False,
        **kwargs,
    }
    result = decide_promotion(new, old, **options)  # type: ignore[arg-type]
    return result.promote, " | ".join(result.reasons)


def test_equal_or_better_is_promoted() -> None:
    same = _scores([True, False, True], [True, True])
    assert _decide(same, same) == (True, "")
    better = _scores([True, True, True], [True, True])
    assert _decide(better, same) == (True, "")


def test_a_lower_full_call_rate_is_enough_to_reject() -> None:
    ok, why = _decide(_scores([True, False], []), _scores([True, True], []))
    assert not ok and "full-call rate 50.0 % is lower than tools@v1's 100.0 %" in why


def test_a_significant_loss_elsewhere_rejects_even_with_equal_full_calls() -> None:
    old = _scores([True] * 4, [True] * 8)
    new = _scores([True] * 4, [False] * 8)
    ok, why = _decide(new, old)
    assert not ok and "abstention: tools@v1 is better" in why and "overall" in why
    small_loss = _scores([True] * 4, [False] * 2 + [True] * 6)  # 2 discordant: p = 0.5
    assert _decide(small_loss, old) == (True, "")


def test_failed_requests_on_either_side_reject() -> None:
    scores = _scores([True], [True])
    ok, why = _decide(scores, scores, candidate_predictions=_replies(2, error="timeout: slow"))
    assert not ok and "2 request(s) to the new version failed (first: timeout: slow)" in why
    ok, why = _decide(scores, scores, incumbent_predictions=_replies(2, error="connection"))
    assert not ok and "not measured on the same data" in why


def test_identical_answers_reject_only_against_the_base() -> None:
    scores = _scores([False], [True])
    same = _replies(2, "I can only talk.")
    ok, why = _decide(scores, scores, candidate_predictions=same, incumbent_predictions=same,
                      against_base=True)  # fmt: skip
    assert not ok and "exactly as the base model did" in why
    ok, _ = _decide(scores, scores, candidate_predictions=same, incumbent_predictions=same)
    assert ok  # a retrained version that answers as the serving one is not worse
