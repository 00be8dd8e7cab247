"""``python -m benchmarks`` (or ``vudo bench``): vudo-runtime against the other Python hosts.

Every scenario runs against every host that installs, in one process, interleaved
(one sample per host per round, the order rotated each round). The report gives
medians per operation, the quartiles, the ratio to vudo's row, machine facts, and
the targets marked PASS or MISS.

Options: ``--quick`` (tiny sizes, seconds), ``--json OUT.json`` (raw samples),
``--scenario NAME`` (a scenario key or number, or a case id prefix; repeatable),
``--repeat N`` (samples per bench).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TextIO

from benchmarks.harness import (
    Bench,
    NotApplicable,
    Row,
    Timer,
    describe,
    fmt_rate,
    fmt_time,
    fmt_value,
    interleave,
    paired_ratio,
)
from benchmarks.hosts import Host, Unavailable, make_hosts
from benchmarks.scenarios import Case, Scenario, Verdict, judge, scenarios, select
from benchmarks.workloads import LOOPS, Context, Sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark vudo-runtime against the other Python WebAssembly hosts.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: runs in seconds")
    parser.add_argument("--json", metavar="OUT.json", help="write every raw sample as JSON")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="run only this scenario (key or number, e.g. calls or 1) or case id prefix "
        "(e.g. memory.point); repeatable",
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="samples per bench")
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["--"]:  # `vudo bench -- --quick` passes the separator through
        rest = rest[1:]
    args = parser.parse_args(rest)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


# ---- machine facts --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(hosts: Sequence[Host]) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for host in hosts:
        versions.update(host.versions())
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": versions,
        "loadavg_start": load,
    }


# ---- running --------------------------------------------------------------------------------


def calibrate_burn(seconds: float) -> int:
    """loops.wasm ``burn(n)`` steps that take about ``seconds`` here (vudo call_sync)."""
    from vudo_runtime import Spirit

    with Spirit.load_sync(LOOPS, name="calibrate") as sp:
        n = 1_000_000
        for _ in range(3):
            t0 = perf_counter()
            sp.call_sync("burn", n)
            elapsed = max(perf_counter() - t0, 1e-6)
            n = max(1000, int(n * seconds / elapsed))
    return n


def run_case(
    timer: Timer, hosts: Sequence[Host], scenario: Scenario, case: Case, repeat: int
) -> list[Row]:
    """Set the case up on every host, time all benches interleaved, and tear down."""
    rows: list[Row] = []
    benches: list[Bench] = []
    for host in hosts:

        def na(reason: str, host: Host = host) -> None:
            rows.append(Row(scenario.key, case.id, host.name, "", case.unit, [], na=reason))

        if isinstance(host, Unavailable):
            na("unavailable (see Hosts)")
            continue
        method = getattr(host, case.method, None)
        if method is None:
            na("not supported by this adapter")
            continue
        try:
            made = method(**case.kwargs)
        except NotApplicable as exc:
            na(str(exc))
            continue
        except Exception as exc:
            na(f"error in setup: {describe(exc)}")
            continue
        for bench in made:
            bench.host = host.name
            benches.append(bench)
    try:
        interleave(timer, benches, repeat)
    finally:
        for bench in benches:
            if bench.close is not None:
                try:
                    bench.close()
                except Exception as exc:  # a failed teardown must not hide the results
                    bench.error = bench.error or f"close: {describe(exc)}"
    by_host: dict[str, list[Row]] = {}
    for bench in benches:
        by_host.setdefault(bench.host, []).append(
            Row(
                scenario.key,
                case.id,
                bench.host,
                bench.label,
                bench.metric or case.unit,
                list(bench.samples),
                n=bench.n,
                per=bench.per,
                note=bench.note,
                nbytes=bench.nbytes,
                na=f"error: {bench.error}" if bench.error else None,
            )
        )
    ordered: list[Row] = []
    for host in hosts:
        ordered += by_host.get(host.name, [])
        ordered += [r for r in rows if r.host == host.name]
    base = next((r for r in ordered if r.host == "vudo" and r.samples), None)
    if base is not None:
        base.baseline = True
    return ordered


# ---- report ---------------------------------------------------------------------------------


def _note(row: Row, rows: Sequence[Row]) -> str:
    """The row's note, with throughput and speed-up filled in."""
    parts = []
    note = row.note
    med = row.median
    if note.startswith("speedup:"):
        other = next(
            (r for r in rows if r.host == row.host and r.label == note[8:] and r.samples), None
        )
        note = ""
        speedup = paired_ratio(other, row) if other is not None else None
        if speedup is not None:
            parts.append(f"speed-up {speedup:.2f}x (median of per-round ratios)")
    if row.nbytes and med and row.unit == "s":
        parts.append(fmt_rate(row.nbytes, med))
    if note:
        parts.append(note)
    return "; ".join(parts)


