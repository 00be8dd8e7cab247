"""State backends: one write plus one read, per operation, memory against SQLite.

    python -m benchmarks.state [--quick] [--dir DIR] [--ops N] [--samples S]

Each operation stores a fresh 64-byte value under a new key and reads it back, either
through the host API (``seance.state[k] = v; seance.state[k]``) or through a guest call
(one call of a WAT Spirit that calls ``vudo_state_set`` then ``vudo_state_get``). A sample
times ``--ops`` operations; the table gives the median over ``--samples`` samples (the
backends interleaved, their order rotated each round) and the ratio to the memory
backend. SQLite runs with ``synchronous=FULL`` (the default: fsync before a write
returns) and ``NORMAL`` (no fsync per commit). The fsync cost is the disk's: put the file
where your state will live with ``--dir``.

The concurrency rows time the same host write+read from 4 threads at once (wall time per
operation), and the reads two threads complete while a third writes, with the backend's
per-thread read connections against one connection shared under the write lock.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from vudo_runtime import Seance, Spirit
from vudo_runtime.loas.state import MemoryBackend, SqliteBackend, StateBackend, Synchronous

#: setget(key, value): vudo_state_set then vudo_state_get into a buffer at 1024; returns
#: the length read (key and value are length-prefixed strings, as str arguments become).
SETGET_WAT = b"""
(module
  (import "loa" "vudo_state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "setget") (param $key i32) (param $val i32) (result i32)
    (drop (call $set
      (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
      (i32.add (local.get $val) (i32.const 4)) (i32.load (local.get $val))))
    (call $get
      (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
      (i32.const 1024) (i32.const 1024))))
"""

VALUE = bytes(range(64))
SYNCS: tuple[Synchronous, ...] = ("FULL", "NORMAL")


class LockedReads(SqliteBackend):
    """Baseline: reads go through the one write connection, under its lock."""

    def get(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            sql = "SELECT value FROM state WHERE namespace = ? AND key = ?"
            rows = self._writer.execute(sql, (namespace, key)).fetchall()
        return bytes(rows[0][0]) if rows else None


class Subject:
    """One backend in a Séance, with the guest Spirit summoned."""

    def __init__(self, label: str, backend: StateBackend, seance: Seance, spirit: Spirit) -> None:
        self.label, self.backend, self.seance, self.spirit = label, backend, seance, spirit
        self.round = 0

    def host(self, ops: int) -> float:
        """Seconds per host write+read."""
        state, self.round = self.seance.state, self.round + 1
        keys = [f"host-{self.round}-{i}" for i in range(ops)]
        start = time.perf_counter()
        for key in keys:
            state[key] = VALUE
            state[key]
        return (time.perf_counter() - start) / ops

    def guest(self, ops: int) -> float:
        """Seconds per guest call doing one set and one get."""
        memory, self.round = self.spirit.memory, self.round + 1
        assert memory is not None
        value = memory.write_string(VALUE.hex()[:64])
        keys = [memory.write_string(f"guest-{self.round}-{i}") for i in range(ops)]
        call = self.spirit.call_sync
        start = time.perf_counter()
        for key in keys:
            call("setget", key, value)
        elapsed = (time.perf_counter() - start) / ops
        for key in keys:
            memory.free(key)
        memory.free(value)
        return elapsed


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


def threaded(backend: StateBackend, threads: int, ops: int, tag: str) -> float:
    """Wall seconds per host write+read with ``threads`` threads doing ``ops`` each."""

    def work(i: int) -> None:
        for j in range(ops):
            backend.set("threads", f"{tag}-{i}-{j}", VALUE)
            backend.get("threads", f"{tag}-{i}-{j}")

    ready = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        ready.wait()
        work(i)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    ready.wait()  # every thread started: time the work, not the thread starts
    start = time.perf_counter()
    for t in pool:
        t.join()
    return (time.perf_counter() - start) / (threads * ops)


def reads_while_writing(backend: StateBackend, writes: int) -> float:
    """Reads per second two threads complete while a third does ``writes`` writes."""
    backend.set("rw", "hot", VALUE)
    done = threading.Event()
    counts = [0, 0]

    def read(i: int) -> None:
        while not done.is_set():
            backend.get("rw", "hot")
            counts[i] += 1

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    start = time.perf_counter()
    for t in readers:
        t.start()
    for j in range(writes):
        backend.set("rw", f"w{j}", VALUE)
    done.set()
    for t in readers:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


async def run(args: argparse.Namespace, where: Path) -> None:
    backends: dict[str, StateBackend] = {"memory": MemoryBackend()}
    for sync in SYNCS:
        backends[f"sqlite {sync}"] = SqliteBackend(where / f"{sync}.db", synchronous=sync)
    subjects = []
    for label, backend in backends.items():
        seance = Seance(state=backend, namespace="bench")
        spirit = await seance.summon("w", SETGET_WAT, mode="inline")
        subjects.append(Subject(label, backend, seance, spirit))
    for subject in subjects:  # warm up: connections, statements, the first WAL pages
        subject.host(5)
        subject.guest(5)
    samples: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.samples):
        turn = subjects[round_ % len(subjects) :] + subjects[: round_ % len(subjects)]
        for subject in turn:
            samples.setdefault((subject.label, "host"), []).append(subject.host(args.ops))
            samples.setdefault((subject.label, "guest"), []).append(subject.guest(args.ops))
    median = {key: statistics.median(values) for key, values in samples.items()}

    print(
        f"SQLite state write+read per op: median of {args.samples} samples x {args.ops} ops, "
        f"{len(VALUE)}-byte values, files in {where}"
    )
    print(f"{'backend':<16}{'host API':>14}{'ratio':>10}{'guest call':>14}{'ratio':>10}")
    for subject in subjects:
        host, guest = median[(subject.label, "host")], median[(subject.label, "guest")]
        host_ratio = host / median[("memory", "host")]
        guest_ratio = guest / median[("memory", "guest")]
        print(
            f"{subject.label:<16}{fmt_us(host):>14}{host_ratio:>9.1f}x"
            f"{fmt_us(guest):>14}{guest_ratio:>9.1f}x"
        )
    full, normal = median[("sqlite FULL", "host")], median[("sqlite NORMAL", "host")]
    print(f"FULL / NORMAL (host API): {full / normal:.1f}x (the fsync per write)")
    for subject in subjects:
        await subject.seance.dismiss()

    print()
    print(f"Threads (host write+read; wall time per op, {args.ops} ops per thread)")
    print(f"{'backend':<16}{'1 thread':>14}{'4 threads':>14}")
    for label, backend in backends.items():
        one = threaded(backend, 1, args.ops, f"{label}-1")
        four = threaded(backend, 4, args.ops, f"{label}-4")
        print(f"{label:<16}{fmt_us(one):>14}{fmt_us(four):>14}")
    for backend in backends.values():
        backend.close()

    print()
    print("Reads per second by 2 threads while a third writes (sqlite FULL)")
    choices: dict[str, Callable[[Path], StateBackend]] = {
        "a read connection per thread (SqliteBackend)": lambda p: SqliteBackend(p),
        "one connection under the write lock": lambda p: LockedReads(p),
    }
    for label, make in choices.items():
        backend = make(where / f"rw-{len(label)}.db")
        try:
            rate = reads_while_writing(backend, args.ops)
        finally:
            backend.close()
        print(f"  {label:<46}{rate:>12,.0f} /s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.state", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="few ops and samples: seconds")
    parser.add_argument("--dir", type=Path, help="where the SQLite files go (default: a temp dir)")
    parser.add_argument("--ops", type=int, help="operations per sample (default 200, quick 20)")
    parser.add_argument("--samples", type=int, help="samples per row (default 9, quick 3)")
    args = parser.parse_args(argv)
    args.ops = args.ops or (20 if args.quick else 200)
    args.samples = args.samples or (3 if args.quick else 9)
    if args.ops < 1 or args.samples < 1:
        parser.error("--ops and --samples must be at least 1")
    with tempfile.TemporaryDirectory(prefix="vudo-state-bench-", dir=args.dir) as tmp:
        asyncio.run(run(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
