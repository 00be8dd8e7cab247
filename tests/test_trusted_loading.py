"""Signed Spirits and spirit.toml manifests, through load_spirit, Spirit.load and summon."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
import wasmtime

from vudo_runtime import (
    HostPolicy,
    ManifestError,
    Seance,
    Spirit,
    TamperedSpiritError,
    TrustPolicy,
    UnknownKeyError,
    UnsignedSpiritError,
    WasiOptions,
)
from vudo_runtime.signing import sign, write_keypair

ADD_WAT = (
    '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
)
WASI = Path(__file__).parent / "wasi"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "author")


def _signed(keys: tuple[Path, Path], wat: str = ADD_WAT, manifest: bytes | None = None) -> bytes:
    return sign(bytes(wasmtime.wat2wasm(wat)), keys[0], manifest)


def test_a_signed_spirit_loads_with_its_key(keys: tuple[Path, Path]) -> None:
    spirit = Spirit.load_sync(_signed(keys), trust=TrustPolicy(keys=[keys[1]]), cache=False)
    assert spirit.call_sync("add", 40, 2) == 42


def test_refused_spirits_are_never_compiled(
    keys: tuple[Path, Path], tmp_path: Path, compiles: list[bytes]
) -> None:
    policy = TrustPolicy(keys=[keys[1]])
    unsigned = bytes(wasmtime.wat2wasm(ADD_WAT))
    with pytest.raises(UnsignedSpiritError):
        Spirit.load_sync(unsigned, trust=policy, cache=False)
    tampered = bytearray(_signed(keys))
    tampered[tampered.index(b"\x6a")] = 0x6B  # i32.add -> i32.sub
    with pytest.raises(TamperedSpiritError):
        Spirit.load_sync(bytes(tampered), trust=policy, cache=False)
    other = write_keypair(tmp_path / "stranger")
    with pytest.raises(UnknownKeyError):
        Spirit.load_sync(_signed(other), trust=policy, cache=False)
    assert compiles == []


def test_an_optional_signature_still_has_to_verify(keys: tuple[Path, Path]) -> None:
    lenient = TrustPolicy(keys=[keys[1]], require_signature=False)
    Spirit.load_sync(bytes(wasmtime.wat2wasm(ADD_WAT)), trust=lenient).close()
    tampered = bytearray(_signed(keys))
    tampered[tampered.index(b"\x6a")] = 0x6B
    with pytest.raises(TamperedSpiritError):
        Spirit.load_sync(bytes(tampered), trust=lenient)


def _manifest(directory: Path, wasm: bytes, extra: str = "", name: str = "adder") -> Path:
    (directory / f"{name}.wasm").write_bytes(wasm)
    digest = hashlib.sha256(wasm).hexdigest()
    path = directory / f"{name}.toml"
    path.write_text(
        f'[spirit]\nname = "{name}"\nversion = "1.2.0"\nsource = "{name}.wasm"\n'
        f'sha256 = "{digest}"\n{extra}'
    )
    return path


def test_a_manifest_loads_its_module_with_its_limits_and_config(tmp_path: Path) -> None:
    wasm = bytes(wasmtime.wat2wasm(ADD_WAT))
    path = _manifest(
        tmp_path, wasm, '[limits]\ntimeout = 2.0\nfuel = 500000\n[config]\nmode = "fast"\n'
    )
    spirit = Spirit.load_sync(path)
    assert spirit.name == "adder" and spirit.call_sync("add", 2, 3) == 5
    assert (spirit.timeout, spirit.fuel) == (2.0, 500_000)
    assert spirit.manifest is not None and spirit.manifest.config["mode"] == "fast"
    stricter = Spirit.load_sync(path, timeout=0.5, fuel=10**9)  # the host may only narrow
    assert (stricter.timeout, stricter.fuel) == (0.5, 500_000)


def test_a_manifest_pins_its_module(tmp_path: Path) -> None:
    path = _manifest(tmp_path, bytes(wasmtime.wat2wasm(ADD_WAT)))
    (tmp_path / "adder.wasm").write_bytes(bytes(wasmtime.wat2wasm("(module)")))
    with pytest.raises(ManifestError, match=r"adder.toml: \[spirit\] sha256: .* update sha256"):
        Spirit.load_sync(path)


def test_the_host_policy_narrows_a_manifest(tmp_path: Path) -> None:
    wasm = (WASI / "hello.wasm").read_bytes()
    path = _manifest(tmp_path, wasm, '[grants]\nloas = ["core", "wasi"]\n', name="hello")
    out: list[bytes] = []
    spirit = Spirit.load_sync(path, wasi=WasiOptions(stdout=out.append))
    assert spirit.run_sync() == 0 and b"".join(out) == b"hello from wasi\n"
    with pytest.raises(ManifestError, match=r"\[grants\] loas: the host policy does not allow"):
        Spirit.load_sync(path, policy=HostPolicy(loas=frozenset({"core"})))


def test_a_manifest_without_a_grant_gets_none(tmp_path: Path) -> None:
    path = _manifest(tmp_path, (WASI / "hello.wasm").read_bytes(), name="hello")
    with pytest.raises(Exception, match="wasi"):
        Spirit.load_sync(path)


def test_a_signed_manifest_covers_module_and_manifest(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    wasm = bytes(wasmtime.wat2wasm(ADD_WAT))
    path = _manifest(tmp_path, wasm)
    (tmp_path / "adder.wasm").write_bytes(sign(wasm, keys[0], path.read_bytes()))
    trust = TrustPolicy(keys=[keys[1]])
    assert Spirit.load_sync(path, trust=trust).call_sync("add", 1, 1) == 2
    path.write_text(path.read_text() + "[limits]\ntimeout = 100.0\n")  # edited after signing
    with pytest.raises(TamperedSpiritError):
        Spirit.load_sync(path, trust=trust)


def test_summon_a_manifest(tmp_path: Path) -> None:
    path = _manifest(tmp_path, bytes(wasmtime.wat2wasm(ADD_WAT)))

    async def main() -> None:
        async with Seance() as seance:
            spirit = await seance.summon("calc", path)
            assert spirit.name == "calc" and spirit.manifest is not None
            assert await seance.invoke("calc", "add", 20, 22) == 42

    asyncio.run(main())
