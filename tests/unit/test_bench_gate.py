"""`agentrt bench gate` times the gate and its json.loads baseline taking turns."""

from __future__ import annotations

from runtime.bench.gate import _time_interleaved


def test_functions_are_timed_in_alternating_blocks() -> None:
    calls: list[str] = []
    timings = _time_interleaved(
        [lambda: calls.append("a"), lambda: calls.append("b")], iterations=5, block=2
    )
    assert [len(t) for t in timings] == [5, 5]
    assert "".join(calls) == "aabbaabbab"
    assert all(t >= 0 for t in timings[0] + timings[1])
