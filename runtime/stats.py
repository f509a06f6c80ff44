"""Summary statistics of measured samples: one percentile definition for the runtime.

Benchmarks (`agentrt bench`), `agentrt audit stats` and evaluation reports
all quote p50/p95/p99 figures; they use this one function, so a p95 means the
same thing in every report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["percentile"]

# n * fraction can land a hair above a whole number (0.07 * 100 is
# 7.000000000000001); without this slack such a rank would round up one too far.
_RANK_SLACK = 1e-9


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of
    the values at or below it (no interpolation: always one of the values).

    Args:
        values: The sample, in any order (values already sorted cost one
            linear pass to sort again).
        fraction: Between 0 and 1, e.g. 0.95 for p95; 0 gives the minimum.

    Returns:
        The percentile, or NaN when there are no values.

    Raises:
        ValueError: `fraction` is outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction!r} (p95 is 0.95)")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(len(ordered) * fraction - _RANK_SLACK))
    return float(ordered[rank - 1])
