"""Ed25519-signed Spirits: sign a module (and optionally its manifest), verify it on load.

The signature travels inside the module, in a custom section named ``vudo.signature``
appended at its end, so a signed Spirit is still a valid module that any engine loads
(engines ignore custom sections). What is signed::

    b"vudo-spirit-signature-v1\\0"
    + sha256(the module with every vudo.signature section removed)
    + sha256(the manifest's bytes)       # 32 zero bytes when signed without a manifest

so one signature covers the module and, when given, the exact bytes of its
``spirit.toml``. The section's payload (format version 1, 74 or 106 bytes)::

    u8   version            1
    [8]  key id             first 8 bytes of sha256(raw 32-byte Ed25519 public key)
    [64] signature          Ed25519 over the message above
    u8   manifest hash size 0 (signed without a manifest) or 32
    [n]  manifest sha256    the manifest hash that was signed, for diagnostics

Verifying walks the sections by their sizes (no code is decoded), hashes with
:mod:`hashlib` and checks one Ed25519 signature: a small fraction of compiling the
module. Keys live on disk as PEM: PKCS8 (unencrypted, mode 0600) for the private key,
SubjectPublicKeyInfo for the public one (:func:`write_keypair`).

Ed25519 comes from the ``cryptography`` package, imported only when a key is needed:
reading, stripping and hashing sections works without it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from vudo_runtime.errors import (
    SignatureError,
    TamperedSpiritError,
    UnknownKeyError,
    UnsignedSpiritError,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

#: The name of the custom section that holds the signature.
SECTION_NAME = "vudo.signature"
#: What every signed message starts with, so a vudo signature means nothing elsewhere.
DOMAIN = b"vudo-spirit-signature-v1\0"
#: The payload format this module writes and reads.
FORMAT_VERSION = 1

_NAME = SECTION_NAME.encode()
_MAGIC = b"\0asm"
_MODULE_VERSION = b"\x01\x00\x00\x00"
_KEY_ID_SIZE = 8
_SIG_SIZE = 64
_HASH_SIZE = 32
_NO_MANIFEST = bytes(_HASH_SIZE)
_HEAD_SIZE = 1 + _KEY_ID_SIZE + _SIG_SIZE + 1  # version, key id, signature, hash size

#: Where a key can come from: a key object, a file path, PEM text or bytes.
PrivateKeySource: TypeAlias = "Ed25519PrivateKey | bytes | str | os.PathLike[str]"
#: A public key: a key object, a :class:`TrustedKey`, a file path, PEM text or bytes,
#: or the raw 32 bytes.
PublicKeySource: TypeAlias = (
    "Ed25519PublicKey | TrustedKey | bytes | bytearray | memoryview | str | os.PathLike[str]"
)


# --- Section walking ------------------------------------------------------------------------


def _uleb32(data: bytes, pos: int, end: int, what: str, source: str) -> tuple[int, int]:
    """A u32 LEB128 at ``pos`` that must end before ``end``: (value, position after it)."""
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise SignatureError(
                f"{source}: {what} at byte {start} runs past the end of the data: "
                "the file is truncated or not a WebAssembly module"
            )
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 35:
            raise SignatureError(
                f"{source}: {what} at byte {start} is not a valid u32 LEB128: "
                "the file is corrupt or not a WebAssembly module"
            )
    if result >= 1 << 32:
        raise SignatureError(f"{source}: {what} at byte {start} is larger than a u32")
    return result, pos


def _walk(data: bytes, source: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The module's layout, by section sizes alone: the byte spans outside every
    vudo.signature section (header included, adjacent sections merged), and the payload
    span of each vudo.signature section. Anything that is not a well-framed core module
    raises SignatureError."""
    n = len(data)
    if n < 8 or data[:4] != _MAGIC:
        hint = (
            "; it looks like WAT text: sign and verify the compiled binary"
            if data.lstrip()[:1] == b"("
            else ""
        )
        raise SignatureError(
            f"{source} is not a WebAssembly module (it does not start with \\0asm){hint}"
        )
    if data[4:8] != _MODULE_VERSION:
        raise SignatureError(
            f"{source} is not a WebAssembly core module (binary version "
            f"{data[4:8].hex()}, expected 01000000): only core modules can be signed"
        )
    kept: list[tuple[int, int]] = []
    signatures: list[tuple[int, int]] = []
    run = 0  # where the current span of kept bytes starts
    pos = 8
    while pos < n:
        section = pos
        section_id = data[pos]
        size, body = _uleb32(data, pos + 1, n, f"the size of section {section_id}", source)
        end = body + size
        if end > n:
            raise SignatureError(
                f"{source}: section {section_id} at byte {section} claims {size} bytes but "
                f"only {n - body} remain: the file is truncated or not a WebAssembly module"
            )
        if section_id == 0:
            name_len, name = _uleb32(data, body, end, "a custom section's name length", source)
            if name + name_len > end:
                raise SignatureError(
                    f"{source}: the name of the custom section at byte {section} runs past "
                    "the end of its section: the file is corrupt"
                )
            if name_len == len(_NAME) and data[name : name + name_len] == _NAME:
                if section > run:
                    kept.append((run, section))
                signatures.append((name + name_len, end))
                run = end
        pos = end
    if n > run:
        kept.append((run, n))
    return kept, signatures


