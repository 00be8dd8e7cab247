"""Shared fixtures for the core runtime tests: sample Spirits, a private cache, helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from vudo_runtime import Spirit

SPIRITS = Path(__file__).parent.parent / "spirits"

CALCULATOR = SPIRITS / "calculator.wasm"
COUNTER = SPIRITS / "counter.wasm"
GEOMETRY = SPIRITS / "geometry.wasm"
HELLO = SPIRITS / "hello_world.wasm"
LOOPS = SPIRITS / "loops.wasm"

#: One identity function per wasm value type, and one taking and returning all four:
#: the boundary conversions without any guest logic in the way. No memory, no imports.
TYPES_WAT = """
(module
  (func (export "id_i32") (param i32) (result i32) (local.get 0))
  (func (export "id_i64") (param i64) (result i64) (local.get 0))
  (func (export "id_f32") (param f32) (result f32) (local.get 0))
  (func (export "id_f64") (param f64) (result f64) (local.get 0))
  (func (export "mix") (param i32 i64 f32 f64) (result f64 f32 i64 i32)
    (local.get 3) (local.get 2) (local.get 1) (local.get 0)))
"""

I32_MIN, I32_MAX_UNSIGNED = -(2**31), 2**32 - 1
I64_MIN, I64_MAX_UNSIGNED = -(2**63), 2**64 - 1

#: The LCG of loops.wat `burn`.
_LCG_A = 6364136223846793005
_LCG_C = 1442695040888963407
_MASK64 = 2**64 - 1


def burn_expected(n: int) -> int:
    """What loops.burn(n) returns: n LCG steps from seed n, as a signed i64.

    The n-fold composition of ``x -> a*x + c`` is built by squaring, so even 10**8
    steps cost microseconds here.
    """
    acc_a, acc_c = 1, 0  # the identity map
    step_a, step_c = _LCG_A, _LCG_C  # the map for 2**k steps
    k = max(n, 0)
    while k:
        if k & 1:
            acc_a, acc_c = (step_a * acc_a) & _MASK64, (step_a * acc_c + step_c) & _MASK64
        step_a, step_c = (step_a * step_a) & _MASK64, (step_a * step_c + step_c) & _MASK64
        k >>= 1
    x = (acc_a * (n & _MASK64) + acc_c) & _MASK64
    return x - 2**64 if x >= 2**63 else x


def to_signed(value: int, bits: int) -> int:
    """The signed reading of ``value`` modulo 2**bits (how wasm sees an unsigned spelling)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


#: set/get on the shared namespace, set_own/get_own on the Spirit's own: key and value are
#: length-prefixed strings (what a str argument becomes); get writes the value at 4 and
#: its length at 0, so value() reads it back as a length-prefixed string.
STATE_WAT = b"""
(module
  (import "loa" "vudo_state_set" (func $set (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_state_get" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_state_set_own" (func $set_own (param i32 i32 i32 i32) (result i32)))
  (import "loa" "vudo_state_get_own" (func $get_own (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 256)
  (func (export "set") (param $key i32) (param $val i32) (result i32)
    (call $set
      (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
      (i32.add (local.get $val) (i32.const 4)) (i32.load (local.get $val))))
  (func (export "set_own") (param $key i32) (param $val i32) (result i32)
    (call $set_own
      (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
      (i32.add (local.get $val) (i32.const 4)) (i32.load (local.get $val))))
  (func (export "get") (param $key i32) (param $max i32) (result i32)
    (local $n i32)
    (local.set $n
      (call $get
        (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
        (i32.const 4) (local.get $max)))
    (if (i32.ge_s (local.get $n) (i32.const 0))
      (then (i32.store (i32.const 0) (local.get $n))))
    (local.get $n))
  (func (export "get_own") (param $key i32) (param $max i32) (result i32)
    (local $n i32)
    (local.set $n
      (call $get_own
        (i32.add (local.get $key) (i32.const 4)) (i32.load (local.get $key))
        (i32.const 4) (local.get $max)))
    (if (i32.ge_s (local.get $n) (i32.const 0))
      (then (i32.store (i32.const 0) (local.get $n))))
    (local.get $n))
  (func (export "value") (result i32) (i32.const 0)))
"""


@pytest.fixture(scope="session")
def vudo_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vudo-cache")


@pytest.fixture(autouse=True)
def _private_vudo_cache(monkeypatch: pytest.MonkeyPatch, vudo_cache_root: Path) -> Path:
    """Every test (and every `vudo` it starts) compiles into a temporary cache, never ~/.cache."""
    monkeypatch.setenv("VUDO_CACHE_DIR", str(vudo_cache_root))
    return vudo_cache_root


@pytest.fixture
def calc() -> Iterator[Spirit]:
    with Spirit.load_sync(CALCULATOR) as spirit:
        yield spirit


@pytest.fixture
def loops() -> Iterator[Spirit]:
    with Spirit.load_sync(LOOPS) as spirit:
        yield spirit


@pytest.fixture
def counter() -> Iterator[Spirit]:
    with Spirit.load_sync(COUNTER) as spirit:
        yield spirit


@pytest.fixture
def types() -> Iterator[Spirit]:
    with Spirit.load_sync(TYPES_WAT.encode(), name="types") as spirit:
        yield spirit


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Records every real compilation; a module read from the disk cache is not one."""
    seen: list[bytes] = []
    original = wasmtime.Module.__init__

    def counting(self: wasmtime.Module, engine: wasmtime.Engine, wasm: bytes) -> None:
        seen.append(bytes(wasm))
        original(self, engine, wasm)

    monkeypatch.setattr(wasmtime.Module, "__init__", counting)
    return seen


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A directory to preopen for WASI, with a secret beside it and symlinks pointing out
    (``abs_link`` absolute, ``rel_link`` relative)."""
    box = tmp_path / "box"
    box.mkdir()
    (box / "data.txt").write_text("inside the box\n")
    (tmp_path / "secret.txt").write_text("host secret\n")
    os.symlink(tmp_path / "secret.txt", box / "abs_link")
    os.symlink("../secret.txt", box / "rel_link")
    return box
