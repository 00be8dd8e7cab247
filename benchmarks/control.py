"""Control of running guests, side by side: what a cancelled call costs afterwards, and
what the per-thread stack check and the epoch callback add to ``call_sync``.

    python -m benchmarks.control [--repeat N]

Rows:
- CPU burned (percent of one core) in the 1 s after cancelling an awaited spinning call:
  vudo vs wasmtime-py run with ``loop.run_in_executor`` (asyncio's usual way to keep a
  blocking call off the loop, which cannot stop the thread).
- ``call_sync("add")`` vs the generated fast caller alone, and the stack check alone, so
  the check's share of a call is read off one run (medians of interleaved samples).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import statistics
import threading
import time
from pathlib import Path

import wasmtime

from vudo_runtime import Spirit, load_spirit
from vudo_runtime.threads import stack

ROOT = Path(__file__).parent.parent
SPIN_WAT = """(module
  (func (export "spin") (loop br 0))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"""


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def _burn_after_cancel_vudo() -> float:
    spirit = await load_spirit(SPIN_WAT.encode(), mode="thread")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(spirit.call("spin"), 0.2)
    before = _cpu()
    await asyncio.sleep(1.0)
    used = _cpu() - before
    spirit.close()
    return 100.0 * used


async def _burn_after_cancel_wasmtime(pool: concurrent.futures.Executor) -> float:
    engine_config = wasmtime.Config()
    engine_config.epoch_interruption = True
    engine = wasmtime.Engine(engine_config)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1)  # this engine's epoch moves only when we end the demo
    module = wasmtime.Module(engine, SPIN_WAT)
    spin = wasmtime.Instance(store, module, []).exports(store)["spin"]
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(pool, spin, store), 0.2)
    before = _cpu()
    await asyncio.sleep(1.0)
    used = _cpu() - before
    engine.increment_epoch()  # past the deadline: the demo's thread ends
    return 100.0 * used


def _per_call(fn: object, n: int) -> float:
    call = fn  # type: ignore[assignment]
    start = time.perf_counter()
    for _ in range(n):
        call(40, 2)  # type: ignore[operator]
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)

    vudo = asyncio.run(_burn_after_cancel_vudo())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        plain = asyncio.run(_burn_after_cancel_wasmtime(pool))
    print("CPU in the 1 s after cancelling a spinning awaited call (% of one core)")
    print(f"  vudo (interrupted at the next epoch tick)   {vudo:6.1f} %")
    print(f"  wasmtime-py via run_in_executor            {plain:6.1f} %")

    spirit = Spirit.load_sync(SPIN_WAT.encode())
    call_sync = spirit.call_sync
    fast = spirit._export("add").invoke

    def via_call_sync(a: int, b: int) -> object:
        return call_sync("add", a, b)

    def stack_check(a: int, b: int) -> object:
        return stack.ok

    samples: dict[str, list[float]] = {"call_sync": [], "caller": [], "check": []}
    for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
        samples["call_sync"].append(_per_call(via_call_sync, args.calls))
        samples["caller"].append(_per_call(fast, args.calls))
        samples["check"].append(_per_call(stack_check, args.calls))
        samples["check"][-1] -= _per_call(lambda a, b: None, args.calls)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"call_sync('add', 40, 2), medians of {args.repeat} x {args.calls} calls")
    print(f"  call_sync                                  {med['call_sync'] * 1e9:8.0f} ns")
    print(f"  the fast caller alone                      {med['caller'] * 1e9:8.0f} ns")
    print(f"  the stack check alone (threading.local)    {med['check'] * 1e9:8.0f} ns")
    print(f"  stack check / call_sync                    {med['check'] / med['call_sync']:8.1%}")
    print(f"  (main thread: stack check says ok={stack.ok}; threads {threading.active_count()})")
    spirit.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