def _as_bytes(wasm: bytes | bytearray | memoryview) -> bytes:
    if isinstance(wasm, bytes):
        return wasm
    if isinstance(wasm, bytearray | memoryview):
        return bytes(wasm)
    raise TypeError(f"wasm must be bytes, not {type(wasm).__name__}")


def _content_digest(data: bytes, kept: list[tuple[int, int]]) -> bytes:
    h = hashlib.sha256()
    view = memoryview(data)
    for start, end in kept:
        h.update(view[start:end])
    return h.digest()


def content_sha256(wasm: bytes | bytearray | memoryview, *, source: str = "<bytes>") -> str:
    """The sha256 (hex) of the module without its vudo.signature sections: what signing
    covers, and the same before and after signing (for an unsigned module, the sha256 of
    its bytes). Raises SignatureError when ``wasm`` is not a well-framed module."""
    data = _as_bytes(wasm)
    kept, _ = _walk(data, source)
    return _content_digest(data, kept).hex()


def strip_signature(wasm: bytes | bytearray | memoryview, *, source: str = "<bytes>") -> bytes:
    """The module with every vudo.signature section removed (the same bytes when it has
    none). Raises SignatureError when ``wasm`` is not a well-framed module."""
    data = _as_bytes(wasm)
    kept, signatures = _walk(data, source)
    if not signatures:
        return data
    return b"".join(data[start:end] for start, end in kept)


# --- The signature record -------------------------------------------------------------------


