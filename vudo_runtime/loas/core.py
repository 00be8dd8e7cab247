"""The ``core`` Loa: the vudo host ABI (DOL-ABI.md), version ``ABI_VERSION``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import sys
import time
from collections.abc import Mapping
from typing import Any

import attrs

from vudo_runtime.errors import GuestPanic, MemoryAccessError
from vudo_runtime.loa import HostContext, HostFunction, Loa
from vudo_runtime.module import Signature

ABI_VERSION = "0.1.0"
_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
_rng = random.SystemRandom()


@attrs.frozen
class Effect:
    """A side effect a Spirit asks its host to perform (``vudo_emit_effect``/``subscribe``)."""

    spirit: str
    kind: int | str
    payload: bytes


def spirit_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"vudo.spirit.{name}")


def write_output(ctx: HostContext, text: str) -> None:
    """Send guest text to the Spirit's ``stdout``: a file object or a callable."""
    out = ctx.stdout
    if out is None:
        out = sys.stdout
    if callable(out) and not hasattr(out, "write"):
        out(text)
    else:
        out.write(text)
        if hasattr(out, "flush"):
            out.flush()


def await_on_loop(ctx: HostContext, awaitable: Any) -> Any:
    """Finish an async handler: on the caller's loop from a worker thread, or as a task."""
    loop = ctx.loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:  # inline on the loop thread: it cannot wait, so it schedules
        running.create_task(_as_coroutine(awaitable))
        return 0
    if loop is None or loop.is_closed():
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "an async on_effect handler needs an event loop: call the Spirit with "
            "`await spirit.call(...)`"
        )
    return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), loop).result()


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


def _sig(*params: str, results: tuple[str, ...] = ()) -> Signature:
    return Signature(params, results)


# Exact wasm types, so a module declaring another shape gets a clear mismatch.
SIGNATURES = {
    "vudo_print": _sig("i32", "i32"),
    "vudo_println": _sig("i32", "i32"),
    "vudo_log": _sig("i32", "i32", "i32"),
    "vudo_error": _sig("i32", "i32"),
    "vudo_debug": _sig("i32", "i32"),
    "vudo_alloc": _sig("i32", results=("i32",)),
    "vudo_free": _sig("i32", "i32"),
    "vudo_realloc": _sig("i32", "i32", "i32", results=("i32",)),
    "vudo_now": _sig(results=("i64",)),
    "vudo_monotonic_now": _sig(results=("i64",)),
    "vudo_sleep": _sig("i32"),
    "vudo_random": _sig(results=("f64",)),
    "vudo_random_bytes": _sig("i32", "i32"),
    "vudo_emit_effect": _sig("i32", "i32", "i32", results=("i32",)),
    "vudo_subscribe": _sig("i32", "i32", results=("i32",)),
    "vudo_breakpoint": _sig(),
    "vudo_assert": _sig("i32", "i32", "i32"),
    "vudo_panic": _sig("i32", "i32"),
    "vudo_abort": _sig("i32", "i32", "i32", "i32", "i32"),
}


def provides(ctx: HostContext) -> Mapping[str, Any]:
    """The core functions for one Spirit instance."""

    def text(ptr: int, length: int) -> str:
        return ctx.read_str(ptr, length)

    def emit(kind: int | str, payload: bytes) -> int:
        handler = ctx.on_effect
        if handler is None:
            spirit_logger(ctx.spirit_name).debug("effect %r dropped: no on_effect handler", kind)
            return -1
        result = handler(Effect(ctx.spirit_name, kind, payload))
        if inspect.isawaitable(result):
            result = await_on_loop(ctx, result)
        return int(result) if isinstance(result, int) else 0

    def realloc(ptr: int, old: int, new: int) -> int:
        ptr, old, new = ptr & 0xFFFFFFFF, old & 0xFFFFFFFF, new & 0xFFFFFFFF
        memory = ctx.memory
        fresh = memory.alloc(new, 8)
        if ptr:  # 0 is null: a plain allocation
            try:
                memory.write_bytes(fresh, memory.read_bytes(ptr, min(old, new)))
                memory.free(ptr)
            except MemoryAccessError as e:
                memory.free(fresh)  # a bad pointer must not leak the new block
                raise MemoryAccessError(
                    f"vudo_realloc({ptr:#x}, {old}, {new}): {e}; nothing was reallocated"
                ) from e
        return fresh

    def abort(msg: int, msg_len: int, file: int, file_len: int, line: int) -> None:
        raise GuestPanic(f"abort: {text(msg, msg_len)} at {text(file, file_len)}:{line}")

    def assert_(cond: int, ptr: int, length: int) -> None:
        if not cond:
            raise GuestPanic(f"assertion failed: {text(ptr, length)}")

    def panic(ptr: int, length: int) -> None:
        raise GuestPanic(f"panic: {text(ptr, length)}")

    def log(level: int, ptr: int, length: int) -> None:
        spirit_logger(ctx.spirit_name).log(
            _LEVELS.get(level, logging.INFO), "%s", text(ptr, length)
        )

    def random_bytes(ptr: int, length: int) -> None:
        ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
        memory = ctx.memory
        memory.view(ptr, length)  # bounds first: never make gigabytes for a bad length
        memory.write_bytes(ptr, os.urandom(length))

    def sleep(ms: int) -> None:
        seconds = max(ms, 0) / 1000
        left = ctx.time_left  # never past the call's deadline: it cannot interrupt a sleep
        time.sleep(seconds if left is None else min(seconds, left))

    fns: dict[str, Any] = {
        "vudo_print": lambda p, n: write_output(ctx, text(p, n)),
        "vudo_println": lambda p, n: write_output(ctx, text(p, n) + "\n"),
        "vudo_log": log,
        "vudo_error": lambda p, n: spirit_logger(ctx.spirit_name).error("%s", text(p, n)),
        "vudo_debug": lambda p, n: spirit_logger(ctx.spirit_name).debug("%s", text(p, n)),
        "vudo_alloc": lambda size: ctx.memory.alloc(size & 0xFFFFFFFF, 8),
        "vudo_free": lambda ptr, size: ctx.memory.free(ptr & 0xFFFFFFFF),
        "vudo_realloc": realloc,
        "vudo_now": lambda: time.time_ns() // 1_000_000,
        "vudo_monotonic_now": time.monotonic_ns,
        "vudo_sleep": sleep,
        "vudo_random": _rng.random,
        "vudo_random_bytes": random_bytes,
        "vudo_emit_effect": lambda kind, p, n: emit(kind, ctx.read_bytes(p, n)),
        "vudo_subscribe": lambda p, n: emit("subscribe", ctx.read_bytes(p, n)),
        "vudo_breakpoint": lambda: spirit_logger(ctx.spirit_name).debug("breakpoint"),
        "vudo_assert": assert_,
        "vudo_panic": panic,
        "vudo_abort": abort,
    }
    return {name: HostFunction(fn, signature=SIGNATURES[name]) for name, fn in fns.items()}


CORE = Loa(
    name="core",
    version=ABI_VERSION,
    capabilities=tuple(SIGNATURES),
    provides=provides,
)
