"""Typed stubs: drive Spirits through the facades generated from their DOL declarations.

``codegen/counter.py`` and ``codegen/strings.py`` were written by ``vudo codegen`` from
``spirits/counter.dol`` and ``spirits/strings.dol`` (refresh them all with
``python -m vudo_runtime.codegen.generator --refresh``). Every call is typed: genes come
back as handles whose methods run in the Spirit, strings go in and come out as ``str``.
Run it from anywhere::

    python examples/typed_stubs.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPIRITS = ROOT / "spirits"
sys.path.insert(0, str(ROOT))  # the generated stubs are the top-level `codegen` package

from codegen.counter import Counter, CounterSpirit  # noqa: E402
from codegen.strings import StringsSpirit  # noqa: E402
from vudo_runtime import load_spirit  # noqa: E402


async def main() -> None:
    counter = await CounterSpirit.load(SPIRITS / "counter.wasm")
    async with counter.spirit:
        c = await counter.new_counter(5)  # the Spirit allocates the gene; we hold a handle
        print(f"new_counter(5) -> {c.__class__.__name__} at {c.ptr:#x}")
        print(f"increment() -> {await c.increment()}")
        print(f"add(10) -> {await c.add(10)} (not stored)")
        state = await c.read()  # the gene's fields, read from the Spirit's memory
        print(f"read() -> {state!r}")
        assert state == Counter(value=6)
        print(f"add_numbers(2, 3) -> {await counter.add_numbers(2, 3)}")

    spirit = await load_spirit(SPIRITS / "strings.wasm")
    async with spirit:
        strings = spirit.as_(StringsSpirit)
        print(f"greeting() -> {await strings.greeting()!r}")
        # upper() changes ASCII letters only; the UTF-8 bytes of "é" pass through
        print(f"upper('héllo, vudo') -> {await strings.upper('héllo, vudo')!r}")
        print(f"str_len('wörld') -> {await strings.str_len('wörld')} bytes")


if __name__ == "__main__":
    asyncio.run(main())