@attrs.frozen
class SpiritSignature:
    """The record in a module's vudo.signature section (not yet verified)."""

    #: The payload format version (``FORMAT_VERSION``).
    version: int
    #: The signing key's id: 16 hex digits, the start of sha256(raw public key).
    key_id: str
    #: The 64-byte Ed25519 signature.
    signature: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    #: The sha256 of the manifest signed with the module; empty when signed without one.
    manifest_sha256: bytes = attrs.field(default=b"", repr=lambda b: b.hex() or "none")

    def to_bytes(self) -> bytes:
        """The section payload (format version 1)."""
        return (
            bytes([self.version])
            + bytes.fromhex(self.key_id)
            + self.signature
            + bytes([len(self.manifest_sha256)])
            + self.manifest_sha256
        )

    @classmethod
    def from_bytes(cls, payload: bytes, *, source: str = "<bytes>") -> SpiritSignature:
        """Parse a section payload; SignatureError when it is not a version-1 record."""
        where = f"{source}: the {SECTION_NAME} section"
        if not payload:
            raise SignatureError(f"{where} is empty; sign the Spirit again")
        if payload[0] != FORMAT_VERSION:
            raise SignatureError(
                f"{where} has format version {payload[0]}, but this vudo_runtime reads only "
                f"version {FORMAT_VERSION}; upgrade vudo_runtime or sign the Spirit again"
            )
        if len(payload) < _HEAD_SIZE:
            raise SignatureError(
                f"{where} is truncated ({len(payload)} bytes; a signature needs at least "
                f"{_HEAD_SIZE}); sign the Spirit again"
            )
        hash_size = payload[_HEAD_SIZE - 1]
        if hash_size not in (0, _HASH_SIZE) or len(payload) != _HEAD_SIZE + hash_size:
            raise SignatureError(
                f"{where} is malformed ({len(payload)} bytes, manifest hash size "
                f"{hash_size}; expected {_HEAD_SIZE} or {_HEAD_SIZE + _HASH_SIZE} bytes); "
                "sign the Spirit again"
            )
        return cls(
            version=payload[0],
            key_id=payload[1 : 1 + _KEY_ID_SIZE].hex(),
            signature=bytes(payload[1 + _KEY_ID_SIZE : 1 + _KEY_ID_SIZE + _SIG_SIZE]),
            manifest_sha256=bytes(payload[_HEAD_SIZE:]),
        )


def _one_signature(
    data: bytes, source: str
) -> tuple[list[tuple[int, int]], SpiritSignature | None]:
    kept, signatures = _walk(data, source)
    if not signatures:
        return kept, None
    if len(signatures) > 1:
        raise SignatureError(
            f"{source} has {len(signatures)} {SECTION_NAME} sections, but a signed Spirit "
            "has exactly one; sign it again (signing replaces them all)"
        )
    start, end = signatures[0]
    return kept, SpiritSignature.from_bytes(data[start:end], source=source)


def read_signature(
    wasm: bytes | bytearray | memoryview, *, source: str = "<bytes>"
) -> SpiritSignature | None:
    """The module's signature record, unverified; None when it is not signed.

    SignatureError when ``wasm`` is not a well-framed module or the section is malformed.
    """
    return _one_signature(_as_bytes(wasm), source)[1]


def _message(content: bytes, manifest_digest: bytes) -> bytes:
    return DOMAIN + content + manifest_digest


def _section(payload: bytes) -> bytes:
    body = _uleb(len(_NAME)) + _NAME + payload
    return b"\x00" + _uleb(len(body)) + body


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


# --- Keys -----------------------------------------------------------------------------------


def _crypto() -> None:
    """SignatureError unless the ``cryptography`` package can be imported."""
    try:
        import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
    except ImportError as exc:
        raise SignatureError(
            "Ed25519 signing and verifying need the 'cryptography' package: "
            "pip install cryptography"
        ) from exc


def key_id(key: PublicKeySource | Ed25519PrivateKey) -> str:
    """The 16-hex-digit id of a key (for a private key, of its public half)."""
    _crypto()
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        key = key.public_key()
    return TrustedKey.of(key).key_id


