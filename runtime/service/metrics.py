"""Prometheus text exposition of one replica's runs and calls (counters and histograms)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

__all__ = ["Metrics"]

_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_S) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS_S, seconds)] += 1
        self.total += seconds
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(_BUCKETS_S, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {self.total:.6f}")
        out.append(f"{name}_count{braces} {self.n}")
        return out


class Metrics:
    """Counters and latency histograms; thread-safe. Each replica exports its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: Counter[str] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._run_latency = _Histogram()
        self._call_latency: dict[str, _Histogram] = {}
        self._http: Counter[tuple[str, str]] = Counter()

    def run_finished(self, status: str, seconds: float) -> None:
        with self._lock:
            self._runs[status] += 1
            self._run_latency.observe(seconds)

    def call_finished(self, tool: str, status: str, seconds: float) -> None:
        with self._lock:
            self._calls[(tool, status)] += 1
            self._call_latency.setdefault(tool, _Histogram()).observe(seconds)

    def request(self, method: str, code: int) -> None:
        with self._lock:
            self._http[(method, str(code))] += 1

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP agentrt_runs_total Agent runs by final status.",
                "# TYPE agentrt_runs_total counter",
            ]
            lines += [
                f'agentrt_runs_total{{status="{s}"}} {n}' for s, n in sorted(self._runs.items())
            ]
            lines += [
                "# HELP agentrt_calls_total Tool calls by tool and status.",
                "# TYPE agentrt_calls_total counter",
            ]
            lines += [
                f'agentrt_calls_total{{tool="{_label(t)}",status="{s}"}} {n}'
                for (t, s), n in sorted(self._calls.items())
            ]
            lines += [
                "# HELP agentrt_run_duration_seconds Wall time of one run (or resumption).",
                "# TYPE agentrt_run_duration_seconds histogram",
                *self._run_latency.lines("agentrt_run_duration_seconds", ""),
                "# HELP agentrt_call_duration_seconds Wall time of one tool call through the gate.",
                "# TYPE agentrt_call_duration_seconds histogram",
            ]
            for tool, hist in sorted(self._call_latency.items()):
                lines += hist.lines("agentrt_call_duration_seconds", f'tool="{_label(tool)}"')
            lines += [
                "# HELP agentrt_http_requests_total HTTP requests by method and status code.",
                "# TYPE agentrt_http_requests_total counter",
            ]
            lines += [
                f'agentrt_http_requests_total{{method="{m}",code="{c}"}} {n}'
                for (m, c), n in sorted(self._http.items())
            ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
