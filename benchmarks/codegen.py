"""What ``vudo codegen`` costs on a large DOL file: parse, generate, and the two together.

    python -m benchmarks.codegen [--quick] [--repeat N] [--size CHARS] [--before DIR]

The headline row, ``spirit``: about 1 MB of DOL (``--quick``: 100 KB; ``--size`` to
choose) made by repeating
declarations written the way the DOL Spirit packages write them: a ``docs`` block before
each declaration, genes with defaults, ``where`` constraints, rules and inheritance
(``extends``), methods and functions with real bodies, enums, consts, traits, a system and
host imports. Each unit gets fresh names, so the file is one valid module. The
``big enum`` row is an input the old front end was quadratic on: one enum of thousands
of variants (its duplicate check looked at every variant before). ``classic`` repeats
geometry-style genes with ``///`` docs and methods, ``fields`` is one gene of thousands of
documented fields and ``docs`` a long ``///`` run: inputs an older front end also parses.
Prints the median of ``--repeat`` runs (default 5; 3 with ``--quick``) with p25..p75, and
the time per input character. The target: the whole of codegen for 1 MB in under a second.

``--before DIR`` also times another copy of the package (``DIR/vudo_runtime``, say an
older checkout) on the same inputs, in a subprocess, and prints the ratios against the
10x target (a case the other copy refuses is reported as refused).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

TARGET_SECONDS = 1.0
MB = 1_000_000

_UNIT = """
docs {{
    A rigid body in 3D space (unit {i}): mass, position and velocity.

    Units are SI unless noted. Bodies integrate with a semi-implicit Euler
    step; see `integrate_{i}` for the update rule and `Body{i}.kinetic_energy`
    for what "energy" means here. Don't confuse it with {{potential}} energy.
}}

pub gen Vector{i} {{
    has x: f64
    has y: f64
    has z: f64

    fun length() -> f64 {{
        return sqrt(this.x * this.x + this.y * this.y + this.z * this.z)
    }}
}}

docs {{
    A body with a mass and a state of motion.
}}

pub gen Body{i} {{
    /// Rest mass in kilograms.
    has mass: f64 = 1.0 where mass > 0.0
    has position: Vector{i}
    has velocity: Vector{i}
    has restitution: f64 = 0.5 where restitution >= 0.0 && restitution <= 1.0
    has sleeping: bool = false
    has label: string = "body {i}"
    @crdt(lww) has phase: Phase{i} = Phase{i}::Solid

    rule mass_is_finite {{
        this.mass < 1.0e30
    }}

    docs {{
        Kinetic energy of the body: 1/2 m v^2, in joules.
    }}

    fun kinetic_energy() -> f64 {{
        let v = this.velocity
        let v2 = v.x * v.x + v.y * v.y + v.z * v.z
        return 0.5 * this.mass * v2
    }}

    fun apply_impulse(jx: f64, jy: f64, jz: f64) -> Body{i} {{
        if this.sleeping {{
            return this
        }}
        let inv = 1.0 / this.mass
        let dv = Vector{i} {{ x: jx * inv, y: jy * inv, z: jz * inv }}
        return Body{i} {{
            mass: this.mass,
            position: this.position,
            velocity: vec_add_{i}(this.velocity, dv),
            restitution: this.restitution,
            sleeping: false,
            label: "impulse: {{}}",
            phase: this.phase
        }}
    }}
}}

docs {{
    A body carrying an electric charge, in coulombs.
}}

pub gen Charged{i} extends Body{i} {{
    has charge: f64 = 0.0
    has shielded: bool = false
}}

docs {{
    States of matter a body can be in.
}}

pub enum Phase{i} {{
    Solid,
    Liquid,
    Gas,
    Plasma
}}

docs {{
    Standard gravity (m/s^2) and the integration limits for unit {i}.
}}

pub const GRAVITY_{i}: f64 = 9.80665
pub const MAX_STEPS_{i}: i64 = 10_000
const LABEL_{i}: string = "unit {i}"