def _raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_id_of_raw(raw: bytes) -> str:
    return hashlib.sha256(raw).digest()[:_KEY_ID_SIZE].hex()


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as PEM: (PKCS8 private key, SubjectPublicKeyInfo public key)."""
    _crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def write_keypair(
    path_stem: str | os.PathLike[str], *, overwrite: bool = False
) -> tuple[Path, Path]:
    """Generate a key pair and write ``<stem>.key`` (private, mode 0600) and ``<stem>.pub``.

    Existing files are refused unless ``overwrite`` (then they are replaced, never
    rewritten in place, so the new private key never inherits wider permissions).
    Returns (private key path, public key path).
    """
    stem = Path(path_stem)
    private_path = stem.with_name(stem.name + ".key")
    public_path = stem.with_name(stem.name + ".pub")
    if not overwrite:
        for path in (private_path, public_path):
            if path.exists() or path.is_symlink():
                raise SignatureError(
                    f"refusing to overwrite the existing key file {path}; choose another "
                    "name, or pass overwrite=True to replace the key pair"
                )
    private_pem, public_pem = generate_key()
    _write_new(private_path, private_pem, 0o600, replace=overwrite)
    _write_new(public_path, public_pem, 0o644, replace=overwrite)
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    try:
        if replace:
            path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise SignatureError(f"cannot write the key file {path}: {exc.strerror}") from exc
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)  # exactly this mode, whatever the umask
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SignatureError(f"{what} file not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise SignatureError(f"{what} file {os.fspath(path)} is a directory") from None
    except OSError as exc:
        raise SignatureError(
            f"cannot read the {what} file {os.fspath(path)}: {exc.strerror}"
        ) from exc


def _kind(key: object) -> str:
    """``"an RSA"``, ``"an EC"``, ``"a DSA"``: the key's algorithm, with its article."""
    name = type(key).__name__
    for suffix in ("PrivateKey", "PublicKey"):
        name = name.removesuffix(suffix)
    name = name or type(key).__name__
    return ("an " if name[:1] in "AEFHILMNORSX" else "a ") + name  # as spelled out


def _is_pem_text(text: str) -> bool:
    return text.lstrip().startswith("-----BEGIN")


