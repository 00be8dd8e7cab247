"""Dismissing Séance members with messages pending, directly on :class:`MessageBus`.

    python -m benchmarks.bus [--repeat N]

N members join, each sends one message to the next member on channel 0 and one to the
member after that on channel 1 (so everybody has two pending messages on two channels,
and has sent two still queued for others), then all of them leave in join order. Only
the leaves are timed. The report gives the time per member at N = 1,000 and 10,000 (best
of ``--repeat`` runs) and their ratio: a leave that costs the same whatever the size of
the bus gives a ratio close to 1, one that scans every queue gives about 10.

``dismiss`` times a whole ``Seance.dismiss()`` of N summoned Spirits with the same
messages pending: bus membership, queues and the Spirits' instances released.

``scanning`` is the bus's former ``leave`` (a scan of every queue key), copied here as a
baseline; ``indexed`` is :class:`vudo_runtime.loas.messaging.MessageBus` as it is now.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from vudo_runtime import Message, Seance
from vudo_runtime.loas.messaging import DEFAULT_QUEUE_LIMIT, MessageBus

SIZES = (1_000, 10_000)


class _Bus(Protocol):
    def join(self, name: str) -> None: ...
    def leave(self, name: str) -> None: ...
    def send(self, sender: str, to: str, payload: bytes, channel: int = 0) -> bool: ...


class ScanningBus:
    """The former MessageBus membership and send path: queues keyed (receiver, channel),
    and a ``leave`` that scans every key (baseline only)."""

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.limit = limit
        self._queues: dict[tuple[str, int], collections.deque[Message]] = {}
        self._members: set[str] = set()
        self._lock = threading.Lock()

    def join(self, name: str) -> None:
        with self._lock:
            self._members.add(name)

    def leave(self, name: str) -> None:
        with self._lock:
            self._members.discard(name)
            for key in [k for k in self._queues if k[0] == name]:
                del self._queues[key]

    def send(self, sender: str, to: str, payload: bytes, channel: int = 0) -> bool:
        with self._lock:
            if to not in self._members:
                return False
            queue = self._queues.setdefault((to, channel), collections.deque())
            if len(queue) >= self.limit:
                return False
            queue.append(Message(sender, to, bytes(payload), channel))
        return True


def time_leaves(make: Callable[[], _Bus], n: int) -> float:
    """Seconds for ``n`` members, two messages pending each, to leave one by one."""
    bus = make()
    names = [f"spirit-{i}" for i in range(n)]
    for name in names:
        bus.join(name)
    for i, name in enumerate(names):
        assert bus.send(name, names[(i + 1) % n], b"ping", 0)
        assert bus.send(name, names[(i + 2) % n], b"pong", 1)
    gc.collect()
    gc.disable()  # as timeit does: a collection would land on whichever leave ran then
    try:
        start = time.perf_counter()
        for name in names:
            bus.leave(name)
        return time.perf_counter() - start
    finally:
        gc.enable()


SMALL_SPIRIT = b'(module (memory (export "memory") 1) (func (export "noop")))'


def time_dismiss(n: int) -> float:
    """Seconds for ``Seance.dismiss()`` of ``n`` summoned Spirits, two messages pending
    for each (releasing their instances included)."""

    async def run() -> float:
        seance = Seance()
        names = [f"spirit-{i}" for i in range(n)]
        for name in names:
            await seance.summon(name, SMALL_SPIRIT, compact=True)
        for i, name in enumerate(names):
            assert seance.send(name, names[(i + 1) % n], b"ping", 0)
            assert seance.send(name, names[(i + 2) % n], b"pong", 1)
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            await seance.dismiss()
            return time.perf_counter() - start
        finally:
            gc.enable()

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bus", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs per size (best is kept)")
    args = parser.parse_args(argv)
    buses: dict[str, Callable[[], _Bus]] = {"scanning": ScanningBus, "indexed": MessageBus}
    sizes = " and ".join(f"{n:,}" for n in SIZES)
    print(f"MessageBus.leave, {sizes} members, best of {args.repeat}: time per member")
    header = f"{'bus':<10}" + "".join(f"{f'N={n:,}':>14}" for n in SIZES) + f"{'ratio':>10}"
    print(header)
    for label, make in buses.items():
        per = [min(time_leaves(make, n) for _ in range(max(1, args.repeat))) / n for n in SIZES]
        cells = "".join(f"{p * 1e6:>11.2f} us" for p in per)
        print(f"{label:<10}{cells}{per[-1] / per[0]:>9.2f}x")
    # The whole Séance: bus membership, pending messages and the instances released.
    per = [min(time_dismiss(n) for _ in range(max(1, args.repeat // 2))) / n for n in SIZES]
    cells = "".join(f"{p * 1e6:>11.2f} us" for p in per)
    print(f"{'dismiss':<10}{cells}{per[-1] / per[0]:>9.2f}x   (Seance.dismiss, per Spirit)")


if __name__ == "__main__":
    main()
