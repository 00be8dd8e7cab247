"""Hostile modules and guests: never a crash, never a hang, always the runtime's own error.

wasmtime's C API aborts the process on some requests, so every probe that could take the
process down runs in a child process: a regression then fails its test (with the signal
or the time limit in the message) instead of killing pytest.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SPIRITS

from vudo_runtime import Spirit, SpiritLoadError, SpiritTrap

ROOT = Path(__file__).parent.parent


def _child(code: str, timeout: float = 60) -> list[str]:
    """Run ``code`` in a fresh interpreter; its stdout lines, once it exited normally."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the probe hung (killed after {timeout}s); output so far: {exc.stdout!r}")
    if proc.returncode < 0:
        how = signal.Signals(-proc.returncode).name
        pytest.fail(f"the probe died of {how}; after: {proc.stdout[-500:]!r}\n{proc.stderr[-800:]}")
    assert proc.returncode == 0, proc.stderr[-1500:]
    return proc.stdout.splitlines()


# ---- value types the C API cannot describe ----------------------------------------------

#: Asking wasmtime's C API for these signatures aborts the process (unimplemented!()).
UNDESCRIBABLE = {
    "anyref param": '(module (func (export "f") (param anyref)))',
    "exnref param": '(module (func (export "f") (param exnref)))',
    "i31ref result": '(module (func (export "f") (result i31ref) (ref.i31 (i32.const 1))))',
    "nullfuncref result": '(module (func (export "f") (result nullfuncref) (ref.null nofunc)))',
    "non-null externref": '(module (func (export "f") (param (ref extern))))',
    "non-null funcref": '(module (func (export "f") (param (ref func))))',
    "struct ref": (
        '(module (type $s (struct (field i32))) (func (export "f") (param (ref null $s))))'
    ),
    "typed funcref": '(module (type $t (func)) (func (export "f") (param (ref null $t))))',
    "v128 in a rec group": (
        "(module (rec (type $f (func (param v128))) (type $s (struct)))"
        ' (func (export "f") (type $f)))'
    ),
    "v128 in a subtype": (
        '(module (type $f (sub (func (result v128)))) (func (export "f") (type $f)'
        " (v128.const i64x2 0 0)))"
    ),
    "loa import of a non-null externref": (
        '(module (import "loa" "vudo_print" (func (param (ref extern)))))'
    ),
    "loa import returning nullfuncref": (
        '(module (import "loa" "vudo_random" (func (result nullfuncref))))'
    ),
    "loa import typed in a rec group": (
        "(module (rec (type $f (func (param v128))) (type $s (struct)))"
        ' (import "loa" "vudo_print" (func (type $f))))'
    ),
    "unknown import of anyref": '(module (import "other" "f" (func (result anyref))))',
}


def test_signatures_the_engine_cannot_describe_are_refused_on_every_path() -> None:
    lines = _child(
        f"""
        import asyncio, contextlib, io, tempfile, wasmtime
        from pathlib import Path
        from vudo_runtime import InstancePool, Seance, Spirit, cli
        from vudo_runtime.codegen.from_wasm import generate_from_wasm
        from vudo_runtime import SpiritLoadError

        async def summon(wasm):
            async with Seance() as seance:
                await seance.summon("s", wasm, cache=False)

        def outcome(fn):
            try:
                fn()
            except SpiritLoadError as exc:
                return "refused" if "cannot be hosted" in str(exc) else f"other: {{exc}}"
            return "accepted"

        def inspect(path, *extra):
            err = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = cli.main(["inspect", str(path), *extra])
            return "refused" if code == 2 and "cannot be hosted" in err.getvalue() else code

        directory = Path(tempfile.mkdtemp())
        for name, wat in {UNDESCRIBABLE!r}.items():
            wasm = bytes(wasmtime.wat2wasm(wat))
            path = directory / "probe.wasm"
            path.write_bytes(wasm)
            paths = {{
                "load": outcome(lambda: Spirit.load_sync(wasm, cache=False)),
                "pool": outcome(lambda: InstancePool(wasm, cache=False, shared=False)),
                "summon": outcome(lambda: asyncio.run(summon(wasm))),
                "codegen": outcome(lambda: generate_from_wasm(wasm, "probe.py")),
                "inspect": inspect(path),
                "inspect --json": inspect(path, "--json"),
            }}
            for how, result in paths.items():
                print(f"{{name}} / {{how}}: {{result}}", flush=True)
        """
    )
    assert len(lines) == 6 * len(UNDESCRIBABLE)
    assert [ln for ln in lines if not ln.endswith(": refused")] == []


def test_a_bit_flip_into_a_reference_type_is_refused() -> None:
    # Found by mutating the sample Spirits: vudo_random's `() -> f64` becomes
    # `() -> nullfuncref`, still a valid module; describing the import aborted the process.
    wasm = (SPIRITS / "abi_probe.wasm").read_bytes()
    assert wasm.count(bytes.fromhex("6000017c")) == 1
    mutated = wasm.replace(bytes.fromhex("6000017c"), bytes.fromhex("60000173"))
    lines = _child(
        f"""
        from vudo_runtime import Spirit
        from vudo_runtime import SpiritLoadError
        try:
            Spirit.load_sync({mutated!r}, cache=False)
        except SpiritLoadError as exc:
            print(exc)
        """
    )
    assert "import env.vudo_random (nullfuncref)" in "\n".join(lines)