def load_private_key(source: PrivateKeySource) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PKCS8 PEM file (a path), PEM bytes or text, or a key
    object (returned as is). SignatureError naming the file and what is wrong."""
    _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(source, ed25519.Ed25519PrivateKey):
        return source
    if isinstance(source, bytes):
        data, label = source, "the private key (PEM bytes)"
    elif isinstance(source, str) and _is_pem_text(source):
        data, label = source.encode(), "the private key (PEM text)"
    elif isinstance(source, str | os.PathLike):
        data, label = _read_key_file(source, "private key"), f"private key file {os.fspath(source)}"
    else:
        raise TypeError(
            f"a private key must be a path, PEM bytes or an Ed25519PrivateKey, "
            f"not {type(source).__name__}"
        )
    if not data.lstrip().startswith(b"-----BEGIN"):
        raise SignatureError(
            f"{label} is not a PEM file (expected '-----BEGIN PRIVATE KEY-----'); "
            "write a key pair with vudo_runtime.signing.write_keypair"
        )
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise SignatureError(
            f"{label} holds a public key; signing needs the private key (the .key file)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # a password is needed
        raise SignatureError(
            f"{label} is encrypted; vudo reads unencrypted PKCS8 keys (keep the file "
            "mode 0600), e.g. written by vudo_runtime.signing.write_keypair"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"{label} is not a readable PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SignatureError(f"{label} holds {_kind(key)} key; vudo signs with Ed25519 keys")
    return key


def load_public_key(source: PublicKeySource) -> Ed25519PublicKey:
    """An Ed25519 public key from a SubjectPublicKeyInfo PEM file (a path), PEM bytes or
    text, the raw 32 bytes, or a key object. SignatureError naming the file and what is
    wrong (a private key file is refused: trust the ``.pub`` file)."""
    _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if isinstance(source, ed25519.Ed25519PublicKey):
        return source
    if isinstance(source, TrustedKey):
        return source.public_key()
    if isinstance(source, bytes | bytearray | memoryview):
        data, label = bytes(source), "the public key (bytes)"
        if len(data) == 32 and not data.startswith(b"-----"):
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
    elif isinstance(source, str) and _is_pem_text(source):
        data, label = source.encode(), "the public key (PEM text)"
    elif isinstance(source, str | os.PathLike):
        data, label = _read_key_file(source, "public key"), f"public key file {os.fspath(source)}"
    else:
        raise TypeError(
            "a public key must be a path, PEM bytes, 32 raw bytes or an Ed25519PublicKey, "
            f"not {type(source).__name__}"
        )
    if not data.lstrip().startswith(b"-----BEGIN"):
        raise SignatureError(
            f"{label} is not a PEM file (expected '-----BEGIN PUBLIC KEY-----') nor a raw "
            "32-byte Ed25519 key"
        )
    if b"PRIVATE KEY-----" in data:
        raise SignatureError(
            f"{label} holds a private key; trust the public key (the .pub file) instead, "
            "and keep the private key only where Spirits are signed"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"{label} is not a readable PEM public key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SignatureError(
            f"{label} holds {_kind(key)} key; vudo verifies Ed25519 signatures only"
        )
    return key


def _check_raw(_: object, __: attrs.Attribute[Any], raw: bytes) -> None:
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise ValueError("a TrustedKey's raw key is 32 bytes")


@attrs.frozen
class TrustedKey:
    """One public key a :class:`TrustPolicy` trusts: its raw 32 bytes, and where it came
    from (for messages). Equal keys compare equal whatever their origin."""

    raw: bytes = attrs.field(validator=_check_raw, repr=False)
    origin: str = attrs.field(default="<key>", eq=False)
    key_id: str = attrs.field(init=False)
    _key: Any = attrs.field(init=False, eq=False, repr=False)

    @key_id.default
    def _key_id(self) -> str:
        return _key_id_of_raw(self.raw)

    @_key.default
    def _public(self) -> Any:
        _crypto()
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PublicKey.from_public_bytes(self.raw)

    def public_key(self) -> Ed25519PublicKey:
        key: Ed25519PublicKey = self._key
        return key

    @classmethod
    def of(cls, source: PublicKeySource) -> TrustedKey:
        """A trusted key from any public key source (see :func:`load_public_key`)."""
        if isinstance(source, TrustedKey):
            return source
        if isinstance(source, os.PathLike):
            origin = os.fspath(source)
        elif isinstance(source, str) and not _is_pem_text(source):
            origin = source
        else:
            origin = "<key>"
        return cls(_raw_public(load_public_key(source)), origin)


def _trusted_keys(
    keys: PublicKeySource | Iterable[PublicKeySource],
) -> tuple[TrustedKey, ...]:
    """One key or an iterable of keys (a str, bytes or key object is one key)."""
    if isinstance(keys, Iterable) and not isinstance(keys, str | bytes | bytearray | memoryview):
        return tuple(dict.fromkeys(TrustedKey.of(k) for k in keys))
    return (TrustedKey.of(keys),)


def _check_keys(policy: TrustPolicy, _: attrs.Attribute[Any], keys: tuple[TrustedKey, ...]) -> None:
    if policy.require_signature and not keys:
        raise ValueError(
            "a TrustPolicy that requires signatures needs at least one trusted key "
            "(or require_signature=False)"
        )


@attrs.frozen
class TrustPolicy:
    """Which keys a Spirit may be signed with, and whether it must be signed at all.

    ``keys`` takes key files (paths), PEM bytes or text, raw 32-byte keys, key objects or
    :class:`TrustedKey`; one or an iterable of them. With ``require_signature=False`` an
    unsigned Spirit passes, but a signed one must still verify against ``keys``.
    """

    keys: tuple[TrustedKey, ...] = attrs.field(converter=_trusted_keys, validator=_check_keys)
    require_signature: bool = True
    _by_id: dict[str, tuple[TrustedKey, ...]] = attrs.field(
        init=False, eq=False, repr=False, hash=False
    )

    @_by_id.default
    def _index(self) -> dict[str, tuple[TrustedKey, ...]]:
        by_id: dict[str, tuple[TrustedKey, ...]] = {}
        for key in self.keys:
            by_id[key.key_id] = (*by_id.get(key.key_id, ()), key)
        return by_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the trusted keys, in order."""
        return tuple(k.key_id for k in self.keys)

    def keys_with_id(self, key_id: str) -> tuple[TrustedKey, ...]:
        """The trusted keys with this id (almost always one, or none)."""
        return self._by_id.get(key_id, ())


