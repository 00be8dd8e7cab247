"""One adapter per Python WebAssembly host, all with the same methods.

Each method sets a case up (untimed) and returns the :class:`Bench` list to time, or
raises :class:`NotApplicable` with the short reason shown as ``n/a``. Every adapter
checks once, at setup, that its operation computes the right answer, so that no host
is timed doing something else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import os
import string
from collections.abc import Awaitable, Callable
from importlib import metadata
from time import perf_counter
from typing import Any

from benchmarks.harness import Bench, NotApplicable
from benchmarks.workloads import (
    CALCULATOR,
    I64,
    LOOPS,
    Q2,
    STRINGS,
    U32,
    Context,
    wasm,
)

BEAT = 0.005  # heartbeat period, seconds
GUEST_PTR = 65536  # where the hosts without an allocator put their strings


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def text(size: int) -> str:
    """``size`` bytes of mixed-case ASCII text."""
    alphabet = string.ascii_letters + string.digits + " .,"
    return "".join(alphabet[(i * 7 + i // 13) % len(alphabet)] for i in range(size))


def _sink(_: Any) -> None:
    """Where printed guest text goes: nowhere."""


def checksum(s: str) -> int:
    return sum(s.encode())


def burn(n: int) -> int:
    """loops.wat ``burn`` in Python, as a signed i64."""
    x = n
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFF_FFFF_FFFF_FFFF
    return x - (1 << 64) if x >= 1 << 63 else x


def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


async def heartbeat(work: Callable[[], Awaitable[Any]]) -> float:
    """Percent of the BEAT-spaced ticks an asyncio task got while ``work()`` ran."""
    beats = 0
    running = True

    async def ticker() -> None:
        nonlocal beats
        while running:
            await asyncio.sleep(BEAT)
            beats += 1

    task = asyncio.get_running_loop().create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    t0 = perf_counter()
    beats = 0
    await work()
    elapsed = perf_counter() - t0
    running = False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return 100.0 * beats / (elapsed / BEAT)


def expect(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


class Host:
    """Base adapter: a host that is missing reports why, for every case."""

    name = "?"
    dists: tuple[str, ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sizes = ctx.sizes

    def versions(self) -> dict[str, str | None]:
        return {d: version_of(d) for d in self.dists}


class Unavailable(Host):
    """A host that does not import here; every case is n/a with the import error."""

    def __init__(self, ctx: Context, name: str, dists: tuple[str, ...], reason: str) -> None:
        super().__init__(ctx)
        self.name = name
        self.dists = dists
        self.reason = reason

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)

        def unavailable(*args: Any, **kwargs: Any) -> list[Bench]:
            raise NotApplicable(f"unavailable: {self.reason}")

        return unavailable


# ---- vudo-runtime -----------------------------------------------------------------------------


class VudoHost(Host):
    """vudo-runtime through its public API."""

    name = "vudo"
    dists = ("vudo-runtime", "wasmtime")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import vudo_runtime

        self.v = vudo_runtime

    def _load(self, source: Any, **options: Any) -> Any:
        return self.v.Spirit.load_sync(source, **options)

    # (1) call overhead
    def call_noop(self) -> list[Bench]:
        sp = self._load(CALCULATOR)
        expect(sp.call_sync("noop"), None, "noop")
        return [
            Bench("call_sync", sp.call_sync, ("noop",), close=sp.close),
            Bench("await call", sp.call, ("noop",), is_async=True, note="in a running loop"),
        ]

    def call_add(self) -> list[Bench]:
        sp = self._load(CALCULATOR)
        expect(sp.call_sync("add", 40, 2), 42, "add")
        return [
            Bench("call_sync", sp.call_sync, ("add", 40, 2), close=sp.close),
            Bench("await call", sp.call, ("add", 40, 2), is_async=True, note="in a running loop"),
        ]

    # (2) string in / string out
    def string_upper(self, size: int) -> list[Bench]:
        sp = self._load(wasm("kernels"), name="kernels")
        mem = sp.memory
        s = text(size)
        call, read = sp.call_sync, mem.read_string

        def op() -> Any:
            return read(call("upper", s))  # the str argument becomes a guest string

        expect(op(), s.upper(), "upper")
        return [
            Bench(
                "call_sync(str) + read_string",
                op,
                close=sp.close,
                nbytes=size,
                note="the argument string is freed when the call returns",
            )
        ]

    # (3) host functions called from a wasm loop
    def _hostcalls(self, stdout: Any) -> Any:
        """hostcalls.wat with host_inc from a user Loa (a raw HostFunction) and core's print."""
        v = self.v
        sig = v.WasmSignature(("i64",), ("i64",))
        loa = v.Loa(
            name="bench",
            provides=lambda ctx: {"host_inc": v.HostFunction(lambda x: x + 1, signature=sig)},
        )
        return self._load(
            wasm("hostcalls"),
            name="hostcalls",
            loas=["core", "bench"],
            registry=v.LoaRegistry([loa]),
            stdout=stdout,
        )

    def host_i64(self, iters: int) -> list[Bench]:
        sp = self._hostcalls(_sink)
        expect(sp.call_sync("host_loop", 1000), 1000, "host_loop")
        return [
            Bench(
                "user Loa, raw HostFunction",
                sp.call_sync,
                ("host_loop", iters),
                per=iters,
                close=sp.close,
            )
        ]

    def host_print(self, iters: int) -> list[Bench]:
        got: list[str] = []
        with self._hostcalls(got.append) as sp:
            sp.call_sync("print_loop", 2)
        expect(got, ["Hello, World!"] * 2, "print_loop")
        sp = self._hostcalls(_sink)
        return [
            Bench(
                "core vudo_print(ptr, len)",
                sp.call_sync,
                ("print_loop", iters),
                per=iters,
                close=sp.close,
                note="str decoded, sent to a stdout callable",
            )
        ]

    # (4) instantiate and first call of a compiled module
    def instantiate(self) -> list[Bench]:
        v = self.v
        data = STRINGS.read_bytes()
        self._load(data).close()  # compiled and linked: cached in memory from now on
        pool = v.InstancePool(data, size=8, shared=False).start_sync()
        expect(self.ctx.loop.run_until_complete(pool.invoke("checksum", 0)), 532, "checksum")

        def load_call() -> None:
            sp = v.Spirit.load_sync(data)
            sp.call_sync("checksum", 0)
            sp.close()

        shared: list[Any] = []

        def open_shared() -> None:
            shared.append(v.InstancePool(data, size=8).start_sync())

        def close_shared() -> None:
            while shared:
                shared.pop().close()

        return [
            Bench(
                "InstancePool.invoke (await)",
                pool.invoke,
                ("checksum", 0),
                is_async=True,
                close=pool.close,
                note="acquire + call + discard; refilled on a worker thread",
            ),
            Bench(
                "Spirit.load_sync, shared pool open",
                load_call,
                before=open_shared,
                after=close_shared,
                note="load_sync draws from the open pool",
            ),
            Bench("Spirit.load_sync, no pool", load_call, note="Store + InstancePre"),
        ]

    # (5) start of a big module: compiled vs from the disk cache
    def start_compile(self) -> list[Bench]:
        from vudo_runtime.cache import clear_memory_cache

        ctx = self.ctx
        current: list[bytes] = []

        def fresh() -> None:
            current[:] = [ctx.fresh_big_module()]
            clear_memory_cache()

        def op() -> None:
            sp = self._load(current[0], cache=False)
            sp.call_sync("run")
            sp.close()

        return [Bench("load_sync(cache=False) + call", op, before=fresh, max_n=1)]

    def start_cached(self) -> list[Bench]:
        from vudo_runtime.cache import clear_memory_cache

        big = self.ctx.big_module()
        directory = self.ctx.tmp / "vudo-cache"
        clear_memory_cache()
        self._load(big, cache=directory).close()  # writes the cache entry

        def op() -> None:
            sp = self._load(big, cache=directory)
            sp.call_sync("run")
            sp.close()

        return [
            Bench(
                "load_sync(cache=dir) + call",
                op,
                before=clear_memory_cache,
                max_n=1,
                note="clear_memory_cache() first: read from disk",
            )
        ]

    # (6) compute kernels
    def fib(self, n: int) -> list[Bench]:
        sp = self._load(LOOPS)
        expect(sp.call_sync("fib", n), fib(n), "fib")
        return [Bench("call_sync", sp.call_sync, ("fib", n), close=sp.close)]

    def mem_kernel(self, nbytes: int, rounds: int) -> list[Bench]:
        sp = self._load(wasm("kernels"), name="kernels")
        sp.call_sync("mem_kernel", nbytes, rounds)
        return [
            Bench(
                "call_sync",
                sp.call_sync,
                ("mem_kernel", nbytes, rounds),
                close=sp.close,
                nbytes=nbytes * rounds,
            )
        ]

    # (7) parallel calls
    def parallel(self) -> list[Bench]:
        a, b = self._load(LOOPS, name="burn_a"), self._load(LOOPS, name="burn_b")
        n = self.ctx.burn_n

        async def sequential() -> None:
            await a.call("burn", n)
            await b.call("burn", n)

        async def concurrent() -> None:
            await asyncio.gather(a.call("burn", n), b.call("burn", n))

        def close() -> None:
            a.close()
            b.close()

        return [
            Bench("await a; await b", sequential, is_async=True, max_n=1, close=close),
            Bench(
                "asyncio.gather(a, b)",
                concurrent,
                is_async=True,
                max_n=1,
                note="speedup:await a; await b",
            ),
        ]

    # (8) memory
    def string_roundtrip(self, size: int, export: str = "checksum") -> list[Bench]:
        sp = self._load(STRINGS, name=f"strings_{export}")
        mem = sp.memory
        s = text(size)
        write, call, read, free = mem.write_string, sp.call_sync, mem.read_string, mem.free
        want = checksum(s) if export == "checksum" else size

        def check() -> Any:
            p = write(s)
            expect(call(export, p), want, export)
            out = read(p)
            free(p)
            return out

        expect(check(), s, "round trip")

        def op() -> str:
            p = write(s)
            call(export, p)
            out: str = read(p)
            free(p)
            return out

        return [
            Bench(f"write_string + {export} + read_string + free", op, close=sp.close, nbytes=size)
        ]

    def gene_point(self) -> list[Bench]:
        point = self.v.GeneLayout.from_fields("Point", [("x", "i64"), ("y", "i64")])
        sp = self._load(STRINGS, name="genes")
        mem = sp.memory
        ptr = mem.alloc(point.size, point.alignment)
        value = {"x": 3, "y": -4}
        write, read = mem.write_gene, mem.read_gene

        def op() -> dict[str, Any]:
            write(ptr, value, point)
            out: dict[str, Any] = read(ptr, point)
            return out

        expect(op(), value, "Point")
        return [Bench("write_gene + read_gene", op, close=sp.close)]

    def bulk_copy(self, nbytes: int) -> list[Bench]:
        sp = self._load(wasm("kernels"), name="bulk")
        mem = sp.memory
        dst = memoryview(bytearray(nbytes))
        view, read_bytes = mem.view, mem.read_bytes

        def copy_view() -> None:
            dst[:] = view(0, nbytes)

        return [
            Bench(
                "view() -> preallocated buffer",
                copy_view,
                close=sp.close,
                nbytes=nbytes,
                note="zero-copy view, one memcpy",
            ),
            Bench("read_bytes()", read_bytes, (0, nbytes), nbytes=nbytes, note="new bytes object"),
        ]

    # (9) Séance
    def _seance(self) -> Any:
        seance = self.v.Seance()
        closer = lambda: self.ctx.loop.run_until_complete(seance.dismiss())  # noqa: E731
        return seance, closer

    def seance_invoke(self) -> list[Bench]:
        seance, close = self._seance()
        loop = self.ctx.loop
        sp = loop.run_until_complete(seance.summon("calc", CALCULATOR))
        expect(loop.run_until_complete(seance.invoke("calc", "add", 40, 2)), 42, "invoke")
        return [
            Bench("call_sync (the same Spirit)", sp.call_sync, ("add", 40, 2)),
            Bench(
                "await seance.invoke",
                seance.invoke,
                ("calc", "add", 40, 2),
                is_async=True,
                close=close,
            ),
        ]

    def summon(self) -> list[Bench]:
        v = self.v
        from vudo_runtime.seance import SEANCE_GRANT

        seance, close = self._seance()
        data = STRINGS.read_bytes()

        async def summon_release() -> None:
            await seance.summon("s", data)
            await seance.release("s")

        self.ctx.loop.run_until_complete(summon_release())  # compiled and linked from now on
        shared: list[Any] = []

        def open_pool() -> None:
            shared.append(v.InstancePool(data, size=8, loas=list(SEANCE_GRANT)).start_sync())

        def close_pool() -> None:
            while shared:
                shared.pop().close()

        def load_close() -> None:
            v.Spirit.load_sync(data, loas=list(SEANCE_GRANT)).close()

        return [
            Bench(
                "summon + release (module cached)",
                summon_release,
                is_async=True,
                close=close,
                note="an instance reset on release and reused",
            ),
            Bench(
                "Spirit.load_sync + close (no Séance)",
                load_close,
                note="the same reuse without the session's bookkeeping",
            ),
            Bench(
                "summon + release, shared pool open",
                summon_release,
                is_async=True,
                before=open_pool,
                after=close_pool,
            ),
        ]

    def heartbeat(self) -> list[Bench]:
        loop_spirit = self._load(LOOPS, name="heartbeat")
        n = self.ctx.beat_n
        fresh: list[Any] = []

        def new_spirit() -> None:
            fresh.append(self._load(LOOPS, name="heartbeat_fresh"))

        def drop_spirit() -> None:
            while fresh:
                fresh.pop().close()

        async def learned() -> float:
            return await heartbeat(lambda: loop_spirit.call("burn", n))

        async def first() -> float:
            return await heartbeat(lambda: fresh[-1].call("burn", n))

        async def idle() -> float:
            return await heartbeat(lambda: asyncio.sleep(self.sizes.beat_seconds))

        return [
            Bench(
                "await call (auto mode, learned)",
                learned,
                is_async=True,
                metric="%",
                close=loop_spirit.close,
                note="runs on a worker thread",
            ),
            Bench(
                "first await call on a new Spirit",
                first,
                is_async=True,
                metric="%",
                before=new_spirit,
                after=drop_spirit,
                note="an unknown function runs on a worker thread first",
            ),
            Bench("idle loop, no call (reference)", idle, is_async=True, metric="%"),
        ]


