"""What ``EngineSettings(compact=True)`` costs and saves, against the default engine.

    python -m benchmarks.scale [--quick] [--repeat N] [--instances N]

Both engines come from :func:`vudo_runtime.engine.get_engine` and run in this one process;
each round takes one sample of every row under each engine (the order alternating each
round), so load on the machine hits both alike. The table gives the median of each
column and the median of the per-round ratios compact / default.

Rows:
- instantiate: a fresh ``Store`` plus ``InstancePre.instantiate`` of a small Spirit (one
  64 KiB page, a 32-byte data segment, a mutable global), per instance; and the same
  with a 60 KiB data segment (compact copies it in, the default engine maps an image).
- memory loops (compact's explicit bounds checks), per round of one call of many rounds:
  read, add up and write back every i32 of the 64 KiB page (a loop-carried sum: latency
  bound); copy the low 32 KiB to the high half one i32 at a time (independent iterations:
  throughput bound, where a check per access shows most).
- add: a plain ``add(40, 2)`` call, per call: through wasmtime-py's ``Func.__call__``
  (which re-reads the function type each call), and through the C API's
  ``wasmtime_func_call_unchecked`` as vudo's fast path makes it.
- grow: ``memory.grow`` by one page at a time from 1 page up (compact moves the memory
  and copies it each time), per call to ``grow``.
- mappings: lines of ``/proc/self/maps`` added per live instance (``vm.max_map_count``
  caps a process at 65,530).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import wasmtime

from vudo_runtime.engine import EngineSettings, get_engine

try:  # the C API's unchecked call, as vudo_runtime._native's fast path uses it
    from wasmtime import _bindings as _b

    _dll: Any = _b.dll  # type: ignore[attr-defined]
    _RAW_CALL: Any = _dll._FuncPtr(("wasmtime_func_call_unchecked", _dll))
    _RAW_CALL.restype = ctypes.c_void_p
except (ImportError, AttributeError):  # pragma: no cover - other wasmtime builds
    _RAW_CALL = None

SPIRIT_WAT = r"""
(module
  (memory (export "memory") 1)
  (data (i32.const 1024) "a small DOL Spirit's data segment")
  (global $g (export "g") (mut i32) (i32.const 7))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  ;; rounds x (every i32 of the page: load it, add it up, store a mix back)
  (func (export "churn") (param $rounds i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $round
      (local.set $i (i32.const 0))
      (loop $word
        (local.set $acc (i32.add (local.get $acc) (i32.load (local.get $i))))
        (i32.store (local.get $i) (i32.xor (local.get $acc) (local.get $i)))
        (br_if $word
          (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (i32.const 65536))))
      (br_if $round (local.tee $rounds (i32.sub (local.get $rounds) (i32.const 1)))))
    (local.get $acc))
  ;; rounds x (copy the low 32 KiB of the page to the high half, one i32 at a time)
  (func (export "copy") (param $rounds i32)
    (local $i i32)
    (loop $round
      (local.set $i (i32.const 0))
      (loop $word
        (i32.store offset=32768 (local.get $i) (i32.load (local.get $i)))
        (br_if $word
          (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (i32.const 32768))))
      (br_if $round (local.tee $rounds (i32.sub (local.get $rounds) (i32.const 1)))))))
"""

#: The same Spirit with 60 KiB of data segments.
BIG_DATA_WAT = SPIRIT_WAT.replace(
    '(data (i32.const 1024) "a small DOL Spirit\'s data segment")',
    '(data (i32.const 1024) "' + "\\2a" * (60 * 1024) + '")',
)

ENGINES = {"default": EngineSettings(), "compact": EngineSettings(compact=True)}


def _maps() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux
        return 0


def _func(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> wasmtime.Func:
    func = instance.exports(store)[name]
    assert isinstance(func, wasmtime.Func), name
    return func


class Side:
    """One engine's compiled Spirits and a live instance to call."""

    def __init__(self, settings: EngineSettings) -> None:
        self.engine = get_engine(settings)
        linker = wasmtime.Linker(self.engine)
        self.pre = linker.instantiate_pre(
            wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(SPIRIT_WAT)))
        )
        self.big_pre = linker.instantiate_pre(
            wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(BIG_DATA_WAT)))
        )
        self.store, instance = self.spawn(self.pre)
        self.add = _func(self.store, instance, "add")
        self.churn = _func(self.store, instance, "churn")
        self.copy = _func(self.store, instance, "copy")

    def spawn(self, pre: wasmtime.InstancePre) -> tuple[wasmtime.Store, wasmtime.Instance]:
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1 << 62)  # no ticker in this process: never interrupted
        return store, pre.instantiate(store)


#: One sample: seconds per operation, on one side.
Bench = Callable[[Side], float]


def _instantiate(pre_of: Callable[[Side], wasmtime.InstancePre], batch: int) -> Bench:
    def run(side: Side) -> float:
        pre = pre_of(side)
        keep = []
        start = time.perf_counter()
        for _ in range(batch):
            keep.append(side.spawn(pre))
        elapsed = time.perf_counter() - start
        del keep  # freed outside the timing
        return elapsed / batch

    return run


def _loop(export: str, rounds: int) -> Bench:
    def run(side: Side) -> float:
        func = getattr(side, export)
        start = time.perf_counter()
        func(side.store, rounds)
        return (time.perf_counter() - start) / rounds

    return run


def _add(calls: int) -> Bench:
    def run(side: Side) -> float:
        add, store = side.add, side.store
        start = time.perf_counter()
        for _ in range(calls):
            add(store, 40, 2)
        return (time.perf_counter() - start) / calls

    return run