# --- Signing and verifying ------------------------------------------------------------------


def sign(
    wasm: bytes | bytearray | memoryview,
    private_key: PrivateKeySource,
    manifest: bytes | None = None,
    *,
    source: str = "<bytes>",
) -> bytes:
    """The module signed with ``private_key``, covering ``manifest`` (its exact bytes)
    when given. Any previous vudo.signature section is replaced by the new one, appended
    at the end. SignatureError when ``wasm`` is not a well-framed module or the key is bad.
    """
    data = _as_bytes(wasm)
    key = load_private_key(private_key)
    kept, _ = _walk(data, source)
    content = _content_digest(data, kept)
    manifest_digest = hashlib.sha256(manifest).digest() if manifest is not None else b""
    signature = key.sign(_message(content, manifest_digest or _NO_MANIFEST))
    record = SpiritSignature(
        version=FORMAT_VERSION,
        key_id=_key_id_of_raw(_raw_public(key.public_key())),
        signature=signature,
        manifest_sha256=manifest_digest,
    )
    stripped = b"".join(data[start:end] for start, end in kept)
    return stripped + _section(record.to_bytes())


def verify(
    wasm: bytes | bytearray | memoryview,
    policy: TrustPolicy,
    manifest: bytes | None = None,
    *,
    source: str = "<bytes>",
) -> None:
    """Check the module's signature (and, when given, that it covers ``manifest``, the
    manifest's exact bytes) against ``policy``; returns None when it may be loaded.

    Raises (all SignatureError): UnsignedSpiritError when it is unsigned and the policy
    requires a signature; UnknownKeyError when signed by a key the policy does not list;
    TamperedSpiritError when the signature does not verify (the module or the manifest
    changed after signing, or a manifest is given for a Spirit signed without one);
    SignatureError when the module or its signature section is malformed, or it was
    signed together with a manifest that is not given.
    """
    data = _as_bytes(wasm)
    kept, record = _one_signature(data, source)
    if record is None:
        if policy.require_signature:
            raise UnsignedSpiritError(
                f"{source} is not signed (it has no {SECTION_NAME} section), and the trust "
                "policy requires a signature; sign it (vudo_runtime.signing.sign) with a "
                "trusted key, or load it with require_signature=False"
            )
        return
    candidates = policy.keys_with_id(record.key_id)
    if not candidates:
        trusted = ", ".join(policy.key_ids) or "none"
        raise UnknownKeyError(
            f"{source} is signed by key {record.key_id}, which the trust policy does not "
            f"list (trusted keys: {trusted}); add that key's public key to the policy if "
            "you trust it"
        )
    if manifest is None:
        if record.manifest_sha256:
            raise SignatureError(
                f"{source} was signed together with a manifest (sha256 "
                f"{record.manifest_sha256.hex()}), which was not given; verify it with its "
                "manifest's bytes (manifest=...)"
            )
        manifest_digest = _NO_MANIFEST
    else:
        manifest_digest = hashlib.sha256(manifest).digest()
        if not record.manifest_sha256:
            raise TamperedSpiritError(
                f"{source} was signed without a manifest, so the given manifest is not "
                "covered by its signature; sign the Spirit again together with its manifest"
            )
        if record.manifest_sha256 != manifest_digest:
            raise TamperedSpiritError(
                f"{source}: its manifest changed after signing (signed sha256 "
                f"{record.manifest_sha256.hex()}, now {manifest_digest.hex()}); restore the "
                "manifest, or sign the Spirit again with the new one"
            )
    message = _message(_content_digest(data, kept), manifest_digest)
    from cryptography.exceptions import InvalidSignature

    for key in candidates:
        try:
            key.public_key().verify(record.signature, message)
        except InvalidSignature:
            continue
        return
    raise TamperedSpiritError(
        f"{source}: the signature by key {record.key_id} does not verify: the module changed "
        "after signing, or its signature is corrupt; do not load it (sign it again if you "
        "built it yourself)"
    )