def case_lines(case: Case, rows: Sequence[Row]) -> list[list[str]]:
    base = next((r for r in rows if r.baseline), None)
    out: list[list[str]] = []
    first = True
    for row in rows:
        title = case.title if first else ""
        first = False
        if row.na is not None and not row.samples:
            out.append([title, row.host, row.label, "n/a", "", "", "", row.na])
            continue
        med = row.median
        assert med is not None
        q = row.quartiles
        spread = f"{fmt_value(q[0], row.unit)} .. {fmt_value(q[1], row.unit)}" if q else ""
        ratio = ""
        if base is not None and row.unit == "s" and base.unit == "s" and base.median:
            ratio = f"{med / base.median:.2f}x"
        count = f"{len(row.samples)} x {row.n:,}" if row.unit == "s" else f"{len(row.samples)}"
        note = _note(row, rows)
        if row.na:
            note = f"{note}; {row.na}" if note else row.na
        out.append(
            [title, row.host, row.label, fmt_value(med, row.unit), spread, count, ratio, note]
        )
    return out


HEADER = ["case", "host", "variant", "median", "p25 .. p75", "samples", "vs vudo", "note"]


def render_table(lines: list[list[str]]) -> list[str]:
    widths = [max(len(x[i]) for x in [HEADER, *lines]) for i in range(len(HEADER) - 1)]

    def fmt(cells: list[str]) -> str:
        head = "  ".join(
            c.rjust(w) if i in (3, 5, 6) else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )
        return f"  {head}  {cells[-1]}".rstrip()

    rule = "  " + "-" * (sum(widths) + 2 * len(widths) + 4)
    return [fmt(HEADER), rule, *(fmt(x) for x in lines)]


def report(
    out: TextIO,
    info: dict[str, Any],
    hosts: Sequence[Host],
    sizes: Sizes,
    results: list[tuple[Scenario, list[tuple[Case, list[Row]]]]],
    verdicts: Sequence[Verdict],
    elapsed: float,
) -> None:
    w = out.write
    w("vudo-runtime benchmarks: the Python WebAssembly hosts side by side\n\n")
    w(f"  date      {info['date']}\n")
    w(f"  machine   {info['cpu']}, {info['cores']} cores; {info['platform']}\n")
    w(f"  python    {info['python']}\n")
    pkgs = ", ".join(f"{k} {v or 'not installed'}" for k, v in info["packages"].items())
    w(f"  packages  {pkgs}\n")
    w(f"  load avg  {info['loadavg_start']} at start, {info.get('loadavg_end')} at end\n")
    mode = "QUICK (tiny sizes: indicative only)" if sizes.quick else "full"
    w(
        f"  run       {mode}; {sizes.repeat} samples per bench by default (heavy cases fewer),"
        f" ~{fmt_time(sizes.sample_time)} per sample, interleaved round-robin\n"
    )
    w("\nHosts\n")
    for host in hosts:
        if isinstance(host, Unavailable):
            w(f"  {host.name:9} UNAVAILABLE: {host.reason}\n")
        else:
            w(f"  {host.name:9} {(host.__doc__ or '').strip().splitlines()[0]}\n")
    w(
        "\nMedian time per operation; 'vs vudo' = this row's median / vudo's first row"
        " (above 1: slower than vudo).\n"
    )
    for scenario, cases in results:
        w(f"\n{scenario.number}. {scenario.title}\n")
        if scenario.note:
            w(f"   ({scenario.note})\n")
        lines: list[list[str]] = []
        for case, rows in cases:
            lines += case_lines(case, rows)
        for line in render_table(lines):
            w(line + "\n")
    w("\nTargets\n")
    width = max((len(v.target) for v in verdicts), default=10)
    for v in verdicts:
        w(f"  {v.status:4}  {v.target.ljust(width)}  {v.measured}\n")
    if sizes.quick:
        w("  (quick run: tiny sizes; the targets are meant for the full run)\n")
    w(f"\nfinished in {elapsed:.1f} s\n")


