"""The promotion rule: a new adapter version serves only if it is not worse.

Both the candidate (`NAME@vN`, just loaded) and the incumbent (the version now
serving `NAME`, or the base model for a first deploy) answer the same
held-out items on the same server; each item is scored as `agentrt eval`
scores it (`runtime.finetune.evaluate`). The candidate is **not worse**, and
is promoted, when all of these hold:

1. every request to either model got an answer (an error means the two were
   not measured on the same data);
2. its full-call rate on the items that expect a call is not lower than the
   incumbent's;
3. on none of full call (call items), abstention (no-tool items) and overall
   correctness (all items) is the incumbent significantly better: an exact
   McNemar test on the items only one of the two got right, two-sided,
   p < 0.05, with the incumbent ahead;
4. against the base model only: the candidate did not answer every item
   exactly as the base did (an adapter that changes nothing is most likely
   not applied at all, vLLM #34186).

Otherwise it is rejected, with each failed rule as a reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from runtime.finetune.evaluate import ItemScore, Prediction, paired_comparison, summarize

__all__ = ["SIGNIFICANCE", "GateResult", "decide_promotion"]

SIGNIFICANCE = 0.05
_METRICS = {"full_call": "full call", "abstained": "abstention", "correct": "overall"}


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The gate's decision and the figures behind it.

    Attributes:
        promote: Whether the candidate is not worse.
        reasons: Each rule it failed (empty when promoted).
        candidate: The candidate's rates (`summarize`).
        incumbent: The incumbent's rates.
        tests: Paired McNemar tests, `a` the incumbent and `b` the candidate.
        against: What the candidate was compared with (`NAME@vM` or the base's name).
    """

    promote: bool
    reasons: tuple[str, ...]
    candidate: dict[str, Any]
    incumbent: dict[str, Any]
    tests: tuple[dict[str, Any], ...]
    against: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": list(self.reasons),
            "against": self.against,
            "candidate": self.candidate,
            "incumbent": self.incumbent,
            "tests": list(self.tests),
            "rule": "not worse: no failed request, full-call rate not lower, no metric where "
            f"the incumbent is better with McNemar p < {SIGNIFICANCE}",
        }


def decide_promotion(
    candidate: Sequence[ItemScore],
    incumbent: Sequence[ItemScore],
    *,
    candidate_predictions: Sequence[Prediction],
    incumbent_predictions: Sequence[Prediction],
    against: str,
    against_base: bool,
) -> GateResult:
    """Decide whether `candidate` may replace `incumbent` (see the module docstring).

    Args:
        candidate: The new version's scores, in item order.
        incumbent: The serving version's (or the base's) scores, same items.
        candidate_predictions: The new version's replies (errors, identity with the base).
        incumbent_predictions: The incumbent's replies.
        against: The incumbent's served name, for the report.
        against_base: The incumbent is the base model (first deploy of a name).
    """
    tests = tuple(paired_comparison(incumbent, candidate, metric=m) for m in _METRICS)
    reasons: list[str] = []
    failed = sum(1 for p in candidate_predictions if p.error)
    if failed:
        first = next(p.error for p in candidate_predictions if p.error)
        reasons.append(f"{failed} request(s) to the new version failed (first: {first})")
    failed_incumbent = sum(1 for p in incumbent_predictions if p.error)
    if failed_incumbent:
        reasons.append(
            f"{failed_incumbent} request(s) to {against} failed, so the two were not measured "
            "on the same data"
        )
    full = tests[0]
    if full["items"] and (full["b_rate"] or 0.0) < (full["a_rate"] or 0.0):
        reasons.append(
            f"full-call rate {_pct(full['b_rate'])} is lower than {against}'s "
            f"{_pct(full['a_rate'])} on {full['items']} call items"
        )
    for test in tests:
        worse = test["a_only"] > test["b_only"] and test["p_value"] < SIGNIFICANCE
        if worse:
            reasons.append(
                f"{_METRICS[test['metric']]}: {against} is better ({test['a_only']} items right "
                f"only there, {test['b_only']} only here; McNemar p = {test['p_value']:.4f})"
            )
    if against_base and candidate_predictions and candidate_predictions == incumbent_predictions:
        reasons.append(
            "it answered every item exactly as the base model did: the adapter is probably not "
            "applied (module names the server does not map, vLLM #34186)"
        )
    return GateResult(
        promote=not reasons,
        reasons=tuple(reasons),
        candidate=_brief(summarize(candidate)),
        incumbent=_brief(summarize(incumbent)),
        tests=tests,
        against=against,
    )


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    summary.pop("by_category", None)
    return summary


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"
