"""Ed25519-signed Spirits: real keys on disk, real modules from wat2wasm, real wasmtime."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest
import wasmtime
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo_runtime import Spirit
from vudo_runtime.errors import (
    SignatureError,
    SpiritLoadError,
    TamperedSpiritError,
    UnknownKeyError,
    UnsignedSpiritError,
)
from vudo_runtime.signing import (
    DOMAIN,
    SECTION_NAME,
    PublicKeySource,
    SpiritSignature,
    TrustedKey,
    TrustPolicy,
    content_sha256,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    read_signature,
    sign,
    strip_signature,
    verify,
    write_keypair,
)

WAT = """
(module $calc
  (memory (export "memory") 1)
  (func $add (export "add") (param $a i64) (param $b i64) (result i64)
    (i64.add (local.get $a) (local.get $b)))
  (func $peek (export "peek") (param $at i32) (result i32)
    (i32.load8_u (local.get $at)))
  (data (i32.const 16) "spirit data: \\01\\02\\03\\04"))
"""
MANIFEST = b'[spirit]\nname = "calc"\nsource = "calc.wasm"\n'

CODE, DATA = 10, 11


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(WAT))


@pytest.fixture
def alice(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "alice")


@pytest.fixture
def mallory(tmp_path: Path) -> tuple[Path, Path]:
    return write_keypair(tmp_path / "mallory")


def sections(wasm: bytes) -> list[tuple[int, int, int]]:
    """(id, body start, body end) of every section, by an independent little walker."""
    out, pos = [], 8
    while pos < len(wasm):
        sid, pos = wasm[pos], pos + 1
        size = shift = 0
        while True:
            b, pos = wasm[pos], pos + 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((sid, pos, pos + size))
        pos += size
    return out


def custom_names(wasm: bytes) -> list[bytes]:
    names = []
    for sid, start, _ in sections(wasm):
        if sid == 0:
            n = wasm[start]  # names here are shorter than 128 bytes
            names.append(wasm[start + 1 : start + 1 + n])
    return names


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# --- Round trip ------------------------------------------------------------------------------


def test_round_trip(wasm: bytes, alice: tuple[Path, Path]) -> None:
    private, public = alice
    signed = sign(wasm, private)
    verify(signed, TrustPolicy(public))
    record = read_signature(signed)
    assert record is not None
    assert record.version == 1
    assert record.key_id == key_id(public) == key_id(load_private_key(private))
    assert len(record.key_id) == 16
    assert record.manifest_sha256 == b""
    assert strip_signature(signed) == wasm
    assert content_sha256(signed) == content_sha256(wasm) == hashlib.sha256(wasm).hexdigest()
    assert read_signature(wasm) is None
    assert strip_signature(wasm) is wasm


def test_signature_section_format(wasm: bytes, alice: tuple[Path, Path]) -> None:
    """The documented layout: the section is last, 74 bytes without a manifest and 106
    with, and the Ed25519 signature is over DOMAIN + sha256(module) + sha256(manifest)."""
    private, public = alice
    key = load_public_key(public)
    for manifest, size in ((None, 74), (MANIFEST, 106)):
        signed = sign(wasm, private, manifest)
        assert signed.startswith(wasm)
        sid, start, end = sections(signed)[-1]
        assert sid == 0 and end == len(signed)
        name_len = signed[start]
        assert signed[start + 1 : start + 1 + name_len] == SECTION_NAME.encode()
        payload = signed[start + 1 + name_len : end]
        assert len(payload) == size
        record = SpiritSignature.from_bytes(payload)
        assert record.to_bytes() == payload
        manifest_digest = hashlib.sha256(manifest).digest() if manifest else bytes(32)
        assert record.manifest_sha256 == (manifest_digest if manifest else b"")
        key.verify(record.signature, DOMAIN + hashlib.sha256(wasm).digest() + manifest_digest)
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert record.key_id == hashlib.sha256(raw).digest()[:8].hex()


def test_signed_module_still_compiles_and_runs(wasm: bytes, alice: tuple[Path, Path]) -> None:
    signed = sign(wasm, alice[0], MANIFEST)
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, signed), [])
    add, peek = instance.exports(store)["add"], instance.exports(store)["peek"]
    assert isinstance(add, wasmtime.Func) and isinstance(peek, wasmtime.Func)
    assert add(store, 40, 2) == 42
    assert peek(store, 16 + 13) == 1
    spirit = Spirit.load_sync(signed, cache=False)
    try:
        assert spirit.call_sync("add", 1, 2) == 3
    finally:
        spirit.close()


def test_other_custom_sections_are_kept_and_covered(wasm: bytes, alice: tuple[Path, Path]) -> None:
    assert b"name" in custom_names(wasm)  # wat2wasm writes the names of $calc, $add ...
    signed = sign(wasm, alice[0])
    assert custom_names(signed) == [b"name", SECTION_NAME.encode()]
    name_start = next(s for sid, s, _ in sections(signed) if sid == 0)
    with pytest.raises(TamperedSpiritError):
        verify(flipped(signed, name_start + 3), TrustPolicy(alice[1]))


# --- Refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("section", [CODE, DATA])
def test_any_flipped_byte_in_code_or_data_is_tampering(
    wasm: bytes, alice: tuple[Path, Path], section: int
) -> None:
    signed = sign(wasm, alice[0])
    policy = TrustPolicy(alice[1])
    _, start, end = next(s for s in sections(signed) if s[0] == section)
    assert end - start > 8
    for at in range(start, end):
        with pytest.raises(TamperedSpiritError, match="changed after signing"):
            verify(flipped(signed, at), policy, source="calc.wasm")


@pytest.mark.parametrize("manifest", [None, MANIFEST], ids=["module", "with-manifest"])
def test_every_flipped_byte_anywhere_is_refused(
    wasm: bytes, alice: tuple[Path, Path], manifest: bytes | None
) -> None:
    """Header, section sizes, other sections, the signature section's name and payload:
    no single flipped byte gets past verify. (With require_signature=False a flip in the
    section's name would pass, as an unsigned module: that policy accepts those.)"""
    signed = sign(wasm, alice[0], manifest)
    policy = TrustPolicy(alice[1])
    verify(signed, policy, manifest)
    for at in range(len(signed)):
        with pytest.raises(SignatureError):
            verify(flipped(signed, at), policy, manifest)


def test_flipped_bytes_in_the_signature_section(wasm: bytes, alice: tuple[Path, Path]) -> None:
    signed = sign(wasm, alice[0], MANIFEST)
    policy = TrustPolicy(alice[1])
    payload = len(signed) - 106
    cases = {
        payload: (SignatureError, "format version 0"),  # version 1 -> 0
        payload + 1: (UnknownKeyError, "not list"),  # key id
        payload + 9: (TamperedSpiritError, "does not verify"),  # Ed25519 signature
        payload + 72: (TamperedSpiritError, "does not verify"),
        payload + 73: (SignatureError, "malformed"),  # manifest hash size
        payload + 74: (TamperedSpiritError, "manifest changed"),  # the stored hash
    }
    for at, (error, text) in cases.items():
        with pytest.raises(error, match=text):
            verify(flipped(signed, at), policy, MANIFEST)


def test_wrong_key_is_unknown(
    wasm: bytes, alice: tuple[Path, Path], mallory: tuple[Path, Path]
) -> None:
    signed = sign(wasm, mallory[0])
    policy = TrustPolicy([alice[1]])
    with pytest.raises(UnknownKeyError) as info:
        verify(signed, policy, source="calc.wasm")
    text = str(info.value)
    assert text.startswith("calc.wasm is signed by key " + key_id(mallory[1]))
    assert key_id(alice[1]) in text and "trusted keys" in text
    verify(signed, TrustPolicy([alice[1], mallory[1]]))  # trusting both: it passes


def test_unsigned_is_refused_when_required(wasm: bytes, alice: tuple[Path, Path]) -> None:
    with pytest.raises(UnsignedSpiritError, match=r"calc\.wasm is not signed"):
        verify(wasm, TrustPolicy(alice[1]), source="calc.wasm")
    assert issubclass(UnsignedSpiritError, SignatureError)
    assert issubclass(SignatureError, SpiritLoadError)


def test_optional_signature_accepts_unsigned_but_never_a_bad_one(
    wasm: bytes, alice: tuple[Path, Path], mallory: tuple[Path, Path]
) -> None:
    lenient = TrustPolicy(alice[1], require_signature=False)
    verify(wasm, lenient)  # unsigned: passes
    verify(sign(wasm, alice[0]), lenient)  # signed by a trusted key: passes
    signed = sign(wasm, alice[0])
    code = next(s for s in sections(signed) if s[0] == CODE)
    with pytest.raises(TamperedSpiritError):
        verify(flipped(signed, code[1] + 2), lenient)
    with pytest.raises(UnknownKeyError):
        verify(sign(wasm, mallory[0]), lenient)
    with pytest.raises(UnknownKeyError, match=r"trusted keys: none"):
        verify(signed, TrustPolicy((), require_signature=False))


def test_manifest_is_covered(wasm: bytes, alice: tuple[Path, Path]) -> None:
    policy = TrustPolicy(alice[1])
    signed = sign(wasm, alice[0], MANIFEST)
    verify(signed, policy, MANIFEST)
    with pytest.raises(TamperedSpiritError, match="manifest changed after signing"):
        verify(signed, policy, MANIFEST + b"fuel = 1\n")
    with pytest.raises(SignatureError, match="signed together with a manifest") as info:
        verify(signed, policy)
    assert type(info.value) is SignatureError
    with pytest.raises(TamperedSpiritError, match="signed without a manifest"):
        verify(sign(wasm, alice[0]), policy, MANIFEST)
    verify(sign(wasm, alice[0], b""), policy, b"")  # an empty manifest is still a manifest


def test_resigning_replaces_the_signature(
    wasm: bytes, alice: tuple[Path, Path], mallory: tuple[Path, Path]
) -> None:
    twice = sign(sign(wasm, alice[0], MANIFEST), mallory[0])
    assert custom_names(twice).count(SECTION_NAME.encode()) == 1
    assert strip_signature(twice) == wasm
    verify(twice, TrustPolicy(mallory[1]))
    with pytest.raises(UnknownKeyError):
        verify(twice, TrustPolicy(alice[1]))


def test_two_signature_sections_are_malformed(wasm: bytes, alice: tuple[Path, Path]) -> None:
    signed = sign(wasm, alice[0])
    extra = signed[len(wasm) :]
    doubled = signed + extra
    with pytest.raises(SignatureError, match=r"has 2 vudo\.signature sections"):
        verify(doubled, TrustPolicy(alice[1]))
    with pytest.raises(SignatureError, match="has 2"):
        read_signature(doubled)
    assert strip_signature(doubled) == wasm
    verify(sign(doubled, alice[0]), TrustPolicy(alice[1]))


# --- Garbage never crashes -------------------------------------------------------------------


FRAMING = [
    (b"", "bad.wasm is not a WebAssembly module"),
    (b"(module)", "looks like WAT text"),
    (b"\x7fELF\x02\x01\x01\x00", "not a WebAssembly module"),
    (b"\0asm\x0d\x00\x01\x00", "not a WebAssembly core module"),
    (b"\0asm\1\0\0\0\x01\xff\xff\xff\xff\x0f", "claims 4294967295 bytes"),
    (b"\0asm\1\0\0\0\x01" + b"\x80" * 10, "not a valid u32 LEB128"),
    (b"\0asm\1\0\0\0\x01\xff\xff\xff\xff\x7f", "larger than a u32"),
    (b"\0asm\1\0\0\0\x01\x80", "runs past the end"),
    (b"\0asm\1\0\0\0\x00\x02\x7f\x00", "name of the custom section"),
]
RECORDS = [  # framing is fine, the signature record is not
    (b"\0asm\1\0\0\0\x00\x0f\x0evudo.signature", "is empty"),
    (b"\0asm\1\0\0\0\x00\x10\x0evudo.signature\x07", "format version 7"),
    (b"\0asm\1\0\0\0\x00\x12\x0evudo.signature\x01ab", "truncated"),
    (b"\0asm\1\0\0\0\x00\x5b\x0evudo.signature\x01" + bytes(75), "malformed"),
]


@pytest.mark.parametrize(("data", "text"), FRAMING + RECORDS)
def test_malformed_input_is_a_signature_error(
    data: bytes, text: str, alice: tuple[Path, Path]
) -> None:
    policy = TrustPolicy(alice[1], require_signature=False)
    with pytest.raises(SignatureError, match=text) as info:
        verify(data, policy, source="bad.wasm")
    assert str(info.value).startswith("bad.wasm")
    with pytest.raises(SignatureError, match=text):
        read_signature(data, source="bad.wasm")


@pytest.mark.parametrize(("data", "text"), FRAMING)
def test_signing_or_stripping_garbage_is_a_signature_error(
    data: bytes, text: str, alice: tuple[Path, Path]
) -> None:
    with pytest.raises(SignatureError, match=text):
        sign(data, alice[0], source="bad.wasm")
    with pytest.raises(SignatureError, match=text):
        strip_signature(data, source="bad.wasm")


@pytest.mark.parametrize(("data", "text"), RECORDS)
def test_a_broken_signature_section_can_be_replaced(
    data: bytes, text: str, alice: tuple[Path, Path]
) -> None:
    assert strip_signature(data) == b"\0asm\1\0\0\0"
    verify(sign(data, alice[0]), TrustPolicy(alice[1]))


def test_every_truncation_is_a_signature_error(wasm: bytes, alice: tuple[Path, Path]) -> None:
    signed = sign(wasm, alice[0], MANIFEST)
    policy = TrustPolicy(alice[1])
    for n in range(len(signed)):
        with pytest.raises(SignatureError):
            verify(signed[:n], policy, MANIFEST)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_garbage_never_crashes(garbage: bytes, wasm_header: bool) -> None:
    data = b"\0asm\1\0\0\0" + garbage if wasm_header else garbage
    policy = TrustPolicy(_KEY_PUB, require_signature=False)
    with contextlib.suppress(SignatureError):
        verify(data, policy)
    try:
        record = read_signature(data)
    except SignatureError:
        return
    assert record is None or len(record.key_id) == 16
    assert read_signature(strip_signature(data)) is None


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_signed_module_never_passes(data: st.DataObject) -> None:
    """Random replacements, deletions and insertions: when verify passes, the signed
    content is the very module that was signed."""
    mutated = bytearray(_SIGNED)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(mutated)))
        removed = data.draw(st.integers(0, 3))
        mutated[at : at + removed] = data.draw(st.binary(max_size=4))
    try:
        verify(bytes(mutated), TrustPolicy(_KEY_PUB))
    except SignatureError:
        return
    assert strip_signature(bytes(mutated)) == strip_signature(_SIGNED)