def test_gc_types_inside_a_module_are_fine() -> None:
    wat = """
    (module
      (rec (type $node (sub (struct (field i32) (field (ref null $node)))))
           (type $pair (sub $node (struct (field i32) (field (ref null $node)) (field f64)))))
      (type $bytes (array (mut i8)))
      (type $cb (func (param (ref null $node)) (result i32)))
      (memory (export "memory") 1)
      (func $sum (type $cb) (local.get 0) (ref.is_null) (if (result i32) (then (i32.const 0))
        (else (i32.add (struct.get $node 0 (local.get 0))
                       (call $sum (struct.get $node 1 (local.get 0)))))))
      (func (export "total") (param i32) (result i32)
        (call $sum (struct.new $node (local.get 0)
                     (struct.new $pair (i32.const 2) (ref.null $node) (f64.const 0)))))
      (func (export "len") (result i32) (array.len (array.new_default $bytes (i32.const 5)))))
    """
    lines = _child(
        f"""
        import contextlib, io, json, tempfile, wasmtime
        from pathlib import Path
        from vudo_runtime import Spirit, cli
        wasm = bytes(wasmtime.wat2wasm({wat!r}))
        spirit = Spirit.load_sync(wasm, cache=False)
        print(spirit.list_functions(), spirit.call_sync("total", 40), spirit.call_sync("len"))
        path = Path(tempfile.mkdtemp()) / "gc.wasm"
        path.write_bytes(wasm)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["inspect", str(path), "--json"]) == 0
        print(sorted(json.loads(out.getvalue())["exports"]))
        """
    )
    assert lines == ["['total', 'len'] 42 5", "['len', 'memory', 'total']"]


def test_a_valid_module_the_reader_cannot_read_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from vudo_runtime import cache

    monkeypatch.setattr(cache, "read_interface", lambda wasm: None)
    wat = b'(module (func (export "f") (result i32) (i32.const 1)))'
    with pytest.raises(SpiritLoadError, match="encoding this runtime cannot read"):
        Spirit.load_sync(wat, cache=False)
    monkeypatch.undo()
    assert Spirit.load_sync(wat, cache=False).call_sync("f") == 1


# ---- imports ----------------------------------------------------------------------------


def test_an_import_declared_twice() -> None:
    twice = (
        '(module (import "loa" "vudo_print" (func $a (param i32 i32)))'
        ' (import "loa" "vudo_print" (func $b (param i32 i32)))'
        ' (memory (export "memory") 1) (data (i32.const 0) "ab")'
        ' (func (export "f") (call $a (i32.const 0) (i32.const 1))'
        " (call $b (i32.const 1) (i32.const 1))))"
    )
    out: list[str] = []
    Spirit.load_sync(twice.encode(), cache=False, stdout=out.append).call_sync("f")
    assert out == ["a", "b"]
    clash = (
        '(module (import "loa" "vudo_send" (func (param i32 i32 i32 i32) (result i32)))'
        ' (import "loa" "vudo_send" (func (param i32 i32 i32 i32 i32) (result i32))))'
    )
    with pytest.raises(SpiritLoadError, match=r"imports loa\.vudo_send twice"):
        Spirit.load_sync(clash.encode(), cache=False)


# ---- guests that would exhaust the host -------------------------------------------------


def test_tables_are_bounded() -> None:
    from vudo_runtime.engine import MAX_TABLE_ELEMENTS

    # Unbounded, table.grow by 2**31 made the host allocate 16 GiB (max_memory or not).
    grower = (
        '(module (table $t 1 funcref) (func (export "grow") (param i32) (result i32)'
        " (table.grow $t (ref.null func) (local.get 0))))"
    )
    spirit = Spirit.load_sync(grower.encode(), cache=False)
    assert spirit.call_sync("grow", 2**31) == -1
    assert spirit.call_sync("grow", MAX_TABLE_ELEMENTS) == -1
    assert spirit.call_sync("grow", 1000) == 1
    declared = f'(module (table {MAX_TABLE_ELEMENTS + 1} externref) (func (export "f")))'
    with pytest.raises(SpiritLoadError, match="table"):
        Spirit.load_sync(declared.encode(), cache=False)


def test_random_bytes_checks_the_range_before_making_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from vudo_runtime.loas import core

    asked: list[int] = []
    real = core.os.urandom
    monkeypatch.setattr(core.os, "urandom", lambda n: asked.append(n) or real(n))
    wat = (
        b'(module (import "loa" "vudo_random_bytes" (func $r (param i32 i32)))'
        b' (memory (export "memory") 1)'
        b' (func (export "fill") (param i32 i32) (call $r (local.get 0) (local.get 1))))'
    )
    spirit = Spirit.load_sync(wat, cache=False)
    with pytest.raises(SpiritTrap, match="out-of-bounds"):
        spirit.call_sync("fill", 0, -1)  # 4 GiB of random bytes for a 64 KiB memory
    spirit.call_sync("fill", 16, 32)
    assert asked == [32]


