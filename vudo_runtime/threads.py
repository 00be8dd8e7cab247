"""Threads the runtime runs guests on: the worker pool, and whether a thread's stack suffices."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import threading
from typing import Any

#: Native stack of the worker threads. wasmtime lets guest code use up to 512 KiB of the
#: calling thread's stack before it traps ("call stack exhausted"); on a smaller stack
#: (musl's default thread stack is 128 KiB) deep guest recursion overflows it and the
#: process dies of SIGSEGV.
WORKER_STACK = 8 << 20

#: Stack a guest call may need on the calling thread: wasmtime's max_wasm_stack (512 KiB)
#: plus room for the host frames of calls back into the Spirit.
STACK_NEEDED = (512 << 10) + (1 << 20)

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_stack_lock = threading.Lock()


class _Workers(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose threads get WORKER_STACK bytes of stack, whatever the default."""

    def _adjust_thread_count(self) -> None:  # where the executor starts its threads
        with _stack_lock:
            try:
                previous = threading.stack_size(WORKER_STACK)  # (returns the size replaced)
            except (ValueError, RuntimeError):  # pragma: no cover - a platform without it
                super()._adjust_thread_count()
                return
            if previous > WORKER_STACK:
                threading.stack_size(previous)
            try:
                super()._adjust_thread_count()
            finally:
                threading.stack_size(previous)


def worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for long calls; wasm releases the GIL, so these run truly in parallel."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                workers = max(4, 2 * (os.cpu_count() or 1))
                _executor = _Workers(workers, "vudo-call")
    return _executor


def thread_stack_size() -> int | None:
    """The current thread's stack size in bytes (None: the platform does not say)."""
    try:
        libc = ctypes.CDLL(None)
        libc.pthread_self.restype = ctypes.c_ulong
        attr = ctypes.create_string_buffer(256)  # pthread_attr_t is at most 64 bytes
        if libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr):
            return None
        try:
            addr, size = ctypes.c_void_p(), ctypes.c_size_t()
            if libc.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size)):
                return None
            return size.value
        finally:
            libc.pthread_attr_destroy(attr)
    except (AttributeError, OSError):  # not glibc/musl: assume the platform default is enough
        return None


class StackBound(threading.local):
    """Per thread, measured once: is the stack big enough to run a guest on?"""

    def __init__(self) -> None:
        size = thread_stack_size()
        self.ok = size is None or size >= STACK_NEEDED


#: ``stack.ok``: this thread may run guest code itself (else a worker runs it).
stack = StackBound()


def owns(lock: Any) -> bool:
    """This thread holds ``lock`` (an RLock): we are inside a call, in a host function."""
    owned = getattr(lock, "_is_owned", None)
    return bool(owned()) if owned is not None else False


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running on this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
