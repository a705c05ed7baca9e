"""Timing and reporting shared by the benchmarks: alternating repetitions, medians, table rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    name: str
    value: str
    anchor: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None  # None: reported, no verdict

    def line(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.3f}"
        verdict = {True: "PASS", False: "MISS", None: ""}[self.ok]
        return f"| {self.name} | {self.value} | {self.anchor} | {ratio} | {self.target} | {verdict} |"


@dataclass(frozen=True)
class Config:
    quick: bool
    reps: int
    size: int
    steps: int

    @property
    def verdicts(self) -> bool:
        return not self.quick


def seconds(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(runs: dict[str, Callable], reps: int, warmup: dict[str, Callable] | None = None) -> dict[str, float]:
    """Warm each up once, then A, B, A, B, ...; the median per name."""
    for fn in (warmup or runs).values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            times[name].append(seconds(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(cfg: Config, ok: bool) -> bool | None:
    return ok if cfg.verdicts else None