# ---- wasmtime-py, public API --------------------------------------------------------------


class WasmtimeHost(Host):
    """wasmtime-py through its public API only (Func.__call__, Linker, Memory.read/write)."""

    name = "wasmtime"
    dists = ("wasmtime",)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import wasmtime

        self.w = wasmtime
        self.engine = wasmtime.Engine()
        # vudo's engines run with epoch interruption on (for per-call deadlines); this
        # one shows what that setting alone costs the JIT code
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.epoch_engine = wasmtime.Engine(config)
        self._modules: dict[bytes, Any] = {}

    def _module(self, data: bytes) -> Any:
        module = self._modules.get(data)
        if module is None:
            module = self._modules[data] = self.w.Module(self.engine, data)
        return module

    def _instance(self, data: bytes) -> tuple[Any, Any]:
        store = self.w.Store(self.engine)
        return store, self.w.Instance(store, self._module(data), [])

    def call_noop(self) -> list[Bench]:
        store, inst = self._instance(CALCULATOR.read_bytes())
        f = inst.exports(store)["noop"]
        return [Bench("Func.__call__", f, (store,))]

    def call_add(self) -> list[Bench]:
        store, inst = self._instance(CALCULATOR.read_bytes())
        f = inst.exports(store)["add"]
        expect(f(store, 40, 2), 42, "add")
        return [Bench("Func.__call__", f, (store, 40, 2))]

    def _string_op(
        self, data: bytes, export: str, size: int
    ) -> tuple[Callable[[str], str], Any, Any]:
        store, inst = self._instance(data)
        ex = inst.exports(store)
        memory, f = ex["memory"], ex[export]
        need = GUEST_PTR + size + 8
        if memory.data_len(store) < need:
            memory.grow(store, -(-(need - memory.data_len(store)) // 65536))
        pack, unpack = U32.pack, U32.unpack

        def op(s: str) -> Any:
            data = s.encode()
            memory.write(store, pack(len(data)) + data, GUEST_PTR)
            p = f(store, GUEST_PTR)
            if export != "upper":
                p = GUEST_PTR
            n = unpack(memory.read(store, p, p + 4))[0]
            return memory.read(store, p + 4, p + 4 + n).decode()

        return op, store, f

    def string_upper(self, size: int) -> list[Bench]:
        op, _, _ = self._string_op(wasm("kernels"), "upper", size)
        s = text(size)
        expect(op(s), s.upper(), "upper")
        return [Bench("Memory.write + call + Memory.read", op, (s,), nbytes=size)]

    def _linker(self, holder: dict[str, Any]) -> Any:
        w = self.w
        linker = w.Linker(self.engine)
        i32, i64 = w.ValType.i32(), w.ValType.i64()
        linker.define_func("loa", "host_inc", w.FuncType([i64], [i64]), lambda x: x + 1)

        def vudo_print(caller: Any, ptr: int, n: int) -> None:
            holder["out"](holder["memory"].read(caller, ptr, ptr + n).decode())

        linker.define_func(
            "loa", "vudo_print", w.FuncType([i32, i32], []), vudo_print, access_caller=True
        )
        return linker

    def _hostcalls(self, out: Callable[[str], None]) -> tuple[Any, Any]:
        holder: dict[str, Any] = {"out": out}
        store = self.w.Store(self.engine)
        inst = self._linker(holder).instantiate(store, self._module(wasm("hostcalls")))
        ex = inst.exports(store)
        holder["memory"] = ex["memory"]
        return store, ex

    def host_i64(self, iters: int) -> list[Bench]:
        store, ex = self._hostcalls(_sink)
        f = ex["host_loop"]
        expect(f(store, 1000), 1000, "host_loop")
        return [Bench("Linker.define_func", f, (store, iters), per=iters)]

    def host_print(self, iters: int) -> list[Bench]:
        got: list[str] = []
        store, ex = self._hostcalls(got.append)
        ex["print_loop"](store, 2)
        expect(got, ["Hello, World!"] * 2, "print_loop")
        store, ex = self._hostcalls(_sink)
        return [
            Bench(
                "define_func(access_caller) + Memory.read",
                ex["print_loop"],
                (store, iters),
                per=iters,
            )
        ]

    def instantiate(self) -> list[Bench]:
        w, engine = self.w, self.engine
        module = self._module(STRINGS.read_bytes())
        linker = w.Linker(engine)

        def op() -> int:
            store = w.Store(engine)
            inst = linker.instantiate(store, module)
            r: int = inst.exports(store)["checksum"](store, 0)
            return r

        expect(op(), 532, "checksum")
        return [Bench("Store + Linker.instantiate + call", op)]

    def _start(self, module: Any) -> None:
        """Instantiate and call ``run``, fetching the one export through a Linker:
        ``Instance.exports()`` would wrap all 2,001 exports (over 100 ms here)."""
        w = self.w
        store, linker = w.Store(self.engine), w.Linker(self.engine)
        linker.define_instance(store, "m", linker.instantiate(store, module))
        linker.get(store, "m", "run")(store)

    def start_compile(self) -> list[Bench]:
        w, engine, ctx = self.w, self.engine, self.ctx
        current: list[bytes] = []

        def op() -> None:
            self._start(w.Module(engine, current[0]))

        return [
            Bench(
                "Module() + instantiate + call",
                op,
                max_n=1,
                before=lambda: current.__setitem__(slice(None), [ctx.fresh_big_module()]),
                note="export fetched via Linker.get",
            )
        ]

    def start_cached(self) -> list[Bench]:
        w, engine = self.w, self.engine
        path = self.ctx.tmp / "wasmtime-big.cwasm"
        path.write_bytes(w.Module(engine, self.ctx.big_module()).serialize())

        def op() -> None:
            self._start(w.Module.deserialize_file(engine, str(path)))

        return [
            Bench(
                "Module.deserialize_file + instantiate + call",
                op,
                max_n=1,
                note="export fetched via Linker.get",
            )
        ]

    def _epoch_instance(self, data: bytes) -> tuple[Any, Any]:
        w = self.w
        store = w.Store(self.epoch_engine)
        store.set_epoch_deadline(1 << 62)
        return store, w.Instance(store, w.Module(self.epoch_engine, data), [])

    def fib(self, n: int) -> list[Bench]:
        store, inst = self._instance(LOOPS.read_bytes())
        f = inst.exports(store)["fib"]
        expect(f(store, n), fib(n), "fib")
        estore, einst = self._epoch_instance(LOOPS.read_bytes())
        return [
            Bench("Func.__call__", f, (store, n)),
            Bench(
                "Func.__call__, epoch_interruption on",
                einst.exports(estore)["fib"],
                (estore, n),
                note="vudo's engine setting",
            ),
        ]

    def mem_kernel(self, nbytes: int, rounds: int) -> list[Bench]:
        store, inst = self._instance(wasm("kernels"))
        f = inst.exports(store)["mem_kernel"]
        estore, einst = self._epoch_instance(wasm("kernels"))
        return [
            Bench("Func.__call__", f, (store, nbytes, rounds), nbytes=nbytes * rounds),
            Bench(
                "Func.__call__, epoch_interruption on",
                einst.exports(estore)["mem_kernel"],
                (estore, nbytes, rounds),
                nbytes=nbytes * rounds,
                note="vudo's engine setting",
            ),
        ]

    def parallel(self) -> list[Bench]:
        n = self.ctx.burn_n
        (sa, ia), (sb, ib) = self._instance(LOOPS.read_bytes()), self._instance(LOOPS.read_bytes())
        fa, fb = ia.exports(sa)["burn"], ib.exports(sb)["burn"]
        pool = concurrent.futures.ThreadPoolExecutor(2)

        def sequential() -> None:
            fa(sa, n)
            fb(sb, n)

        def threads() -> None:
            x, y = pool.submit(fa, sa, n), pool.submit(fb, sb, n)
            x.result()
            y.result()

        return [
            Bench("a(); b()", sequential, max_n=1),
            Bench("2 threads", threads, max_n=1, close=pool.shutdown, note="speedup:a(); b()"),
        ]

    def string_roundtrip(self, size: int, export: str = "checksum") -> list[Bench]:
        op, _, _ = self._string_op(STRINGS.read_bytes(), export, size)
        s = text(size)
        expect(op(s), s, "round trip")
        return [Bench(f"Memory.write + {export} + Memory.read", op, (s,), nbytes=size)]

    def gene_point(self) -> list[Bench]:
        store, inst = self._instance(STRINGS.read_bytes())
        memory = inst.exports(store)["memory"]
        pack, unpack = Q2.pack, Q2.unpack
        value = {"x": 3, "y": -4}

        def op() -> dict[str, int]:
            memory.write(store, pack(value["x"], value["y"]), 1024)
            x, y = unpack(memory.read(store, 1024, 1040))
            return {"x": x, "y": y}

        expect(op(), value, "Point")
        return [Bench("struct + Memory.write + Memory.read", op)]

    def bulk_copy(self, nbytes: int) -> list[Bench]:
        store, inst = self._instance(wasm("kernels"))
        memory = inst.exports(store)["memory"]
        dst = memoryview(bytearray(nbytes))

        def buffer_copy() -> None:
            dst[:] = memoryview(memory.get_buffer_ptr(store, nbytes, 0)).cast("B")

        return [
            Bench(
                "Memory.read", memory.read, (store, 0, nbytes), nbytes=nbytes, note="new bytearray"
            ),
            Bench(
                "get_buffer_ptr -> preallocated buffer",
                buffer_copy,
                nbytes=nbytes,
                note="ctypes array, one memcpy",
            ),
        ]

    def seance_invoke(self) -> list[Bench]:
        raise NotApplicable("no session layer (see the calls rows)")

    def summon(self) -> list[Bench]:
        w, engine = self.w, self.engine
        module = self._module(STRINGS.read_bytes())
        linker = w.Linker(engine)

        def op() -> None:
            linker.instantiate(w.Store(engine), module)

        return [Bench("fresh Store + Linker.instantiate", op)]

    def heartbeat(self) -> list[Bench]:
        store, inst = self._instance(LOOPS.read_bytes())
        f = inst.exports(store)["burn"]
        n = self.ctx.beat_n
        loop = self.ctx.loop

        async def inline() -> None:
            f(store, n)

        async def blocking() -> float:
            return await heartbeat(inline)

        async def executor() -> float:
            return await heartbeat(lambda: loop.run_in_executor(None, f, store, n))

        return [
            Bench("Func.__call__ on the loop thread", blocking, is_async=True, metric="%"),
            Bench("loop.run_in_executor(Func.__call__)", executor, is_async=True, metric="%"),
        ]


# ---- Extism ---------------------------------------------------------------------------------


class ExtismHost(Host):
    """Extism's Python SDK with a plugin written in WAT against the Extism kernel ABI."""

    name = "extism"
    dists = ("extism", "extism-sys")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Extism compiles through wasmtime with its module cache on: keep it in our
        # scratch directory, not the user's ~/.cache/wasmtime.
        config = ctx.tmp / "extism-cache.toml"
        config.write_text(f'[cache]\ndirectory = "{ctx.tmp / "extism-cache"}"\n')
        os.environ["EXTISM_CACHE_CONFIG"] = str(config)
        import extism  # type: ignore[import-untyped]
        from extism.extism import CompiledPlugin  # type: ignore[import-untyped]  # not re-exported

        self.x = extism
        self.CompiledPlugin = CompiledPlugin
        self.runtime = extism.extism_version()
        self.printed: list[Callable[[str], None]] = [_sink]
        printed = self.printed

        @extism.host_fn(  # type: ignore[untyped-decorator]
            name="host_inc",
            namespace="loa",
            signature=([extism.ValType.I64], [extism.ValType.I64]),
        )
        def host_inc(plugin: Any, params: Any, results: Any) -> None:
            results[0].value = params[0].value + 1

        @extism.host_fn(name="host_print", namespace="loa", signature=([extism.ValType.I64], []))  # type: ignore[untyped-decorator]
        def host_print(plugin: Any, params: Any, results: Any) -> None:
            printed[-1](plugin.input_string(params[0]))

        self.functions = [host_inc, host_print]
        self.compiled = CompiledPlugin(wasm("extism_plugin"), functions=self.functions)

    def versions(self) -> dict[str, str | None]:
        return {**super().versions(), "libextism": self.runtime}

    def _plugin(self) -> Any:
        return self.x.Plugin(self.compiled)

    def call_noop(self) -> list[Bench]:
        p = self._plugin()
        return [Bench("Plugin.call", p.call, ("noop", b""))]

    def call_add(self) -> list[Bench]:
        p = self._plugin()
        call, pack, unpack = p.call, Q2.pack, I64.unpack

        def op() -> int:
            r: int = unpack(call("add", pack(40, 2)))[0]
            return r

        expect(op(), 42, "add")
        return [Bench("Plugin.call, u64s in and out", op)]

    def string_upper(self, size: int) -> list[Bench]:
        p = self._plugin()
        call = p.call
        s = text(size)

        def op() -> Any:
            return call("upper", s).decode()

        expect(op(), s.upper(), "upper")
        return [Bench("Plugin.call(str) -> bytes -> str", op, nbytes=size)]

    def host_i64(self, iters: int) -> list[Bench]:
        p = self._plugin()
        expect(I64.unpack(p.call("host_loop", I64.pack(1000)))[0], 1000, "host_loop")
        return [Bench("host_fn(signature=...)", p.call, ("host_loop", I64.pack(iters)), per=iters)]

    def host_print(self, iters: int) -> list[Bench]:
        p = self._plugin()
        got: list[str] = []
        self.printed.append(got.append)
        try:
            p.call("print_loop", I64.pack(2))
        finally:
            self.printed.pop()
        expect(got, ["Hello, World!"] * 2, "print_loop")
        return [
            Bench(
                "host_fn + CurrentPlugin.input_string",
                p.call,
                ("print_loop", I64.pack(iters)),
                per=iters,
                note="string passed as an Extism memory block",
            )
        ]

    def instantiate(self) -> list[Bench]:
        compiled, plugin = self.compiled, self.x.Plugin

        def op() -> None:
            with plugin(compiled) as p:
                p.call("checksum_echo", b"hello")

        return [Bench("Plugin(CompiledPlugin) + call", op, note="instantiated at the first call")]

    def start_compile(self) -> list[Bench]:
        ctx, plugin = self.ctx, self.x.Plugin
        current: list[bytes] = []

        def op() -> None:
            with plugin(current[0], functions=[]) as p:
                p.call("run", b"")

        return [
            Bench(
                "Plugin(wasm) + call",
                op,
                max_n=1,
                note="unique bytes: its cache misses",
                before=lambda: current.__setitem__(slice(None), [ctx.fresh_big_module()]),
            )
        ]

    def start_cached(self) -> list[Bench]:
        big, plugin = self.ctx.big_module(), self.x.Plugin
        with plugin(big, functions=[]) as p:  # fills Extism's (wasmtime's) module cache
            p.call("run", b"")

        def op() -> None:
            with plugin(big, functions=[]) as p:
                p.call("run", b"")

        return [Bench("Plugin(wasm) + call, wasmtime cache", op, max_n=1)]

    def fib(self, n: int) -> list[Bench]:
        p = self._plugin()
        expect(I64.unpack(p.call("fib", I64.pack(n)))[0], fib(n), "fib")
        return [Bench("Plugin.call", p.call, ("fib", I64.pack(n)))]

    def mem_kernel(self, nbytes: int, rounds: int) -> list[Bench]:
        p = self._plugin()
        return [
            Bench(
                "Plugin.call",
                p.call,
                ("mem_kernel", Q2.pack(nbytes, rounds)),
                nbytes=nbytes * rounds,
            )
        ]

    def parallel(self) -> list[Bench]:
        n = I64.pack(self.ctx.burn_n)
        a, b = self._plugin(), self._plugin()
        pool = concurrent.futures.ThreadPoolExecutor(2)

        def sequential() -> None:
            a.call("burn", n)
            b.call("burn", n)

        def threads() -> None:
            x, y = pool.submit(a.call, "burn", n), pool.submit(b.call, "burn", n)
            x.result()
            y.result()

        return [
            Bench("a.call(); b.call()", sequential, max_n=1),
            Bench(
                "2 threads",
                threads,
                max_n=1,
                close=pool.shutdown,
                note="speedup:a.call(); b.call()",
            ),
        ]

    def string_roundtrip(self, size: int, export: str = "checksum") -> list[Bench]:
        p = self._plugin()
        call = p.call
        fn = "checksum_echo" if export == "checksum" else "echo"
        s = text(size)

        def op() -> Any:
            return call(fn, s).decode()

        expect(op(), s, "round trip")
        return [Bench(f"Plugin.call({fn}) -> str", op, nbytes=size)]

    def gene_point(self) -> list[Bench]:
        raise NotApplicable("plugin memory is reachable only inside host functions")

    def bulk_copy(self, nbytes: int) -> list[Bench]:
        raise NotApplicable("plugin memory is reachable only inside host functions")

    def seance_invoke(self) -> list[Bench]:
        raise NotApplicable("no session layer")

    def summon(self) -> list[Bench]:
        compiled, plugin = self.compiled, self.x.Plugin

        def op() -> None:
            with plugin(compiled) as p:
                p.call("noop", b"")

        return [
            Bench(
                "Plugin(CompiledPlugin) + call noop",
                op,
                note="instantiation is lazy: the call makes it happen",
            )
        ]

    def heartbeat(self) -> list[Bench]:
        p = self._plugin()
        n = I64.pack(self.ctx.beat_n)
        loop = self.ctx.loop

        async def inline() -> None:
            p.call("burn", n)

        async def blocking() -> float:
            return await heartbeat(inline)

        async def executor() -> float:
            return await heartbeat(lambda: loop.run_in_executor(None, p.call, "burn", n))

        return [
            Bench("Plugin.call on the loop thread", blocking, is_async=True, metric="%"),
            Bench("loop.run_in_executor(Plugin.call)", executor, is_async=True, metric="%"),
        ]


# ---- pywasm -----------------------------------------------------------------------------------


class PywasmHost(Host):
    """pywasm, the pure-Python interpreter: small problem sizes only."""

    name = "pywasm"
    dists = ("pywasm",)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import pywasm  # type: ignore[import-untyped]

        self.p = pywasm

    def _desc(self, data: bytes) -> Any:
        """A freshly parsed module: one per instance, since instantiating one clears its
        data segments (pywasm's ``data.drop`` empties the parsed module's bytes)."""
        return self.p.core.ModuleDesc.from_reader(io.BytesIO(data))

    def _instance(self, data: bytes, imports: dict[str, Any] | None = None) -> tuple[Any, Any]:
        rt = self.p.core.Runtime()
        if imports is not None:
            imports["runtime"] = rt
            self._define(rt, imports)
        return rt, rt.instance(self._desc(data))

    def _define(self, rt: Any, holder: dict[str, Any]) -> None:
        core = self.p.core
        i32, i64 = self.p.ValType.i32(), self.p.ValType.i64()

        def vudo_print(machine: Any, args: list[int]) -> list[Any]:
            data = holder["memory"].data
            holder["out"](data[args[0] : args[0] + args[1]].decode())
            return []

        rt.imports["loa"] = {
            "host_inc": rt.allocate_func_host(core.FuncType([i64], [i64]), lambda m, a: [a[0] + 1]),
            "vudo_print": rt.allocate_func_host(core.FuncType([i32, i32], []), vudo_print),
        }

    def call_noop(self) -> list[Bench]:
        rt, inst = self._instance(CALCULATOR.read_bytes())
        return [Bench("Runtime.invocate", rt.invocate, (inst, "noop", []))]

    def call_add(self) -> list[Bench]:
        rt, inst = self._instance(CALCULATOR.read_bytes())
        expect(rt.invocate(inst, "add", [40, 2]), [42], "add")
        return [Bench("Runtime.invocate", rt.invocate, (inst, "add", [40, 2]))]

    def _string_op(self, data: bytes, export: str) -> Callable[[str], str]:
        rt, inst = self._instance(data)
        mem = rt.exported_memory(inst, "memory")
        invocate, pack = rt.invocate, U32.pack
        ptr = 4096

        def op(s: str) -> Any:
            b = s.encode()
            mem.put(ptr, bytearray(pack(len(b)) + b))
            r = invocate(inst, export, [ptr])
            p = r[0] if export == "upper" else ptr
            n = mem.get_u32(p)
            return mem.get(p + 4, n).decode()

        return op

    def string_upper(self, size: int) -> list[Bench]:
        op = self._string_op(wasm("kernels"), "upper")
        s = text(size)
        expect(op(s), s.upper(), "upper")
        return [Bench("MemInst.put + invocate + MemInst.get", op, (s,), nbytes=size)]

    def _hostcalls(self, out: Callable[[str], None]) -> tuple[Any, Any]:
        holder: dict[str, Any] = {"out": out}
        rt, inst = self._instance(wasm("hostcalls"), holder)
        holder["memory"] = rt.exported_memory(inst, "memory")
        return rt, inst

    def host_i64(self, iters: int) -> list[Bench]:
        n = self.sizes.host_iters_tiny
        rt, inst = self._hostcalls(_sink)
        expect(rt.invocate(inst, "host_loop", [n]), [n], "host_loop")
        return [
            Bench(
                "allocate_func_host",
                rt.invocate,
                (inst, "host_loop", [n]),
                per=n,
                note=f"{n:,} calls per sample (interpreter)",
            )
        ]

    def host_print(self, iters: int) -> list[Bench]:
        n = self.sizes.host_iters_tiny
        got: list[str] = []
        rt, inst = self._hostcalls(got.append)
        rt.invocate(inst, "print_loop", [2])
        expect(got, ["Hello, World!"] * 2, "print_loop")
        rt, inst = self._hostcalls(_sink)
        return [
            Bench(
                "allocate_func_host + MemInst.data",
                rt.invocate,
                (inst, "print_loop", [n]),
                per=n,
                note=f"{n:,} calls per sample (interpreter)",
            )
        ]

    def instantiate(self) -> list[Bench]:
        data, desc, runtime = STRINGS.read_bytes(), self._desc, self.p.core.Runtime

        def op() -> list[int]:
            rt = runtime()
            r: list[int] = rt.invocate(rt.instance(desc(data)), "checksum", [0])
            return r

        expect(op(), [532], "checksum")
        expect(op(), [532], "checksum")
        return [
            Bench(
                "parse + Runtime + instance + invocate",
                op,
                note="a parsed module serves one instance only",
            )
        ]

    def start_compile(self) -> list[Bench]:
        ctx, p = self.ctx, self.p
        current: list[bytes] = []

        def op() -> None:
            rt = p.core.Runtime()
            inst = rt.instance(p.core.ModuleDesc.from_reader(io.BytesIO(current[0])))
            rt.invocate(inst, "run", [])

        return [
            Bench(
                "parse + instance + invocate",
                op,
                max_n=1,
                note="no compile step: parse",
                before=lambda: current.__setitem__(slice(None), [ctx.fresh_big_module()]),
            )
        ]

    def start_cached(self) -> list[Bench]:
        raise NotApplicable("interpreter: nothing compiled to cache; every start parses")

    def fib(self, n: int) -> list[Bench]:
        if n > self.sizes.fib_tiny:
            raise NotApplicable(f"interpreter: too slow; see fib({self.sizes.fib_tiny})")
        rt, inst = self._instance(LOOPS.read_bytes())
        expect(rt.invocate(inst, "fib", [n]), [fib(n)], "fib")
        return [Bench("Runtime.invocate", rt.invocate, (inst, "fib", [n]))]

    def mem_kernel(self, nbytes: int, rounds: int) -> list[Bench]:
        if nbytes * rounds > self.sizes.kernel_tiny:
            raise NotApplicable(f"interpreter: too slow; see the {self.sizes.kernel_tiny} B row")
        rt, inst = self._instance(wasm("kernels"))
        return [
            Bench(
                "Runtime.invocate",
                rt.invocate,
                (inst, "mem_kernel", [nbytes, rounds]),
                nbytes=nbytes * rounds,
            )
        ]

    def parallel(self) -> list[Bench]:
        raise NotApplicable("pure Python: holds the GIL, no parallel speed-up")

    def string_roundtrip(self, size: int, export: str = "checksum") -> list[Bench]:
        if export == "checksum" and size > 4096:
            raise NotApplicable("interpreter: guest loop over the string too slow")
        if size + 8 > 65536 - 4096:
            raise NotApplicable("strings.wasm starts with one page; no room at this size")
        op = self._string_op(STRINGS.read_bytes(), export)
        s = text(size)
        expect(op(s), s, "round trip")
        return [Bench(f"MemInst.put + {export} + MemInst.get", op, (s,), nbytes=size)]

    def gene_point(self) -> list[Bench]:
        rt, inst = self._instance(STRINGS.read_bytes())
        mem = rt.exported_memory(inst, "memory")
        pack, unpack = Q2.pack, Q2.unpack
        value = {"x": 3, "y": -4}

        def op() -> dict[str, int]:
            mem.put(1024, bytearray(pack(value["x"], value["y"])))
            x, y = unpack(mem.get(1024, 16))
            return {"x": x, "y": y}

        expect(op(), value, "Point")
        return [Bench("struct + MemInst.put/get", op, note="memory is a Python bytearray")]

    def bulk_copy(self, nbytes: int) -> list[Bench]:
        rt, inst = self._instance(wasm("kernels"))
        mem = rt.exported_memory(inst, "memory")
        dst = memoryview(bytearray(nbytes))

        def op() -> None:
            dst[:] = memoryview(mem.data)[:nbytes]

        return [
            Bench(
                "memoryview(MemInst.data) -> buffer",
                op,
                nbytes=nbytes,
                note="memory is a Python bytearray",
            )
        ]

    def seance_invoke(self) -> list[Bench]:
        raise NotApplicable("no session layer")

    def summon(self) -> list[Bench]:
        data, desc, runtime = STRINGS.read_bytes(), self._desc, self.p.core.Runtime

        def op() -> None:
            runtime().instance(desc(data))

        return [
            Bench("parse + Runtime + instance", op, note="a parsed module serves one instance only")
        ]

    def heartbeat(self) -> list[Bench]:
        raise NotApplicable("pure Python: holds the GIL while it runs")


# ---- wasmer ----------------------------------------------------------------------------------


def wasmer_reason() -> str:
    """Why wasmer is unavailable, from an actual import attempt."""
    try:
        import wasmer  # type: ignore[import-untyped]  # noqa: F401
    except Exception as exc:  # the 1.1.0 stub raises ImportError on CPython >= 3.11
        installed = version_of("wasmer")
        where = f"wasmer {installed} installed" if installed else "wasmer not installed"
        return f"{where}; import wasmer -> {type(exc).__name__}: {exc}"
    return (
        "wasmer imported, but this suite has no wasmer adapter: wasmer-python ships no "
        "wheels for the CPython versions this project supports"
    )


def make_hosts(ctx: Context) -> list[Host]:
    """Every host; one that does not import becomes an Unavailable with the reason."""
    hosts: list[Host] = []
    specs: list[tuple[str, tuple[str, ...], Callable[[Context], Host]]] = [
        ("vudo", VudoHost.dists, VudoHost),
        ("wasmtime", WasmtimeHost.dists, WasmtimeHost),
        ("extism", ExtismHost.dists, ExtismHost),
        ("pywasm", PywasmHost.dists, PywasmHost),
    ]
    for name, dists, make in specs:
        try:
            hosts.append(make(ctx))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            hosts.append(Unavailable(ctx, name, dists, reason.splitlines()[0]))
    hosts.append(Unavailable(ctx, "wasmer", ("wasmer",), wasmer_reason()))
    return hosts
