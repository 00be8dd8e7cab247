"""Host functions: give a Spirit Python functions of your own through a Loa.

A Loa is a named, versioned service of host functions. ``@host_function`` turns a
typed Python function into one: ``str`` parameters arrive from the guest's raw
``(ptr, len)`` UTF-8 ranges, numbers as themselves, and a ``str`` result is written
into the Spirit's memory and handed back as a DOL string pointer.

Run it from anywhere::

    python examples/host_functions.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from vudo_runtime import Loa, LoaRegistry, host_function, load_spirit

SPIRITS = Path(__file__).resolve().parent.parent / "spirits"


@host_function
def greeting(name: str) -> str:
    """Build the greeting in Python; the Spirit gets a pointer to it."""
    return f"Hello, {name}! Greetings from the host."


@host_function
def scale(value: float, factor: int) -> float:
    return value * factor


GREETER = Loa(
    name="greeter",
    version="1.0.0",
    capabilities=["greeting", "scale"],
    provides=lambda ctx: {"greeting": greeting, "scale": scale},
)

# A Spirit that imports the two functions above, plus vudo_println from the core Loa.
WAT = r"""
(module
  (import "loa" "greeting" (func $greeting (param i32 i32) (result i32)))
  (import "loa" "scale" (func $scale (param f64 i64) (result f64)))
  (import "loa" "vudo_println" (func $println (param i32 i32)))
  (memory (export "memory") 1 256)
  ;; the DOL literal "Python": [u32 length 6]["Python"], padded to 4
  (data (i32.const 0) "\06\00\00\00Python\00\00")

  ;; Ask the host for a greeting, print it, and return its string pointer.
  (func (export "welcome") (result i32)
    (local $s i32)
    (local.set $s (call $greeting (i32.const 4) (i32.const 6)))
    (call $println (i32.add (local.get $s) (i32.const 4)) (i32.load (local.get $s)))
    (local.get $s))

  (func (export "scale") (param f64 i64) (result f64)
    (call $scale (local.get 0) (local.get 1)))
)
"""


async def main() -> None:
    registry = LoaRegistry()
    registry.register(GREETER)

    # Grant the Loa by name; `core` provides vudo_println, which writes to stdout.
    spirit = await load_spirit(
        WAT.encode(), name="greeter_demo", loas=["core", "greeter"], registry=registry
    )
    async with spirit:
        ptr = await spirit.call("welcome")
        assert spirit.memory is not None
        print(f"welcome() returned {spirit.memory.read_string(ptr)!r}")
        print(f"scale(2.5, 4) = {await spirit.call('scale', 2.5, 4)}")

    # A sample Spirit from the repository, with its output sent to a callable.
    lines: list[str] = []
    hello = await load_spirit(SPIRITS / "hello_world.wasm", stdout=lines.append)
    async with hello:
        await hello.call("greet_name", "vudo")
    print(f"hello_world printed {''.join(lines)!r}")


if __name__ == "__main__":
    asyncio.run(main())
