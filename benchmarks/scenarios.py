"""The scenarios, their cases, and the targets judged on the results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness import Row, fmt_time, paired_ratio
from benchmarks.workloads import Sizes


@dataclass
class Case:
    """One row group: every host's ``method(**kwargs)`` timed side by side."""

    id: str
    title: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    unit: str = "s"
    max_repeat: int | None = None  # heavy cases take fewer samples by default


@dataclass
class Scenario:
    key: str
    number: int
    title: str
    cases: list[Case]
    note: str = ""


def size_name(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def scenarios(sizes: Sizes, big_module_bytes: Callable[[], int]) -> list[Scenario]:
    s = sizes
    biggest = max(s.mem_strings)
    return [
        Scenario(
            "calls",
            1,
            "Call overhead (calculator.wasm)",
            [
                Case("calls.noop", "noop()", "call_noop"),
                Case("calls.add", "add(40, 2)", "call_add"),
            ],
        ),
        Scenario(
            "strings",
            2,
            "String in, string out",
            [
                Case(
                    "strings.upper",
                    f"upper() of {size_name(s.string)}",
                    "string_upper",
                    {"size": s.string},
                ),
            ],
            note="vudo passes a str argument; the others write the guest string by hand",
        ),
        Scenario(
            "hostcalls",
            3,
            "Host function called from a wasm loop, cost per call",
            [
                Case(
                    "hostcalls.i64",
                    f"(i64) -> i64, {s.host_iters:,} iterations",
                    "host_i64",
                    {"iters": s.host_iters},
                    max_repeat=5,
                ),
                Case(
                    "hostcalls.print",
                    f"print(ptr, len), {s.host_iters:,} iterations",
                    "host_print",
                    {"iters": s.host_iters},
                    max_repeat=5,
                ),
            ],
            note=f"pywasm runs {s.host_iters_tiny:,} iterations",
        ),
        Scenario(
            "instantiate",
            4,
            "Instantiate + first call of a compiled module",
            [
                Case("instantiate.first", "strings.wasm + checksum(0)", "instantiate"),
            ],
        ),
        Scenario(
            "start",
            5,
            "Start of a generated module (load + first call)",
            [
                Case(
                    "start.compile",
                    f"cold: compile {big_module_bytes() / 1e6:.2f} MB",
                    "start_compile",
                    max_repeat=3,
                ),
                Case(
                    "start.cached", "cached: compiled code from disk", "start_cached", max_repeat=5
                ),
            ],
        ),
        Scenario(
            "compute",
            6,
            "Compute kernels: the JIT's speed is kept",
            [
                Case("compute.fib", f"fib({s.fib}), recursive", "fib", {"n": s.fib}),
                Case("compute.fib_tiny", f"fib({s.fib_tiny}), recursive", "fib", {"n": s.fib_tiny}),
                Case(
                    "compute.mem",
                    f"memory-bound loop, {size_name(s.kernel_bytes)} x {s.kernel_rounds}",
                    "mem_kernel",
                    {"nbytes": s.kernel_bytes, "rounds": s.kernel_rounds},
                ),
                Case(
                    "compute.mem_tiny",
                    f"memory-bound loop, {size_name(s.kernel_tiny)} x 1",
                    "mem_kernel",
                    {"nbytes": s.kernel_tiny, "rounds": 1},
                ),
            ],
            note="pywasm only at the small sizes",
        ),
        Scenario(
            "parallel",
            7,
            "Two concurrent CPU-bound calls (loops.wasm burn)",
            [
                Case(
                    "parallel.burn",
                    f"2 x burn, ~{s.burn_seconds:g} s each",
                    "parallel",
                    max_repeat=5,
                ),
            ],
        ),
        Scenario(
            "memory",
            8,
            "Linear memory from the host: string round trips (write, guest "
            "reads, read back), a Point {x: i64, y: i64} gene, a bulk copy",
            [
                *[
                    Case(
                        f"memory.str_{n}",
                        f"string {size_name(n)}, guest checksums it",
                        "string_roundtrip",
                        {"size": n},
                    )
                    for n in s.mem_strings
                ],
                Case(
                    "memory.transfer",
                    f"string {size_name(biggest)}, guest reads its length",
                    "string_roundtrip",
                    {"size": biggest, "export": "str_len"},
                ),
                Case("memory.point", "Point gene write + read", "gene_point"),
                Case(
                    "memory.bulk",
                    f"bulk copy out {size_name(s.bulk)}",
                    "bulk_copy",
                    {"nbytes": s.bulk},
                ),
            ],
        ),
        Scenario(
            "seance",
            9,
            "Séance: invoke, summon + dismiss, and the event loop's heartbeat "
            "(percent of 5 ms ticks kept)",
            [
                Case("seance.invoke", "add(40, 2) through a Séance", "seance_invoke"),
                Case("seance.summon", "summon + dismiss strings.wasm", "summon"),
                Case(
                    "seance.heartbeat",
                    f"heartbeat, ~{s.beat_seconds:g} s call",
                    "heartbeat",
                    unit="%",
                    max_repeat=5,
                ),
            ],
        ),
    ]


def select(all_scenarios: Sequence[Scenario], names: Sequence[str] | None) -> list[Scenario]:
    """Scenarios matching any of ``names`` (key, number or case id prefix); all when None."""
    if not names:
        return list(all_scenarios)
    out = []
    for sc in all_scenarios:
        if any(n in (sc.key, str(sc.number)) for n in names):
            out.append(sc)
            continue
        cases = [c for c in sc.cases if any(c.id.startswith(n) for n in names)]
        if cases:
            out.append(Scenario(sc.key, sc.number, sc.title, cases, sc.note))
    return out


# ---- targets -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    target: str
    measured: str
    status: str  # PASS, MISS, or n/a
    value: float | None = None


def _find(rows: Sequence[Row], case: str, host: str, contains: str = "") -> Row | None:
    for row in rows:
        if row.case == case and row.host == host and contains in row.label and row.samples:
            return row
    return None


def judge(rows: Sequence[Row], sizes: Sizes) -> list[Verdict]:
    """Every target, PASS or MISS from the medians (n/a when its rows were not run)."""
    verdicts: list[Verdict] = []

    def med(case: str, host: str, contains: str = "") -> float | None:
        row = _find(rows, case, host, contains)
        return row.median if row is not None else None

    def ratio(
        target: str, num: float | None, den: float | None, op: str, bound: float, what: str
    ) -> None:
        if num is None or den is None or den == 0:
            verdicts.append(Verdict(target, "not measured", "n/a"))
            return
        r = num / den
        ok = r >= bound if op == ">=" else r <= bound
        verdicts.append(Verdict(target, f"{r:.2f}x  ({what})", "PASS" if ok else "MISS", r))

    def below(target: str, value: float | None, bound: float) -> None:
        if value is None:
            verdicts.append(Verdict(target, "not measured", "n/a"))
            return
        status = "PASS" if value < bound else "MISS"
        verdicts.append(Verdict(target, fmt_time(value), status, value))

    sync = med("calls.add", "vudo", "call_sync")
    ratio(
        "call_sync >= 25x faster than wasmtime Func.__call__ (add)",
        med("calls.add", "wasmtime"),
        sync,
        ">=",
        25,
        "Func.__call__ / call_sync",
    )
    ratio(
        "await call <= 2x call_sync (add)",
        med("calls.add", "vudo", "await"),
        sync,
        "<=",
        2,
        "await call / call_sync",
    )
    ratio(
        "host call >= 10x faster than Linker.define_func",
        med("hostcalls.i64", "wasmtime"),
        med("hostcalls.i64", "vudo"),
        ">=",
        10,
        "define_func / vudo",
    )
    kib = med("memory.str_1024", "vudo")
    below("1 KiB string round trip < 5 us", kib, 5e-6)
    ratio(
        "1 KiB string round trip >= 3x faster than Memory.read/write",
        med("memory.str_1024", "wasmtime"),
        kib,
        ">=",
        3,
        "wasmtime / vudo",
    )
    biggest = max(sizes.mem_strings)
    big = med(f"memory.str_{biggest}", "vudo")
    target = f"{size_name(biggest)} string round trip >= 1 GB/s"
    if big is None:
        verdicts.append(Verdict(target, "not measured", "n/a"))
    else:
        rate = biggest / big
        verdicts.append(
            Verdict(target, f"{rate / 1e9:.2f} GB/s", "PASS" if rate >= 1e9 else "MISS", rate)
        )
    below("Point gene write + read < 3 us", med("memory.point", "vudo"), 3e-6)
    ratio(
        "cached start >= 5x faster than compiling",
        med("start.compile", "vudo"),
        med("start.cached", "vudo"),
        ">=",
        5,
        "compile / cached",
    )
    ratio(
        "await seance.invoke <= 3x call_sync",
        med("seance.invoke", "vudo", "invoke"),
        med("seance.invoke", "vudo", "call_sync"),
        "<=",
        3,
        "invoke / call_sync",
    )
    ratio(
        "summon + dismiss >= 3x faster than fresh Store + Linker.instantiate",
        med("seance.summon", "wasmtime"),
        med("seance.summon", "vudo", "module cached"),
        ">=",
        3,
        "wasmtime / vudo",
    )
    seq = _find(rows, "parallel.burn", "vudo", "await a")
    par = _find(rows, "parallel.burn", "vudo", "gather")
    ratio(
        "parallel speed-up of 2 calls >= 1.7x",
        paired_ratio(seq, par) if seq and par else None,
        1.0,
        ">=",
        1.7,
        "sequential / gather, median of per-round ratios",
    )
    beat = med("seance.heartbeat", "vudo", "learned")
    target = "heartbeat keeps >= 80% of beats during a long call"
    if beat is None:
        verdicts.append(Verdict(target, "not measured", "n/a"))
    else:
        verdicts.append(Verdict(target, f"{beat:.1f} %", "PASS" if beat >= 80 else "MISS", beat))
    ratio(
        f"JIT speed kept: fib({sizes.fib}) within 10% of wasmtime",
        med("compute.fib", "vudo"),
        med("compute.fib", "wasmtime", "__call__"),
        "<=",
        1.1,
        "vudo / wasmtime default engine",
    )
    ratio(
        "JIT speed kept: memory-bound loop within 10% of wasmtime",
        med("compute.mem", "vudo"),
        med("compute.mem", "wasmtime", "__call__"),
        "<=",
        1.1,
        "vudo / wasmtime default engine",
    )
    return verdicts
