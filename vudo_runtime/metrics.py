"""Per-Spirit counters and latency histograms for a Séance, and OpenTelemetry spans.

``seance.stats()`` reads them. Spans are made only when ``opentelemetry-api`` is
installed (``pip install "vudo-runtime[otel]"``) and the application has set a tracer
provider (an SDK) by the time the Séance is created; otherwise tracing costs nothing.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

try:  # optional: spans when the OpenTelemetry API is installed
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - depends on the environment
    _trace = None  # type: ignore[assignment]

#: Upper bounds of the latency buckets, in seconds (the last bucket is unbounded).
BUCKETS: tuple[float, ...] = (
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
    1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip


@attrs.frozen
class SpiritStats:
    """What one Spirit of a Séance did through ``invoke``: a snapshot."""

    calls: int
    traps: int  # failed calls, timeouts and interruptions included
    timeouts: int
    fuel_used: int  # summed over calls, for a Spirit loaded with fuel=
    reused_instance: bool  # its instance came from the manager's warm set (a pool hit)
    total_seconds: float
    #: Call counts per latency bucket: ``buckets[i]`` counts calls up to ``BUCKETS[i]``
    #: seconds; the last entry those slower than ``BUCKETS[-1]``.
    buckets: tuple[int, ...]

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.calls if self.calls else 0.0

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the ``q`` quantile (inf past the last)."""
        if not self.calls:
            return 0.0
        rank, seen = q * self.calls, 0
        for i, count in enumerate(self.buckets):
            seen += count
            if seen >= rank:
                return BUCKETS[i] if i < len(BUCKETS) else float("inf")
        return float("inf")


class Recorder:
    """The live counters of one Spirit (updated on the event loop thread only)."""

    __slots__ = ("buckets", "calls", "fuel_used", "reused", "timeouts", "total", "traps")

    def __init__(self, reused: bool) -> None:
        self.calls = self.traps = self.timeouts = self.fuel_used = 0
        self.total = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.reused = reused

    def record(self, seconds: float, *, failed: bool = False, timed_out: bool = False) -> None:
        self.calls += 1
        self.total += seconds
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        if failed:
            self.traps += 1
        if timed_out:
            self.timeouts += 1

    def count_fuel(self, spirit: Any, budget: int | None) -> None:
        """Add what the call just made used of ``budget`` (a Spirit loaded with fuel=)."""
        if budget is not None and not spirit.closed:
            with contextlib.suppress(Exception):  # a Store gone meanwhile: nothing to count
                self.fuel_used += budget - spirit.instance.store.get_fuel()

    def snapshot(self) -> SpiritStats:
        return SpiritStats(
            self.calls,
            self.traps,
            self.timeouts,
            self.fuel_used,
            self.reused,
            self.total,
            tuple(self.buckets),
        )


_tracer: Any = _trace.get_tracer("vudo_runtime") if _trace is not None else None


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
    """An OpenTelemetry span named ``name`` when the API is installed; else nothing."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=dict(attributes)):
        yield


def tracing() -> bool:
    """Whether spans are worth making: the OpenTelemetry API is installed and a tracer
    provider has been set (the API's default one drops every span, and a span through
    it still costs about 10 µs, several times an invoke)."""
    if _trace is None:
        return False
    return not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)
