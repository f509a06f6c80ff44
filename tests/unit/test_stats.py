"""One percentile definition (nearest rank) for benches, audit stats and eval reports."""

from __future__ import annotations

import math
import random

import pytest

from runtime.stats import percentile

TEN = [float(v) for v in range(1, 11)]  # 1..10


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, 1.0), (0.1, 1.0), (0.11, 2.0), (0.5, 5.0), (0.95, 10.0), (0.9, 9.0), (1.0, 10.0)],
)
def test_nearest_rank_on_ten_values(fraction: float, expected: float) -> None:
    assert percentile(TEN, fraction) == expected


def test_order_of_the_input_does_not_matter() -> None:
    shuffled = TEN[:]
    random.Random(7).shuffle(shuffled)
    assert [percentile(shuffled, f) for f in (0.5, 0.95, 0.99)] == [5.0, 10.0, 10.0]


def test_a_rank_that_float_arithmetic_puts_a_hair_above_a_whole_number() -> None:
    # 100 * 0.07 is 7.000000000000001: the 7th value, not the 8th.
    assert percentile(range(1, 101), 0.07) == 7.0
    assert percentile(range(1, 21), 0.95) == 19.0


def test_always_one_of_the_values() -> None:
    assert percentile([1.0, 2.0], 0.5) == 1.0  # no interpolation to 1.5
    assert percentile([3.5], 0.99) == 3.5


def test_no_values_is_nan() -> None:
    assert math.isnan(percentile([], 0.5))


@pytest.mark.parametrize("fraction", [-0.1, 1.5, 95])
def test_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile(TEN, fraction)


def test_audit_stats_use_it() -> None:
    import array

    from runtime.audit.query import _durations

    stats = _durations(array.array("d", [5.0, 1.0, 4.0, 2.0, 3.0]))
    assert (stats.count, stats.p50, stats.p95) == (5, 3.0, 5.0)
    empty = _durations(array.array("d"))
    assert (empty.count, empty.p50, empty.p95) == (0, None, None)