docs {{
    Adds two vectors component-wise.
}}

pub fun vec_add_{i}(a: Vector{i}, b: Vector{i}) -> Vector{i} {{
    return Vector{i} {{
        x: a.x + b.x,
        y: a.y + b.y,
        z: a.z + b.z
    }}
}}

docs {{
    Scales a vector by `s`.
}}

pub fun vec_scale_{i}(v: Vector{i}, s: f64) -> Vector{i} {{
    return Vector{i} {{
        x: v.x * s,
        y: v.y * s,
        z: v.z * s
    }}
}}

docs {{
    The cross product a × b, perpendicular to both.
    |a × b| = |a| |b| sin θ
}}

pub fun vec_cross_{i}(a: Vector{i}, b: Vector{i}) -> Vector{i} {{
    return Vector{i} {{
        x: a.y * b.z - a.z * b.y,
        y: a.z * b.x - a.x * b.z,
        z: a.x * b.y - a.y * b.x
    }}
}}

// ─────────────────────────────────────────────────────────────────────────────
// Integration
// ─────────────────────────────────────────────────────────────────────────────

docs {{
    Integrates `body` over `steps` steps of `dt` seconds under gravity.
    Sleeping bodies are returned unchanged; 'settled' ones stop early.
}}

pub fun integrate_{i}(body: Body{i}, dt: f64, steps: i64) -> Body{i} {{
    // semi-implicit Euler: velocity first, then position
    let mut b = body
    let mut k = 0
    while k < steps && k < MAX_STEPS_{i} {{
        let g = Vector{i} {{ x: 0.0, y: 0.0 - GRAVITY_{i} * dt, z: 0.0 }}
        b = b.apply_impulse(g.x * b.mass, g.y * b.mass, g.z * b.mass)
        /* a {{ brace in a comment }} and a "quote" */
        match b.phase {{
            Phase{i}::Gas => {{ k = k + 2 }}
            _ => {{ k = k + 1 }}
        }}
    }}
    log_{i}(1, "integrated {{}} steps")
    return b
}}

docs {{
    Prints a message through the host.
}}

sex fun log_{i}(level: i32, message: string)

pub trait Movable{i} {{
    fun move_by(dx: f64, dy: f64, dz: f64) -> Self
    law identity {{
        this.move_by(0.0, 0.0, 0.0) == this
    }}
}}

system Simulation{i} @ 0.9.0 {{
    requires Body{i} >= 0.9.0
    state bodies: List<Body{i}>
}}
"""

_HEADER = """// Generated benchmark input: {units} units of Spirit-style declarations.

module bench.physics @ 0.9.0

docs {{
    A large module for timing vudo codegen.
}}

use local::lib::SPEED_OF_LIGHT
"""


def make_source(size: int) -> str:
    """About ``size`` characters of valid DOL (whole units, at least one)."""
    units: list[str] = []
    total = 0
    i = 0
    while total < size or not units:
        unit = _UNIT.format(i=i)
        units.append(unit)
        total += len(unit)
        i += 1
    return _HEADER.format(units=len(units)) + "".join(units)


_CLASSIC_UNIT = """
/// A point on the integer plane (unit {i}). Size 16, align 8: x@0, y@8.
gen Point{i} {{
    /// Horizontal coordinate.
    has x: i64
    /// Vertical coordinate.
    has y: i64

    /// x + y.
    fun sum() -> i64 {{
        return this.x + this.y
    }}

    /// Multiplies both coordinates by `k` in place.
    fun scale(k: i64) {{
        this.x = this.x * k
        this.y = this.y * k
    }}
}}

/// Fields of mixed width: count@0 (i32), active@4 (bool as i32), value@8 (f64).
gen Mixed{i} {{
    /// A small count, stored as 4 bytes.
    has count: i32
    /// A flag, stored as i32 0 / 1.
    has active: bool
    /// A float, stored as 8 bytes at offset 8.
    has value: f64

    /// count + value, plus 1 when active.
    fun describe() -> f64 {{
        let bonus = if this.active {{ 1.0 }} else {{ 0.0 }}
        return this.count + this.value + bonus
    }}
}}

