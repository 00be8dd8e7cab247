"""What verifying a signed Spirit costs, next to compiling it cold.

    python -m benchmarks.signing [--quick] [--repeat N]

Builds a module of about 1 MiB (a few hundred functions and a large data segment; with
``--quick`` about 64 KiB), signs it with a fresh Ed25519 key, then samples interleaved in
one run: ``signing.verify`` (walk the sections, sha256, one Ed25519 check), and a cold
compile ``wasmtime.Module(wasmtime.Engine(config), wasm)`` with a fresh engine each time
and the compilation cache off. Prints medians with p25..p75 and the ratio; the target
is verify < 5 % of a cold compile.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import random
import statistics
import sys
import time
from collections.abc import Callable

import wasmtime

from vudo_runtime import signing

TARGET = 0.05


def build_module(functions: int, data_bytes: int, seed: int = 1) -> bytes:
    """A valid module: ``functions`` exported functions of some arithmetic each, and one
    active data segment of ``data_bytes`` pseudo-random bytes."""
    rng = random.Random(seed)
    payload = bytes(rng.getrandbits(8) for _ in range(data_bytes))
    escaped = "".join(f"\\{b:02x}" for b in payload)
    pages = data_bytes // 65536 + 2
    funcs = []
    for i in range(functions):
        body = " ".join(
            f"(local.set 1 (i64.add (local.get 1) (i64.mul (local.get 0) (i64.const {k + i}))))"
            f" (local.set 0 (i64.xor (local.get 0) (i64.rotl (local.get 1) (i64.const {k % 63}))))"
            for k in range(1, 9)
        )
        funcs.append(
            f'(func (export "f{i}") (param i64) (result i64) (local i64) {body} '
            "(i64.load (i32.wrap_i64 (i64.and (local.get 0) (i64.const 0xffff)))) "
            "(local.get 1) i64.add)"
        )
    wat = (
        f'(module (memory (export "memory") {pages}) {" ".join(funcs)} '
        f'(data (i32.const 0) "{escaped}"))'
    )
    return bytes(wasmtime.wat2wasm(wat))


def cold_compile(wasm: bytes) -> None:
    """Compile in a fresh engine; a default ``wasmtime.Config`` has the cache off (and it
    cannot be turned off explicitly, only on)."""
    wasmtime.Module(wasmtime.Engine(wasmtime.Config()), wasm)


def _sample(fn: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def _quartiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[0], statistics.median(samples), q[2]


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~64 KiB module, few samples")
    parser.add_argument("--repeat", type=int, default=None, help="samples per measurement")
    args = parser.parse_args(argv)
    repeat = args.repeat or (5 if args.quick else 15)
    functions, data_bytes = (40, 56 * 1024) if args.quick else (400, 948 * 1024)

    wasm = build_module(functions, data_bytes)
    private_pem, public_pem = signing.generate_key()
    manifest = b'[spirit]\nname = "bench"\n'
    signed = signing.sign(wasm, private_pem, manifest)
    policy = signing.TrustPolicy(public_pem)
    signing.verify(signed, policy, manifest)  # warm: imports, key objects

    def verify() -> None:
        signing.verify(signed, policy, manifest)

    def compile_signed() -> None:
        cold_compile(signed)

    def sha256_only() -> None:
        hashlib.sha256(signed).digest()

    record = signing.read_signature(signed)
    assert record is not None
    public = policy.keys[0].public_key()
    message = signing.DOMAIN + bytes.fromhex(signing.content_sha256(signed))
    message += hashlib.sha256(manifest).digest()

    def ed25519_only() -> None:
        public.verify(record.signature, message)

    verify_inner = 20 if args.quick else 50
    samples: dict[str, list[float]] = {"verify": [], "compile": [], "sha": [], "ed": []}
    for _ in range(repeat):  # interleaved, so load on the machine hits all alike
        samples["verify"].append(_sample(verify, verify_inner))
        samples["compile"].append(_sample(compile_signed, 1))
        samples["sha"].append(_sample(sha256_only, verify_inner))
        samples["ed"].append(_sample(ed25519_only, verify_inner))

    rows = [
        ("`signing.verify` (sections + sha256 + Ed25519)", "verify"),
        ("  of which: sha256 of the whole module", "sha"),
        ("  of which: one Ed25519 verify", "ed"),
        ("cold compile (fresh engine, cache off)", "compile"),
    ]
    print(
        f"Signed module: {len(signed) / 1024:.0f} KiB ({functions} functions, "
        f"{data_bytes // 1024} KiB data); {repeat} interleaved samples, "
        f"Python {sys.version.split()[0]}, wasmtime {importlib.metadata.version('wasmtime')}"
    )
    print()
    print("| operation | median | p25 .. p75 |")
    print("| --- | --- | --- |")
    for label, key in rows:
        q25, q50, q75 = _quartiles(samples[key])
        print(f"| {label} | {_fmt(q50)} | {_fmt(q25)} .. {_fmt(q75)} |")
    ratio = statistics.median(samples["verify"]) / statistics.median(samples["compile"])
    status = "PASS" if ratio < TARGET else "MISS"
    print(f"| verify / cold compile | {ratio:.2%} | target < {TARGET:.0%}: {status} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
