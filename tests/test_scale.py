"""100,000 live Spirits in one process: ``EngineSettings(compact=True)``.

Under the default engine every linear memory reserves 4 GiB plus a guard of address space
and takes 2-3 of the process's ``vm.max_map_count`` (65,530) mappings, so instantiation
fails with ENOMEM after about 21,800 instances of a module with a data segment. The
scale run happens in a subprocess: running out of mappings can abort a process (wasmtime
panics when a thread's first call cannot map its signal stack, or when freeing a memory
needs a mapping split), and pytest must survive that to report it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wasmtime

from vudo_runtime import cache
from vudo_runtime.cache import compile_module
from vudo_runtime.engine import EngineSettings, get_engine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # for benchmarks.scale
    sys.path.insert(0, str(ROOT))

#: Instances alive at once at the peak of the scale run.
LIVE = 100_000

#: A small Spirit: one 64 KiB page with a data segment, a mutable global, a few functions.
WAT = r"""
(module
  (memory (export "memory") 1)
  (data (i32.const 1024) "vudo spirit data segment")
  (global $g (export "g") (mut i32) (i32.const 7))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "bump") (result i32)
    (global.set $g (i32.add (global.get $g) (i32.const 1))) (global.get $g))
  (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "poke") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
"""

_SCRIPT = textwrap.dedent(
    """
    import json, random, sys, threading, time
    from vudo_runtime import Spirit

    wat, compact, live = sys.argv[1].encode(), sys.argv[2] == "1", int(sys.argv[3])
    rng = random.Random(20240601)

    def mappings():
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)

    report = {"start_maps": mappings()}

    def check(spirit, tag):
        assert spirit.call_sync("add", 40, 2) == 42, tag
        assert spirit.call_sync("peek", 1024) == ord("v"), tag  # its data segment is there
        g = spirit.call_sync("bump")  # each Spirit has its own global
        assert spirit.call_sync("bump") == g + 1, tag
        spirit.call_sync("poke", 60000, 0x01020304)
        assert spirit.call_sync("peek", 60000) == 4, tag

    def in_fresh_thread(spirit, tag):
        # A thread's first call into wasm maps its signal stack: with no mappings left
        # wasmtime would abort the process there.
        errors = []
        def run():
            try:
                check(spirit, tag)
            except BaseException as exc:
                errors.append(repr(exc))
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        assert not errors, errors

    def make(count, first):
        for i in range(first, first + count):
            try:
                spirits[i] = Spirit.load_sync(wat, compact=compact, cache=False)
            except Exception as exc:
                print(json.dumps({"failed_at": len(spirits), "maps": mappings(),
                                  "error": str(exc).splitlines()[0]}), flush=True)
                raise SystemExit(3)

    spirits = {}
    began = time.perf_counter()
    make(live, 0)
    report["made_s"] = round(time.perf_counter() - began, 2)
    report["peak_maps"] = mappings()
    in_fresh_thread(spirits[rng.randrange(live)], "after the first batch")
    check(spirits[0], "main thread")

    doomed = rng.sample(sorted(spirits), live // 2)  # release a random half
    for i in doomed:
        spirits.pop(i).close()
    report["half_freed_maps"] = mappings()
    in_fresh_thread(spirits[rng.choice(sorted(spirits))], "after freeing half")

    make(live // 2, live)  # and as many again: live is back at the peak
    report["refilled_maps"] = mappings()
    newest = spirits[live + live // 2 - 1]
    assert newest.call_sync("bump") == 8  # fresh (or reset): its global starts at 7
    in_fresh_thread(newest, "after refilling")
    assert newest.call_sync("grow", 3) == 1  # the memory moves: 4 pages
    assert newest.call_sync("peek", 1024) == ord("v")
    assert newest.call_sync("peek", 60000) == 4

    order = list(spirits)
    rng.shuffle(order)
    for i in order:  # release everything, in random order
        spirits.pop(i).close()
    report["end_maps"] = mappings()
    report["total_s"] = round(time.perf_counter() - began, 2)
    print(json.dumps(report), flush=True)
    """
)


def run_scale(
    compact: bool, live: int = LIVE, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, WAT, "1" if compact else "0", str(live)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # With RUST_BACKTRACE=1 a wasmtime panic out of mappings can hang (printing the
        # backtrace needs memory, and the lock is held) instead of aborting.
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc/self/maps")
def test_100k_live_compact_spirits_are_loaded_called_released_and_the_process_exits() -> None:
    proc = run_scale(compact=True)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    assert "panicked" not in proc.stderr, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # Neighbouring memories merge into few mappings: far below vm.max_map_count (65,530),
    # which 3 mappings per instance would exceed at about 21,800 instances.
    assert report["peak_maps"] - report["start_maps"] < 2_000, report
    assert report["refilled_maps"] - report["start_maps"] < 10_000, report
    assert report["half_freed_maps"] < 40_000, report  # about live / 4 holes, at random


def test_compact_and_default_engines_have_different_cache_keys() -> None:
    default, compact = EngineSettings(), EngineSettings(compact=True)
    assert default.key != compact.key
    assert EngineSettings(fuel=True).key != EngineSettings(fuel=True, compact=True).key
    assert "compact" not in default.key  # the default engine's cache entries stay valid


def test_modules_do_not_cross_between_compact_and_default_engines() -> None:
    wasm = bytes(wasmtime.wat2wasm(WAT))
    default, compact = get_engine(EngineSettings()), get_engine(EngineSettings(compact=True))
    assert default is not compact
    for built, other in ((default, compact), (compact, default)):
        blob = wasmtime.Module(built, wasm).serialize()
        with pytest.raises(wasmtime.WasmtimeError, match="memory reservation"):
            wasmtime.Module.deserialize(other, blob)


def test_compact_engine_bounds_checks_and_grows() -> None:
    engine = get_engine(EngineSettings(compact=True))
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 62)
    module = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(WAT)))
    exports = wasmtime.Instance(store, module, []).exports(store)

    def call(name: str, *args: int) -> object:
        func = exports[name]
        assert isinstance(func, wasmtime.Func)
        return func(store, *args)

    with pytest.raises(wasmtime.Trap, match="out of bounds"):
        call("peek", 65536)  # no guard page behind the page: the explicit check traps
    call("poke", 65532, 99)
    assert call("grow", 1) == 1  # the memory moves to a new mapping, contents and all
    assert call("peek", 65532) == 99 and call("peek", 65536) == 0
    with pytest.raises(wasmtime.Trap, match="out of bounds"):
        call("peek", 2 * 65536)


def test_compact_with_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match="compact"):
        get_engine(EngineSettings(compact=True, pooling=True))


def test_compact_and_default_modules_get_separate_cache_entries(tmp_path: Path) -> None:
    wasm = bytes(wasmtime.wat2wasm(WAT))
    settings = EngineSettings(), EngineSettings(compact=True)
    modules = [compile_module(wasm, s, cache=tmp_path) for s in settings]
    entries = {cache.entry_path(tmp_path, cache.wasm_digest(wasm), s).name for s in settings}
    assert len(entries) == 2
    assert {p.name for p in tmp_path.rglob("*.cwasm")} == entries
    for s, module in zip(settings, modules, strict=True):
        store = wasmtime.Store(get_engine(s))
        store.set_epoch_deadline(1 << 62)
        add = wasmtime.Instance(store, module, []).exports(store)["add"]
        assert isinstance(add, wasmtime.Func) and add(store, 40, 2) == 42


def test_scale_benchmark_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.scale import main

    assert main(["--quick", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("instantiate", "memory loop", "add(40, 2)", "memory.grow", "mappings"):
        assert row in out