def _raw_add(calls: int) -> Bench:
    """``add(40, 2)`` through ``wasmtime_func_call_unchecked``: little Python in the way."""

    def run(side: Side) -> float:
        if _RAW_CALL is None:
            return float("nan")
        buf = ctypes.create_string_buffer(32)  # two 16-byte raw values
        ints = memoryview(buf).cast("B").cast("i")
        ctx = ctypes.c_void_p(ctypes.cast(side.store._context(), ctypes.c_void_p).value)
        func = ctypes.c_void_p(ctypes.addressof(side.add._func))
        addr, two, trap = (
            ctypes.c_void_p(ctypes.addressof(buf)),
            ctypes.c_size_t(2),
            ctypes.c_void_p(),
        )
        trap_p = ctypes.c_void_p(ctypes.addressof(trap))
        start = time.perf_counter()
        for _ in range(calls):
            ints[0] = 40
            ints[4] = 2
            if _RAW_CALL(ctx, func, addr, two, trap_p) or trap.value:
                raise RuntimeError("add failed")
        elapsed = time.perf_counter() - start
        if ints[0] != 42:
            raise RuntimeError(f"add(40, 2) returned {ints[0]}")
        return elapsed / calls

    return run


def _grow(pages: int) -> Bench:
    def run(side: Side) -> float:
        store, instance = side.spawn(side.pre)
        grow = _func(store, instance, "grow")
        start = time.perf_counter()
        for expected in range(1, pages):
            if grow(store, 1) != expected:
                raise RuntimeError("memory.grow failed")
        return (time.perf_counter() - start) / (pages - 1)

    return run


def _mappings_per_instance(side: Side, count: int) -> float:
    gc.collect()
    before = _maps()
    keep = [side.spawn(side.pre) for _ in range(count)]
    added = _maps() - before
    del keep
    return added / count


def _fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} us"
    return f"{seconds * 1e9:.3g} ns"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: about a second")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (samples per cell)")
    parser.add_argument(
        "--instances", type=int, default=None, help="live instances for the mappings row"
    )
    parser.add_argument(
        "--spirits", type=int, default=0, help="also load this many live Spirits (public API)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    repeat = args.repeat or (3 if quick else 15)
    instances = args.instances or (500 if quick else 10_000)

    sides = {name: Side(settings) for name, settings in ENGINES.items()}
    rows: list[tuple[str, Bench]] = [
        ("instantiate (Store + InstancePre)", _instantiate(lambda s: s.pre, 50 if quick else 500)),
        (
            "instantiate, 60 KiB data segment",
            _instantiate(lambda s: s.big_pre, 20 if quick else 200),
        ),
        ("memory loop: load/add/store 64 KiB", _loop("churn", 20 if quick else 2_000)),
        ("memory loop: copy 32 KiB by i32", _loop("copy", 20 if quick else 4_000)),
        ("add(40, 2): wasmtime-py Func call", _add(1_000 if quick else 20_000)),
        ("add(40, 2): unchecked C call", _raw_add(2_000 if quick else 100_000)),
        ("memory.grow by 1 page, 1 -> N", _grow(16 if quick else 256)),
    ]
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(repeat):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for label, bench in rows:
            for name in order:
                samples.setdefault((label, name), []).append(bench(sides[name]))

    print(
        f"compact vs default engine: medians of {repeat} interleaved samples; "
        "ratio = median of per-round compact/default"
    )
    print(f"{'':36} {'default':>10} {'compact':>10} {'ratio':>7}")
    for label, _ in rows:
        base, comp = samples[(label, "default")], samples[(label, "compact")]
        ratio = statistics.median(c / b for c, b in zip(comp, base, strict=True))
        print(
            f"{label:36} {_fmt(statistics.median(base)):>10} "
            f"{_fmt(statistics.median(comp)):>10} {ratio:6.2f}x"
        )
    per = {name: _mappings_per_instance(side, instances) for name, side in sides.items()}
    print(
        f"{'mappings per live instance (' + str(instances) + ')':36} "
        f"{per['default']:>10.2f} {per['compact']:>10.2f}"
    )
    print(f"(/proc/self/maps now {_maps()} lines; vm.max_map_count default 65530)")
    if args.spirits:
        _live_spirits(args.spirits)
    return 0


LIVE_WAT = b"""(module (memory (export "memory") 1) (data (i32.const 1024) "a small Spirit")
  (global $n (mut i32) (i32.const 0))
  (func (export "bump") (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n)))"""


def _live_spirits(count: int) -> None:
    """``count`` live Spirits through the public API (compact=True), all at once."""
    import resource

    from vudo_runtime import Spirit

    start_maps = _maps()
    began = time.perf_counter()
    spirits = [Spirit.load_sync(LIVE_WAT, compact=True, cache=False) for _ in range(count)]
    made = time.perf_counter() - began
    assert all(s.call_sync("bump") == 1 for s in spirits[:: max(1, count // 100)])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{count:,} live Spirits (Spirit.load_sync, compact=True): {made:.1f} s, "
        f"{made / count * 1e6:.0f} us each; +{_maps() - start_maps} mappings; "
        f"peak RSS {rss:,.0f} MiB"
    )
    began = time.perf_counter()
    for spirit in spirits:
        spirit.close()
    print(f"  closing them: {(time.perf_counter() - began) / count * 1e6:.0f} us each")


if __name__ == "__main__":
    sys.exit(main())
