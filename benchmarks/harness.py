"""Timing: calibrated batches, interleaved round-robin samples, medians and spreads.

A :class:`Bench` is one thing to time on one host. Every sample runs its operation ``n``
times in a tight loop (``n`` calibrated once so that a sample lasts about
``sample_time``), with the garbage collector off, and records seconds per logical
operation. The samples of all hosts of one case are taken round-robin, one sample per
host per repetition, in an order rotated each repetition, so that a noisy neighbour
or a frequency change hits every host alike.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any


class NotApplicable(Exception):
    """A host cannot do a case; the message is the short reason shown as ``n/a``."""


@dataclass
class Bench:
    """One measurable operation of one host.

    ``op(*args)`` is one operation (a coroutine function when ``is_async``). ``per``
    logical operations happen in one ``op`` call (a guest loop of 100,000 host calls has
    ``per=100_000``); results are reported per logical operation. With ``metric`` set,
    ``op`` returns the measured value itself (e.g. a percentage) instead of being timed.
    ``before``/``after`` run untimed around every sample; ``close`` once at the end.
    """

    label: str
    op: Callable[..., Any]
    args: tuple[Any, ...] = ()
    is_async: bool = False
    per: int = 1
    max_n: int = 1_000_000
    before: Callable[[], Any] | None = None
    after: Callable[[], Any] | None = None
    close: Callable[[], Any] | None = None
    metric: str | None = None
    note: str = ""
    nbytes: int | None = None  # payload per logical operation, for a throughput note
    host: str = ""
    n: int = 0  # calibrated batch size
    samples: list[float] = field(default_factory=list)
    error: str | None = None  # what the operation raised, if it failed


@dataclass
class Row:
    """A measured (or n/a) row of the report."""

    scenario: str
    case: str
    host: str
    label: str
    unit: str  # "s" (seconds per operation) or "%" (percent)
    samples: list[float]
    n: int = 0
    per: int = 1
    note: str = ""
    na: str | None = None
    nbytes: int | None = None
    baseline: bool = False

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def quartiles(self) -> tuple[float, float] | None:
        if len(self.samples) < 2:
            return None
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]


def paired_ratio(num: Row, den: Row) -> float | None:
    """Median over rounds of ``num``'s sample / ``den``'s sample of the same round.

    Samples are taken round-robin, so the i-th samples of two benches of one case ran
    seconds apart: their ratio cancels slow drifts (a neighbour's load) that a ratio of
    medians keeps.
    """
    pairs = [a / b for a, b in zip(num.samples, den.samples, strict=False) if b]
    return statistics.median(pairs) if pairs else None


class Timer:
    """Runs benches: sync ones directly, async ones inside one long-lived event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sample_time: float) -> None:
        self.loop = loop
        self.sample_time = sample_time

    def _batch(self, bench: Bench, n: int) -> float:
        """Seconds for ``n`` calls of ``bench.op`` (GC off, hooks untimed)."""
        if bench.before is not None:
            bench.before()
        op, args = bench.op, bench.args
        enabled = gc.isenabled()
        gc.disable()
        try:
            if bench.is_async:
                elapsed = self.loop.run_until_complete(_async_batch(op, args, n))
            else:
                r = range(n)
                t0 = perf_counter()
                for _ in r:
                    op(*args)
                elapsed = perf_counter() - t0
        finally:
            if enabled:
                gc.enable()
            if bench.after is not None:
                bench.after()
        return elapsed

    def _metric(self, bench: Bench) -> float:
        if bench.before is not None:
            bench.before()
        try:
            if bench.is_async:
                return float(self.loop.run_until_complete(bench.op(*bench.args)))
            return float(bench.op(*bench.args))
        finally:
            if bench.after is not None:
                bench.after()

    def calibrate(self, bench: Bench) -> None:
        """Warm the bench up and pick ``n`` so that one sample lasts about sample_time."""
        if bench.metric is not None:
            self._metric(bench)  # warm-up
            bench.n = 1
            return
        n = 1
        while True:
            t = self._batch(bench, n)
            if t >= self.sample_time / 4 or n >= bench.max_n:
                break
            grow = self.sample_time / 2 / max(t, 1e-7)
            n = min(bench.max_n, max(n * 2, int(n * grow)))
        bench.n = max(1, min(bench.max_n, round(n * self.sample_time / max(t, 1e-9))))

    def sample(self, bench: Bench) -> None:
        if bench.metric is not None:
            bench.samples.append(self._metric(bench))
        else:
            bench.samples.append(self._batch(bench, bench.n) / (bench.n * bench.per))


async def _async_batch(op: Callable[..., Any], args: tuple[Any, ...], n: int) -> float:
    t0 = perf_counter()
    for _ in range(n):
        await op(*args)
    return perf_counter() - t0


def describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0] if first else ''}".rstrip(": ")


def interleave(timer: Timer, benches: Sequence[Bench], repeat: int) -> None:
    """Calibrate every bench, then take ``repeat`` samples of each, round-robin.

    The order rotates each repetition; a bench whose operation raises is dropped
    from the rounds with the error recorded.
    """
    for bench in benches:
        try:
            timer.calibrate(bench)
        except Exception as exc:
            bench.error = describe(exc)
    gc.collect()
    for rep in range(repeat):
        k = rep % len(benches) if benches else 0
        for bench in list(benches[k:]) + list(benches[:k]):
            if bench.error is not None:
                continue
            try:
                timer.sample(bench)
            except Exception as exc:
                bench.error = describe(exc)


# ---- formatting ----------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} us"
    return f"{seconds * 1e9:.3g} ns"


def fmt_value(value: float, unit: str) -> str:
    return f"{value:.1f} %" if unit == "%" else fmt_time(value)


def fmt_rate(nbytes: float, seconds: float) -> str:
    rate = nbytes / seconds
    if rate >= 1e9:
        return f"{rate / 1e9:.2f} GB/s"
    return f"{rate / 1e6:.3g} MB/s"
