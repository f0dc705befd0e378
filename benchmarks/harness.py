"""Timing, statistics and reporting for the benchmark suite.

Samples are kept in base units (seconds or bytes) and only scaled for the
table. The machine is noisy, so every row reports the median and the p99
(nearest rank: with fewer than 100 runs the p99 is the slowest run).
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

Kind = Literal["time", "bytes"]
T = TypeVar("T")

MIB = 1024 * 1024
KIB = 1024


@dataclass(frozen=True)
class Goal:
    """An upper bound for the median, in base units (seconds or bytes)."""

    limit: float
    text: str

    def met_by(self, value: float) -> bool:
        return value <= self.limit


@dataclass(frozen=True)
class Result:
    name: str
    samples: tuple[float, ...]
    kind: Kind = "time"
    goal: Goal | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99.0)

    @property
    def goal_met(self) -> bool | None:
        return None if self.goal is None else self.goal.met_by(self.median)


def percentile(samples: tuple[float, ...] | list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


# -- measuring ----------------------------------------------------------------


def time_calls(op: Callable[[], object], runs: int, warmup: int = 20) -> list[float]:
    """Seconds per call of ``op``, one sample per call."""
    return time_with_setup(lambda: None, lambda _: op(), runs, warmup)


def time_with_setup(
    setup: Callable[[], T], op: Callable[[T], object], runs: int, warmup: int = 20
) -> list[float]:
    """Seconds per call of ``op(setup())``; the setup is not timed."""
    for _ in range(warmup):
        op(setup())
    gc.collect()
    samples = []
    clock = time.perf_counter
    for _ in range(runs):
        arg = setup()
        start = clock()
        op(arg)
        samples.append(clock() - start)
    return samples


@dataclass
class Laps:
    """Named phase timings collected over several runs of a multi-phase benchmark."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    @contextmanager
    def lap(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def result(self, name: str, label: str, goal: Goal | None = None, note: str = "") -> Result:
        return Result(label, tuple(self.samples[name]), "time", goal, note)


# -- reporting ----------------------------------------------------------------


def _scale(kind: Kind, reference: float) -> tuple[float, str]:
    if kind == "bytes":
        return (MIB, "MiB") if reference >= MIB else (KIB, "KiB")
    if reference >= 1.0:
        return 1.0, "s"
    return (1e-3, "ms") if reference >= 1e-3 else (1e-6, "µs")


def format_value(kind: Kind, value: float, reference: float | None = None) -> str:
    """``value`` scaled to a readable unit (the unit of ``reference`` when given)."""
    divisor, unit = _scale(kind, value if reference is None else reference)
    scaled = value / divisor
    digits = 0 if scaled >= 100 else 1 if scaled >= 10 else 2
    return f"{scaled:.{digits}f} {unit}"


def _goal_cell(result: Result) -> str:
    if result.goal is None:
        return ""
    return f"{result.goal.text} {'met' if result.goal_met else 'MISSED'}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(results: list[Result]) -> str:
    lines = [
        "| benchmark | n runs | median | p99 | goal | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        median = format_value(r.kind, r.median)
        p99 = format_value(r.kind, r.p99, reference=r.median)
        cells = [r.name, str(len(r.samples)), median, p99, _goal_cell(r), r.note]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def as_json(results: list[Result]) -> str:
    rows = [
        {
            "name": r.name,
            "runs": len(r.samples),
            "unit": "s" if r.kind == "time" else "bytes",
            "median": r.median,
            "p99": r.p99,
            "min": min(r.samples),
            "max": max(r.samples),
            "goal": None if r.goal is None else r.goal.text,
            "goal_limit": None if r.goal is None else r.goal.limit,
            "goal_met": r.goal_met,
            "note": r.note,
        }
        for r in results
    ]
    return json.dumps(rows, indent=2, ensure_ascii=False)