def to_json(
    info: dict[str, Any],
    hosts: Sequence[Host],
    sizes: Sizes,
    results: list[tuple[Scenario, list[tuple[Case, list[Row]]]]],
    verdicts: Sequence[Verdict],
) -> dict[str, Any]:
    return {
        "machine": info,
        "sizes": {k: v for k, v in vars(sizes).items()},
        "hosts": [
            {
                "name": h.name,
                "available": not isinstance(h, Unavailable),
                "reason": getattr(h, "reason", None),
                "versions": h.versions(),
            }
            for h in hosts
        ],
        "results": [
            {
                "scenario": r.scenario,
                "case": r.case,
                "title": c.title,
                "host": r.host,
                "variant": r.label,
                "unit": r.unit,
                "median": r.median,
                "samples": r.samples,
                "batch": r.n,
                "per_op": r.per,
                "bytes": r.nbytes,
                "note": r.note,
                "na": r.na,
                "baseline": r.baseline,
            }
            for _, cases in results
            for c, rows in cases
            for r in rows
        ],
        "targets": [vars(v) for v in verdicts],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = perf_counter()
    sizes = Sizes.tiny() if args.quick else Sizes.full()
    if args.repeat is not None:
        sizes = Sizes(**{**vars(sizes), "repeat": args.repeat})
    loop = asyncio.new_event_loop()
    ctx = Context(sizes=sizes, loop=loop)
    saved_env = {k: os.environ.get(k) for k in ("EXTISM_CACHE_CONFIG", "VUDO_CACHE_DIR")}
    # vudo's default compiled-module cache goes to the scratch directory too: the run
    # starts from a known state and leaves nothing behind
    os.environ["VUDO_CACHE_DIR"] = str(ctx.tmp / "vudo-default-cache")
    try:
        chosen = select(scenarios(sizes, lambda: len(ctx.big_module())), args.scenario)
        if not chosen:
            print(f"no scenario matches {args.scenario}", file=sys.stderr)
            return 2
        hosts = make_hosts(ctx)
        info = machine_info(hosts)
        if any(sc.key in ("parallel", "seance") for sc in chosen):
            ctx.burn_n = calibrate_burn(sizes.burn_seconds)
            ctx.beat_n = max(1000, int(ctx.burn_n * sizes.beat_seconds / sizes.burn_seconds))
        timer = Timer(loop, sizes.sample_time)
        results: list[tuple[Scenario, list[tuple[Case, list[Row]]]]] = []
        for scenario in chosen:
            done: list[tuple[Case, list[Row]]] = []
            for case in scenario.cases:
                repeat = sizes.repeat
                if case.max_repeat is not None and args.repeat is None:
                    repeat = min(repeat, case.max_repeat)
                t0 = perf_counter()
                rows = run_case(timer, hosts, scenario, case, repeat)
                done.append((case, rows))
                print(
                    f"  [{scenario.number}] {case.id}: {perf_counter() - t0:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            results.append((scenario, done))
        try:
            info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            info["loadavg_end"] = None
        all_rows = [r for _, cases in results for _, rows in cases for r in rows]
        verdicts = judge(all_rows, sizes)
        report(sys.stdout, info, hosts, sizes, results, verdicts, perf_counter() - started)
        if args.json:
            data = to_json(info, hosts, sizes, results, verdicts)
            Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        errors = [r for r in all_rows if r.na and r.na.startswith("error")]
        for r in errors:
            print(f"error: {r.case} {r.host} {r.label}: {r.na}", file=sys.stderr)
        return 1 if errors else 0
    finally:
        loop.close()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    sys.exit(main())
