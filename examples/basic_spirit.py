"""Load a Spirit and call it: with ``await`` inside asyncio, and without an event loop.

Integers cross as ``int``, floats as ``float``; a function with several results returns a
tuple; a trap raises ``SpiritTrap`` and the Spirit stays usable. Run it from anywhere::

    python examples/basic_spirit.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from vudo_runtime import Spirit, SpiritTrap, load_spirit

SPIRITS = Path(__file__).resolve().parent.parent / "spirits"
CALCULATOR = SPIRITS / "calculator.wasm"


async def main() -> None:
    async with await load_spirit(CALCULATOR) as calc:
        print(f"functions: {', '.join(calc.list_functions())}")
        print(f"add{calc.signature('add')}")
        print(f"add(40, 2) = {await calc.call('add', 40, 2)}")
        print(f"average(1.5, 2.5) = {await calc.call('average', 1.5, 2.5)}")
        print(f"divmod(17, 5) = {await calc.call('divmod', 17, 5)}")
        try:
            await calc.call("div", 1, 0)
        except SpiritTrap as exc:
            print(f"div(1, 0) trapped: {exc.message}")
        print(f"sub(10, 4) = {await calc.call('sub', 10, 4)} (still usable after the trap)")


def main_sync() -> None:
    with Spirit.load_sync(CALCULATOR) as calc:
        print(f"sync: mul(6, 7) = {calc.call_sync('mul', 6, 7)}")
        print(f"sync: is_even(10) = {bool(calc.call_sync('is_even', 10))}")


if __name__ == "__main__":
    asyncio.run(main())
    main_sync()