# ---- guests that would outlast their deadline -------------------------------------------


def test_vudo_sleep_ends_at_the_call_deadline() -> None:
    sleeper = (
        '(module (import "loa" "vudo_sleep" (func $sleep (param i32)))'
        ' (func (export "nap") (call $sleep (i32.const 0x7fffffff)) (loop $l (br $l)))'
        " (func $start (call $sleep (i32.const 0x7fffffff))) (start $start))"
    )
    lines = _child(
        f"""
        import time
        from vudo_runtime import Spirit
        from vudo_runtime import SpiritTimeout
        started = time.monotonic()
        spirit = Spirit.load_sync({sleeper!r}.encode(), cache=False, timeout=0.2)
        print("start function", time.monotonic() - started < 5)
        started = time.monotonic()
        try:
            spirit.call_sync("nap")
        except SpiritTimeout:
            print("nap timed out", time.monotonic() - started < 5)
        """,
        timeout=30,
    )
    assert lines == ["start function True", "nap timed out True"]


def test_a_guest_allocator_is_bounded_by_the_spirit_timeout() -> None:
    wat = (
        '(module (memory (export "memory") 1)'
        ' (func (export "alloc") (param i32) (result i32) (loop $l (br $l)) (i32.const 64))'
        ' (func (export "free") (param i32) (unreachable)))'
    )
    lines = _child(
        f"""
        import time
        from vudo_runtime import Spirit
        from vudo_runtime import MemoryAccessError
        spirit = Spirit.load_sync({wat!r}.encode(), cache=False, timeout=0.2)
        started = time.monotonic()
        try:
            spirit.memory.write_string("never written")
        except MemoryAccessError as exc:
            print("timed out" in str(exc), time.monotonic() - started < 5)
        """,
        timeout=30,
    )
    assert lines == ["True True"]


def test_a_trap_in_the_guest_free_is_a_spirit_trap() -> None:
    wat = (
        '(module (memory (export "memory") 1)'
        ' (func (export "alloc") (param i32) (result i32) (i32.const 64))'
        ' (func (export "free") (param i32) (unreachable)))'
    )
    spirit = Spirit.load_sync(wat.encode(), cache=False)
    assert spirit.memory is not None
    ptr = spirit.memory.write_string("x")
    with pytest.raises(SpiritTrap, match="unreachable"):
        spirit.memory.free(ptr)


def test_a_call_back_into_the_spirit_keeps_the_outer_deadline() -> None:
    lines = _child(
        """
        import time
        from vudo_runtime import Loa, LoaRegistry, Spirit
        from vudo_runtime import SpiritTimeout
        from vudo_runtime import HostFunction, WasmSignature

        def provides(ctx):
            def callback():
                ctx.spirit.call_sync("noop")  # its own deadline, then the outer one again
            return {"callback": HostFunction(callback, signature=WasmSignature((), ()))}

        registry = LoaRegistry([Loa(name="calls-back", provides=provides)])
        wat = (
            b'(module (import "loa" "callback" (func $cb)) (func (export "noop"))'
            b' (func (export "spin") (call $cb) (loop $l (br $l))))'
        )
        spirit = Spirit.load_sync(
            wat, loas=["core", "calls-back"], registry=registry, cache=False, timeout=0.2
        )
        started = time.monotonic()
        try:
            spirit.call_sync("spin")
        except SpiritTimeout:
            print("timed out", time.monotonic() - started < 5)
        """,
        timeout=30,
    )
    assert lines == ["timed out True"]


# ---- the native stack -------------------------------------------------------------------


def test_deep_recursion_on_worker_threads_traps_even_with_small_default_stacks() -> None:
    lines = _child(
        """
        import asyncio, threading
        threading.stack_size(256 * 1024)  # as on musl, whose threads get 128 KiB
        from vudo_runtime import InstancePool, Spirit
        from vudo_runtime import SpiritTrap
        wat = (
            b'(module (func $r (export "deep") (param i32) (result i32)'
            b' (i32.add (call $r (local.get 0)) (i32.const 1))))'
        )

        async def main():
            spirit = Spirit.load_sync(wat, cache=False)
            for run in (
                lambda: spirit.call("deep", 1, mode="thread"),
                lambda: InstancePool(wat, size=1, cache=False, shared=False).invoke(
                    "deep", 1, mode="thread"
                ),
            ):
                try:
                    await run()
                except SpiritTrap as exc:
                    print(exc.message)

        asyncio.run(main())
        print(threading.stack_size())  # the host's own setting is left alone
        """
    )
    assert lines == ["call stack exhausted", "call stack exhausted", str(256 * 1024)]
