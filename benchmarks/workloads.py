"""The workloads: wasm modules, their sizes in full and ``--quick`` runs, shared state."""

from __future__ import annotations

import asyncio
import struct
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
SPIRITS = ROOT / "spirits"
WAT = Path(__file__).resolve().parent / "wat"

CALCULATOR = SPIRITS / "calculator.wasm"
STRINGS = SPIRITS / "strings.wasm"
LOOPS = SPIRITS / "loops.wasm"


@cache
def wasm(name: str) -> bytes:
    """A module of this suite (``benchmarks/wat/NAME.wat``) or a sample Spirit, as wasm."""
    wat = WAT / f"{name}.wat"
    if wat.exists():
        return bytes(wasmtime.wat2wasm(wat.read_text(encoding="utf-8")))
    return (SPIRITS / f"{name}.wasm").read_bytes()


@dataclass(frozen=True)
class Sizes:
    """Problem sizes; ``quick`` ones keep the whole suite to seconds."""

    quick: bool
    sample_time: float  # target seconds per sample
    repeat: int  # samples per bench (heavy cases take fewer)
    fib: int
    fib_tiny: int  # for the pure-Python interpreter
    string: int  # string in / string out
    host_iters: int
    host_iters_tiny: int
    mem_strings: tuple[int, ...]
    bulk: int
    kernel_bytes: int
    kernel_rounds: int
    kernel_tiny: int
    gen_funcs: int
    burn_seconds: float
    beat_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            quick=False,
            sample_time=0.02,
            repeat=7,
            fib=27,
            fib_tiny=15,
            string=1024,
            host_iters=100_000,
            host_iters_tiny=2_000,
            mem_strings=(16, 1024, 1 << 20),
            bulk=16 << 20,
            kernel_bytes=4 << 20,
            kernel_rounds=2,
            kernel_tiny=4096,
            gen_funcs=2000,
            burn_seconds=0.2,
            beat_seconds=0.3,
        )

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(
            quick=True,
            sample_time=0.002,
            repeat=3,
            fib=20,
            fib_tiny=10,
            string=256,
            host_iters=2_000,
            host_iters_tiny=100,
            mem_strings=(16, 1024, 64 << 10),
            bulk=1 << 20,
            kernel_bytes=64 << 10,
            kernel_rounds=1,
            kernel_tiny=1024,
            gen_funcs=40,
            burn_seconds=0.02,
            beat_seconds=0.05,
        )


@dataclass
class Context:
    """What every adapter shares: sizes, the event loop, a scratch directory, derived inputs."""

    sizes: Sizes
    loop: asyncio.AbstractEventLoop
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vudo-bench-")))
    burn_n: int = 0  # loops.wasm burn(n) steps taking about sizes.burn_seconds
    beat_n: int = 0  # ... about sizes.beat_seconds
    nonce: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def big_module(self) -> bytes:
        """The generated module (over 1 MB in a full run), built once."""
        if "big" not in self.extra:
            self.extra["big"] = generate_module(self.sizes.gen_funcs)
        data: bytes = self.extra["big"]
        return data

    def fresh_big_module(self) -> bytes:
        """The generated module with a unique custom section: no cache anywhere knows it."""
        self.nonce += 1
        return with_nonce(self.big_module(), self.nonce)


def generate_module(funcs: int, ops: int = 20) -> bytes:
    """``funcs`` exported functions ``f{i}(a: i64, b: i64) -> i64`` of ``2 * ops`` mixing steps.

    2000 functions make about 1.35 MB of wasm: Cranelift compiles every one. ``run()``
    calls ``f0`` and returns 0.
    """
    parts = ['(module (memory (export "memory") 1)']
    for i in range(funcs):
        body = []
        for k in range(ops):
            mul = (6364136223846793005 ^ (i * 131 + k)) & 0x7FFF_FFFF_FFFF_FFFF
            body.append(
                f"(local.set $a (i64.add (i64.mul (local.get $a) (i64.const {mul}))"
                f" (i64.xor (local.get $b) (i64.const {i * 7919 + k}))))"
                " (local.set $b (i64.rotl (local.get $b) (local.get $a)))"
            )
        parts.append(
            f'(func $f{i} (export "f{i}") (param $a i64) (param $b i64) (result i64) '
            + " ".join(body)
            + " (i64.add (local.get $a) (local.get $b)))"
        )
    # run() -> 0: the first call of a start, callable by every host (an Extism export shape)
    parts.append(
        '(func (export "run") (result i32) (drop (call $f0 (i64.const 1) (i64.const 2)))'
        " (i32.const 0)))"
    )
    return bytes(wasmtime.wat2wasm("\n".join(parts)))


def with_nonce(module: bytes, nonce: int) -> bytes:
    """``module`` plus a custom section holding ``nonce``: same code, new bytes."""
    name = b"bench-nonce"
    payload = bytes([len(name)]) + name + struct.pack("<Q", nonce)
    return module + b"\x00" + _leb128(len(payload)) + payload


def _leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


U64 = struct.Struct("<Q")
Q2 = struct.Struct("<qq")
I64 = struct.Struct("<q")
U32 = struct.Struct("<I")