/// Adds two numbers.
fun add_{i}(a: i64, b: i64) -> i64 {{
    return a + b
}}

/// The larger of `a` and `b`.
fun max_{i}(a: f64, b: f64) -> f64 {{
    if a > b {{
        return a
    }}
    return b
}}
"""


def _repeat(unit: str, size: int, head: str = "", tail: str = "") -> str:
    """``head``, then ``unit`` formatted with i = 0, 1, ... up to about ``size``, then ``tail``."""
    parts = [head]
    total, i = 0, 0
    while total < size or i == 0:
        part = unit.format(i=i)
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts) + tail


def make_classic(size: int) -> str:
    """DOL as the first Spirits wrote it (``///`` docs, genes, methods, functions), which
    the old front end parses too."""
    return _repeat(_CLASSIC_UNIT, size)


def make_fields(size: int) -> str:
    """One gene of thousands of ``///``-documented fields."""
    return _repeat("    /// Field {i}.\n    has f{i}: i64\n", size, "gen Big {\n", "}\n")


def make_docs(size: int) -> str:
    """A long run of ``///`` lines documenting one small gene."""
    return _repeat(
        "/// doc line {i} with some words in it to be long\n", size, "", "gen A { has x: i64 }\n"
    )


def make_enum(size: int) -> str:
    """One enum of about ``size`` characters (``enum Element { Element0, ... }``)."""
    return _repeat("    Element{i},\n", size, "enum Element {\n", "}\n")


#: (row name, input maker, size with --quick, size without).
CASES: list[tuple[str, Callable[[int], str], int, int]] = [
    ("spirit", make_source, MB // 10, MB),
    ("classic", make_classic, MB // 10, MB),
    ("fields", make_fields, 20_000, 100_000),
    ("docs", make_docs, 20_000, 100_000),
    ("big enum", make_enum, 20_000, 100_000),
]
#: How much faster than ``--before`` each case should be.
TARGET_SPEEDUP = 10.0


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(text: str, repeat: int) -> dict[str, list[float]]:
    """Seconds for parse, generate and both, ``repeat`` times each."""
    from vudo_runtime.codegen import generate_from_dol, parse_dol

    samples: dict[str, list[float]] = {"parse": [], "generate": [], "codegen": []}
    dol = parse_dol(text, "bench.dol")
    for _ in range(repeat):
        samples["parse"].append(_timed(lambda: parse_dol(text, "bench.dol")))
        samples["generate"].append(_timed(lambda: generate_from_dol(dol, "bench.dol")))
        samples["codegen"].append(
            _timed(lambda: generate_from_dol(parse_dol(text, "bench.dol"), "bench.dol"))
        )
    return samples


def measure_cases(sizes: dict[str, int], repeat: int) -> dict[str, dict[str, list[float]] | str]:
    """:func:`measure` for every case of ``CASES`` named in ``sizes``; for a case the
    package refuses (an older front end may not know some syntax), why, as text."""
    results: dict[str, dict[str, list[float]] | str] = {}
    for name, make, _, _ in CASES:
        if name in sizes:
            try:
                results[name] = measure(make(sizes[name]), repeat)
            except Exception as exc:  # reported as the case's result, not hidden
                results[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return results


def _quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def _before(
    directory: str, sizes: dict[str, int], repeat: int
) -> dict[str, dict[str, list[float]] | str] | str:
    """Samples from the package copy in ``directory``, in a subprocess; or why not.

    The subprocess imports ``vudo_runtime`` from ``directory`` but this very benchmark
    module by its file path: an older checkout may have a ``benchmarks`` package of its
    own, without this file, and the inputs must be the same on both sides.
    """
    code = (
        "import importlib.util, json, sys\n"
        f"sys.path.insert(0, {directory!r})\n"
        "import vudo_runtime\n"
        f"spec = importlib.util.spec_from_file_location('_bench_codegen', {__file__!r})\n"
        "bench = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(bench)\n"
        "print(vudo_runtime.__file__)\n"
        f"print(json.dumps(bench.measure_cases({sizes!r}, {repeat})))\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=3600,
            cwd=directory,
        )
    except subprocess.TimeoutExpired:
        return "timed out"
    if result.returncode != 0:
        return (result.stderr.strip().splitlines() or ["failed"])[-1]
    lines = result.stdout.strip().splitlines()
    expected = os.path.join(os.path.abspath(directory), "vudo_runtime")
    if len(lines) < 2 or not os.path.abspath(lines[0]).startswith(expected):
        return f"imported vudo_runtime from {lines[0] if lines else '?'}, not {expected}"
    data: dict[str, dict[str, list[float]] | str] = json.loads(lines[-1])
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.codegen", description="Time vudo codegen on big DOL files."
    )
    parser.add_argument("--quick", action="store_true", help="about 100 KB instead of 1 MB")
    parser.add_argument("--repeat", type=int, help="runs per measurement (default 5, quick 3)")
    parser.add_argument("--size", type=int, help="the spirit-style input's size in characters")
    parser.add_argument("--before", metavar="DIR", help="also time DIR/vudo_runtime")
    args = parser.parse_args(argv)
    sizes = {name: quick if args.quick else full for name, _, quick, full in CASES}
    if args.size:
        sizes["spirit"] = args.size
    repeat = args.repeat or (3 if args.quick else 5)
    texts = {name: make(sizes[name]) for name, make, _, _ in CASES}
    print(f"vudo codegen: median of {repeat} runs (p25..p75)")
    for name, text in texts.items():
        size = f"{len(text) / MB:.2f} MB" if len(text) >= MB // 10 else f"{len(text):,} chars"
        print(f"  {name:9} {size} ({len(text):,} characters, {text.count(chr(10)):,} lines)")
    runs: dict[str, dict[str, dict[str, list[float]] | str]] = {}
    if args.before:
        before = _before(args.before, sizes, repeat)
        if isinstance(before, str):
            print(f"before ({args.before}): not measured: {before}")
        else:
            runs["before"] = before
    runs["after"] = measure_cases(sizes, repeat)
    print(f"{'case':9} {'code':7} {'step':9} {'median':>9} {'p25..p75':>19} {'µs/char':>8}")
    medians: dict[tuple[str, str, str], float] = {}
    for name, text in texts.items():
        for label, cases in runs.items():
            samples = cases[name]
            if isinstance(samples, str):
                print(f"{name:9} {label:7} refused ({samples})")
                continue
            for step in ("parse", "generate", "codegen"):
                low, mid, high = _quartiles(samples[step])
                medians[label, name, step] = mid
                print(
                    f"{name:9} {label:7} {step:9} {mid:8.3f}s {low:8.3f}..{high:.3f}s "
                    f"{1e6 * mid / len(text):8.2f}"
                )
    if "before" in runs:
        print(f"speed-up (before / after, median; target: codegen {TARGET_SPEEDUP:.0f}x):")
        for name in texts:
            if ("before", name, "codegen") not in medians:
                print(f"  {name:9} old: refused ({runs['before'][name]})")
                continue
            ratios = {
                step: medians["before", name, step] / medians["after", name, step]
                for step in ("parse", "generate", "codegen")
            }
            verdict = "PASS" if ratios["codegen"] >= TARGET_SPEEDUP else "MISS"
            shown = ", ".join(f"{step} {ratio:.1f}x" for step, ratio in ratios.items())
            print(f"  {name:9} {shown}  target {TARGET_SPEEDUP:.0f}x: {verdict}")
    spirit = texts["spirit"]
    per_mb = medians["after", "spirit", "codegen"] * MB / len(spirit)
    verdict = "PASS" if per_mb < TARGET_SECONDS else "MISS"
    print(f"target: codegen of 1 MB under {TARGET_SECONDS:.0f} s: {per_mb:.3f} s per MB {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