_KEY_PRIVATE, _KEY_PUB = generate_key()
_SIGNED = sign(bytes(wasmtime.wat2wasm(WAT)), _KEY_PRIVATE)


# --- Keys ------------------------------------------------------------------------------------


def test_keypair_files(tmp_path: Path) -> None:
    private, public = write_keypair(tmp_path / "keys.v2")
    assert (private.name, public.name) == ("keys.v2.key", "keys.v2.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert isinstance(load_private_key(private), ed25519.Ed25519PrivateKey)
    assert isinstance(load_public_key(public), ed25519.Ed25519PublicKey)


def test_keypair_never_overwrites_by_accident(tmp_path: Path) -> None:
    private, _ = write_keypair(tmp_path / "k")
    before = private.read_bytes()
    with pytest.raises(SignatureError, match="refusing to overwrite"):
        write_keypair(tmp_path / "k")
    assert private.read_bytes() == before
    private.chmod(0o644)
    write_keypair(tmp_path / "k", overwrite=True)
    assert private.read_bytes() != before
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    with pytest.raises(SignatureError, match="cannot write the key file"):
        write_keypair(tmp_path / "no-such-dir" / "k")


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_keypair_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        private, public = write_keypair(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644


def test_bad_key_files_name_the_file(tmp_path: Path, alice: tuple[Path, Path]) -> None:
    private, public = alice
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key at all\n")
    broken = tmp_path / "broken.key"
    broken.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_file = tmp_path / "ec.key"
    ec_file.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ec_pub = tmp_path / "ec.pub"
    ec_pub.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    encrypted = tmp_path / "locked.key"
    encrypted.write_bytes(
        load_private_key(private).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    missing = tmp_path / "missing.key"
    private_cases = {
        junk: "is not a PEM file",
        broken: "is not a readable PEM private key",
        ec_file: "holds an EC key; vudo signs with Ed25519",
        encrypted: "is encrypted",
        public: "holds a public key",
        missing: "private key file not found",
        tmp_path: "is a directory",
    }
    for path, text in private_cases.items():
        with pytest.raises(SignatureError, match=text) as info:
            load_private_key(path)
        assert str(path) in str(info.value)
    public_cases = {
        junk: "is not a PEM file",
        ec_pub: "holds an EC key",
        private: "holds a private key; trust the public key",
        missing: "public key file not found",
    }
    for path, text in public_cases.items():
        with pytest.raises(SignatureError, match=text) as info:
            load_public_key(path)
        assert str(path) in str(info.value)
        with pytest.raises(SignatureError, match=text):
            TrustPolicy(path)
    with pytest.raises(SignatureError, match=r"junk\.pem is not a PEM file"):
        sign(b"\0asm\1\0\0\0", junk)


def test_trust_policy_takes_keys_in_every_form(alice: tuple[Path, Path]) -> None:
    private, public = alice
    key = load_public_key(public)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.read_bytes()
    forms: list[PublicKeySource] = [public, str(public), pem, pem.decode(), raw, key]
    forms.append(TrustedKey(raw))
    policies = [TrustPolicy(form) for form in forms]
    assert all(p == policies[0] for p in policies)
    assert len({hash(p) for p in policies}) == 1
    assert policies[0].keys[0].origin == str(public)
    assert TrustPolicy([public, pem, key]).key_ids == (key_id(public),)  # deduplicated
    assert load_public_key(raw).public_bytes_raw() == raw
    with pytest.raises(ValueError, match="needs at least one trusted key"):
        TrustPolicy(())
    with pytest.raises(SignatureError, match="holds a private key"):
        TrustPolicy(private.read_bytes())


def test_without_cryptography_sections_still_work(
    monkeypatch: pytest.MonkeyPatch, wasm: bytes
) -> None:
    signed = _SIGNED
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    assert read_signature(signed) is not None
    assert strip_signature(signed) == wasm
    with pytest.raises(SignatureError, match="pip install cryptography"):
        sign(wasm, _KEY_PRIVATE)
    with pytest.raises(SignatureError, match="pip install cryptography"):
        TrustPolicy(_KEY_PUB)
    lenient = TrustPolicy((), require_signature=False)  # needs no cryptography
    verify(wasm, lenient)
    with pytest.raises(UnknownKeyError):
        verify(signed, lenient)
