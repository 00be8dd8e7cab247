"""The Ray backend: batched calls against local ones, and two CPU-bound Spirits on two actors.

    python -m benchmarks.ray_bench [--quick] [--repeat N]

Needs Ray (``pip install 'vudo-runtime[ray]'``); starts a local Ray with ``num_cpus=2``
and a RayBackend of two host actors. Rows (medians of ``--repeat`` interleaved samples):

1. ``calculator.add(i, 2)`` per call: a local ``await seance.invoke`` (10,000 calls in a
   loop), ``RaySeance.invoke_many`` of the same 10,000 calls (one actor call), and
   ``RaySeance.invoke`` one by one (an actor round trip each, so fewer calls). Goal:
   ``invoke_many`` within 2x of the local invoke.
2. Two ``loops.burn(n)`` calls (n sized so one takes about a second here): at once on two
   Ray actors vs one after the other on a local Séance; for context also the local
   Séance running both at once on its worker threads (``asyncio.gather``, ``mode="thread"``:
   wasm releases the GIL). Goal: a speed-up of at least 1.7x over the sequential run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

from vudo_runtime import Seance, Spirit

ROOT = Path(__file__).resolve().parent.parent
CALCULATOR = ROOT / "spirits" / "calculator.wasm"
LOOPS = ROOT / "spirits" / "loops.wasm"

GOAL_BATCH = 2.0  # invoke_many per call / local invoke per call, at most
GOAL_SPEEDUP = 1.7  # sequential local / two Ray actors at once, at least


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


async def _timed(run: Callable[[], Awaitable[Any]]) -> float:
    start = perf_counter()
    await run()
    return perf_counter() - start


async def bench_calls(backend: Any, calls: int, singles: int, repeat: int) -> dict[str, float]:
    """Per-call medians: local invoke, Ray invoke_many, Ray invoke one by one."""
    from vudo_runtime.ray_backend import RaySeance

    batch = [(i, 2) for i in range(calls)]
    samples: dict[str, list[float]] = {"local": [], "many": [], "single": []}
    async with Seance() as local, RaySeance(backend) as remote:
        await local.summon("calc", CALCULATOR)
        await remote.summon("calc", CALCULATOR)

        async def run_local() -> None:
            invoke = local.invoke
            for a, b in batch:
                await invoke("calc", "add", a, b)

        async def run_many() -> None:
            results = await remote.invoke_many("calc", "add", batch)
            assert results[-1] == calls + 1

        async def run_single() -> None:
            for i in range(singles):
                await remote.invoke("calc", "add", i, 2)

        runs = {"local": (run_local, calls), "many": (run_many, calls)}
        runs["single"] = (run_single, singles)
        for run, _ in runs.values():  # warm up: compiled, inline, actors awake
            await run()
        order = list(runs)
        for r in range(repeat):
            for key in order[r % 3 :] + order[: r % 3]:  # rotate the order each round
                run, count = runs[key]
                samples[key].append(await _timed(run) / count)
    return {key: statistics.median(values) for key, values in samples.items()}


def _burn_size(target: float) -> int:
    """Steps of loops.burn taking about ``target`` seconds on this machine."""
    with Spirit.load_sync(LOOPS) as spirit:
        n = 10**7
        spirit.call_sync("burn", n)
        start = perf_counter()
        spirit.call_sync("burn", n)
        took = perf_counter() - start
    return max(10**6, int(n * target / took))


async def bench_parallel(backend: Any, n: int, repeat: int) -> dict[str, float]:
    """Wall time of two burn(n) calls: sequential local, local threads, two Ray actors."""
    from vudo_runtime.ray_backend import RaySeance

    samples: dict[str, list[float]] = {"sequential": [], "threads": [], "ray": []}
    async with Seance() as local, RaySeance(backend) as remote:
        for name, actor in (("a", 0), ("b", 1)):
            await local.summon(name, LOOPS)
            await remote.summon(name, LOOPS, actor=actor)

        async def sequential() -> None:
            await local.invoke("a", "burn", n, mode="thread")
            await local.invoke("b", "burn", n, mode="thread")

        async def threads() -> None:
            await asyncio.gather(
                local.invoke("a", "burn", n, mode="thread"),
                local.invoke("b", "burn", n, mode="thread"),
            )

        async def on_ray() -> None:
            a, b = await asyncio.gather(
                remote.invoke("a", "burn", n), remote.invoke("b", "burn", n)
            )
            assert a == b

        for name in ("a", "b"):  # warm up: first calls, thread pools, actors
            await local.invoke(name, "burn", 1000, mode="thread")
            await remote.invoke(name, "burn", 1000)
        runs = {"sequential": sequential, "threads": threads, "ray": on_ray}
        order = list(runs)
        for r in range(repeat):
            for key in order[r % 3 :] + order[: r % 3]:
                samples[key].append(await _timed(runs[key]))
    return {key: statistics.median(values) for key, values in samples.items()}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: runs in seconds")
    parser.add_argument("--repeat", type=int, help="samples per row (default 5; quick 3)")
    args = parser.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("the Ray benchmark needs Ray: pip install 'vudo-runtime[ray]'", file=sys.stderr)
        return 2
    from vudo_runtime.ray_backend import RayBackend

    repeat = args.repeat or (3 if args.quick else 5)
    calls, singles = (1_000, 50) if args.quick else (10_000, 300)
    target = 0.25 if args.quick else 1.0

    started = perf_counter()
    backend = RayBackend(actors=2, init_kwargs={"num_cpus": 2})
    boot = perf_counter() - started
    try:
        per = asyncio.run(bench_calls(backend, calls, singles, repeat))
        n = _burn_size(target)
        wall = asyncio.run(bench_parallel(backend, n, repeat))
    finally:
        backend.close()

    print(
        f"Ray backend, Python {platform.python_version()}, ray {ray.__version__}, "
        f"{os.cpu_count()} CPUs, {backend.actors} host actors of "
        f"{backend.cpus_per_actor:g} CPU; ray.init + actors up: {boot:.1f} s; "
        f"medians of {repeat}"
    )
    print()
    ratio = per["many"] / per["local"]
    single = per["single"] / per["local"]
    rows = [
        (f"local `await seance.invoke(add)`, {calls:,} calls", _fmt(per["local"]), "1.00x", ""),
        (
            f"RaySeance.invoke_many(add), {calls:,} calls in one",
            _fmt(per["many"]),
            f"{ratio:.2f}x",
            f"goal <= {GOAL_BATCH:g}x: {_verdict(ratio <= GOAL_BATCH)}",
        ),
        (f"RaySeance.invoke(add) one by one, {singles} calls", _fmt(per["single"]),
         f"{single:.0f}x", ""),
    ]  # fmt: skip
    print(f"{'1. add, per call':<52} {'time':>10} {'vs local':>9}")
    for label, time, vs, goal in rows:
        print(f"  {label:<50} {time:>10} {vs:>9}  {goal}")
    print()
    speedup = wall["sequential"] / wall["ray"]
    threads = wall["sequential"] / wall["threads"]
    rows = [
        ("local Séance, one after the other", _fmt(wall["sequential"]), "1.00x", ""),
        (
            "2 Ray actors at once (asyncio.gather)",
            _fmt(wall["ray"]),
            f"{speedup:.2f}x",
            f"goal >= {GOAL_SPEEDUP:g}x: {_verdict(speedup >= GOAL_SPEEDUP)}",
        ),
        ("local Séance, gather on worker threads", _fmt(wall["threads"]), f"{threads:.2f}x",
         "(context)"),
    ]  # fmt: skip
    print(f"{f'2. two burn({n:,}) calls, wall time':<52} {'time':>10} {'speed-up':>9}")
    for label, time, vs, goal in rows:
        print(f"  {label:<50} {time:>10} {vs:>9}  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
