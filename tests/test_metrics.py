"""seance.stats(): per-Spirit counters and latency histograms; OpenTelemetry spans."""

from __future__ import annotations

import asyncio

import pytest
from conftest import CALCULATOR

from vudo_runtime import Seance, SpiritTimeout, SpiritTrap
from vudo_runtime.metrics import BUCKETS, SpiritStats

SPIN = b"""(module (memory (export "memory") 1)
  (func (export "spin") (loop br 0)) (func (export "boom") unreachable)
  (func (export "work") (param i32) (local i32)
    (loop (local.set 1 (i32.add (local.get 1) (i32.const 1)))
      (br_if 0 (i32.lt_u (local.get 1) (local.get 0))))))"""


def test_counters_and_latency() -> None:
    async def main() -> dict[str, SpiritStats]:
        async with Seance() as seance:
            await seance.summon("calc", CALCULATOR)
            await seance.summon("spin", SPIN, timeout=0.05, fuel=10**9)
            for i in range(10):
                assert await seance.invoke("calc", "add", i, 1) == i + 1
            with pytest.raises(SpiritTimeout):
                await seance.invoke("spin", "spin")
            with pytest.raises(SpiritTrap):
                await seance.invoke("spin", "boom")
            await seance.invoke("spin", "work", 1000)
            return seance.stats()

    stats = asyncio.run(main())
    calc, spin = stats["calc"], stats["spin"]
    assert (calc.calls, calc.traps, calc.timeouts, calc.fuel_used) == (10, 0, 0, 0)
    assert sum(calc.buckets) == 10 and len(calc.buckets) == len(BUCKETS) + 1
    assert 0 < calc.mean_seconds < 0.05 and calc.quantile(0.5) <= calc.quantile(0.99)
    assert (spin.calls, spin.traps, spin.timeouts) == (3, 2, 1)
    assert spin.fuel_used > 3000  # the loop of `work` alone burns about 4 per iteration
    assert spin.quantile(1.0) >= 0.05  # the timed-out call is in a slow bucket


def test_a_reused_instance_shows_as_a_pool_hit() -> None:
    async def main() -> bool:
        async with Seance() as seance:
            await seance.summon("a", CALCULATOR)
            await seance.release("a")  # its instance goes back to the manager, reset
            await seance.summon("a", CALCULATOR)
            return seance.stats()["a"].reused_instance

    assert asyncio.run(main())


def test_spans_for_invoke_request_and_message() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    export = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from vudo_runtime import metrics

    assert not metrics.tracing()  # the API's default provider: no spans, no cost
    exporter = export.InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    assert metrics.tracing()

    async def main() -> None:
        async with Seance() as seance:
            await seance.summon("calc", CALCULATOR)
            await seance.invoke("calc", "add", 1, 2)
            seance.send("host", "calc", b"hi")

    asyncio.run(main())
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["vudo.invoke"].attributes == {"vudo.spirit": "calc", "vudo.function": "add"}
    assert spans["vudo.message"].attributes["vudo.to"] == "calc"
