"""spirit.toml: what a Spirit is, where its module is, and what it asks the host for.

```toml
[spirit]
name = "calculator"
version = "1.0.0"                 # optional
source = "calculator.wasm"        # relative to the manifest's directory
sha256 = "…64 hex digits…"        # of the module, not counting a vudo.signature section
[grants]
loas = ["core", "wasi"]           # the Loas it asks for; none when absent
[limits]
timeout = 2.0                     # seconds per call
fuel = 1000000                    # budget per call
max_memory = "16 MiB"             # bytes, or a string in B, KiB, MiB or GiB
[wasi]
dirs = [{ host = "data", guest = "/data", mode = "ro" }]   # host relative to the manifest
env = { GREETING = "hi" }
args = ["--verbose"]
[config]
any_key = "any TOML value"        # free-form, for the host
```

:func:`load_manifest` checks the whole document: every error is a :class:`ManifestError`
whose message starts with ``<file>: [section] key:``. Relative paths (``..`` included)
are resolved against the manifest's directory, and errors show the resolved path.

A manifest says what a Spirit asks for; the host's :class:`HostPolicy` can only narrow
it (:meth:`Manifest.narrowed`): a Loa the policy does not allow is refused (not dropped:
the Spirit would then fail to link with a confusing error), each limit is the smaller of
the two, read-write directories become read-only when the policy forbids writing, and a
directory outside the policy's is refused. A policy never adds a grant nor raises a limit.

``Manifest.raw`` is the file's exact bytes: what :func:`vudo_runtime.signing.sign`
covers when a Spirit is signed together with its manifest.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import attrs

from vudo_runtime.errors import ManifestError, SignatureError
from vudo_runtime.module import str_tuple
from vudo_runtime.signing import content_sha256, read_signature

DirMode = Literal["ro", "rw"]

#: Sections and their keys; None: free-form.
_SCHEMA: dict[str, tuple[str, ...] | None] = {
    "spirit": ("name", "version", "source", "sha256"),
    "grants": ("loas",),
    "limits": ("timeout", "fuel", "max_memory"),
    "wasi": ("dirs", "env", "args"),
    "config": None,
}
_REQUIRED = ("name", "source", "sha256")
_DIR_KEYS = ("host", "guest", "mode")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_TOML_AT = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)


# --- Values ---------------------------------------------------------------------------------


@attrs.frozen
class Limits:
    """Per-call limits; None: not set (the runtime's default)."""

    #: Seconds per call.
    timeout: float | None = None
    #: Fuel budget per call.
    fuel: int | None = None
    #: Bytes of linear memory the Spirit may grow to.
    max_memory: int | None = None


@attrs.frozen
class WasiDir:
    """A host directory preopened for the guest."""

    #: The host directory, resolved (absolute).
    host: Path
    #: Where the guest sees it.
    guest: str
    #: ``"ro"`` (read-only) or ``"rw"``.
    mode: DirMode = "ro"

    @property
    def writable(self) -> bool:
        return self.mode == "rw"


def _frozen_env(env: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(env))


def _frozen_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(config))


@attrs.frozen
class Wasi:
    """The WASI environment a Spirit asks for."""

    dirs: tuple[WasiDir, ...] = ()
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env, hash=False)
    args: tuple[str, ...] = attrs.field(default=(), converter=str_tuple)


@attrs.frozen
class Manifest:
    """A parsed, validated spirit.toml (see the module's docstring)."""

    #: The manifest file, absolute.
    path: Path
    #: The file's exact bytes (what signing covers).
    raw: bytes = attrs.field(repr=False)
    name: str
    version: str | None
    #: The module file, resolved against the manifest's directory.
    source: Path
    #: The expected sha256 of the module (lowercase hex), not counting its signature.
    sha256: str
    #: The Loas the Spirit asks for, in the manifest's order.
    loas: tuple[str, ...] = ()
    limits: Limits = Limits()
    wasi: Wasi = Wasi()
    #: The free-form ``[config]`` table.
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_config, hash=False)

    @property
    def directory(self) -> Path:
        """The manifest's directory, against which its relative paths are resolved."""
        return self.path.parent

    def read_source(self) -> bytes:
        """The module's bytes, once their sha256 matches ``sha256`` (else ManifestError).

        A signed module matches when its bytes without the vudo.signature section do (the
        manifest is written before signing), or when the whole file does.
        """
        try:
            data = self.source.read_bytes()
        except FileNotFoundError:
            raise self._error("spirit", "source", f"file not found: {self.source}") from None
        except OSError as exc:
            raise self._error(
                "spirit", "source", f"cannot read {self.source}: {exc.strerror}"
            ) from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual == self.sha256:
            return data
        try:
            if read_signature(data) is not None:
                actual = content_sha256(data)
        except SignatureError:
            pass  # not a module we can read: report the hash of the file's bytes
        if actual == self.sha256:
            return data
        raise self._error(
            "spirit",
            "sha256",
            f"{self.source} has sha256 {actual}, but the manifest expects {self.sha256}; "
            f"if this file is the one you want, update sha256 in {self.path} to {actual}",
        )

    def narrowed(self, policy: HostPolicy) -> Manifest:
        """This manifest as the host allows it: never more than it asks for.

        Grants: every Loa must be one the policy allows (else ManifestError naming it).
        Limits: the smaller of the manifest's and the policy's (a manifest without one
        gets the policy's). Directories: each must lie inside one of the policy's
        ``wasi_dirs`` (else ManifestError); ``rw`` becomes ``ro`` unless ``allow_rw``.
        """
        if policy.loas is not None:
            refused = [loa for loa in self.loas if loa not in policy.loas]
            if refused:
                allowed = ", ".join(sorted(policy.loas)) or "none"
                names = ("Loa " if len(refused) == 1 else "Loas ") + ", ".join(
                    repr(loa) for loa in refused
                )
                raise self._error(
                    "grants",
                    "loas",
                    f"the host policy does not allow {names} (it allows: "
                    f"{allowed}); remove it from the manifest, or allow it in the host's "
                    "policy",
                )
        limits = Limits(
            timeout=_smaller(self.limits.timeout, _seconds(policy.timeout)),
            fuel=_smaller(self.limits.fuel, policy.fuel),
            max_memory=_smaller(self.limits.max_memory, policy.max_memory),
        )
        dirs = []
        for i, d in enumerate(self.wasi.dirs):
            if policy.wasi_dirs is not None and not any(
                d.host.is_relative_to(allowed) for allowed in policy.wasi_dirs
            ):
                shown = ", ".join(str(a) for a in policy.wasi_dirs) or "none"
                raise self._error(
                    "wasi",
                    f"dirs[{i}].host",
                    f"{d.host} is outside the directories the host policy allows "
                    f"({shown}); use a directory inside one of them, or allow it in the "
                    "host's policy",
                )
            if d.writable and not policy.allow_rw:
                d = attrs.evolve(d, mode="ro")
            dirs.append(d)
        return attrs.evolve(self, limits=limits, wasi=attrs.evolve(self.wasi, dirs=tuple(dirs)))

    def _error(self, section: str, key: str, message: str) -> ManifestError:
        return ManifestError(f"{self.path}: [{section}] {key}: {message}")


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)


def _smaller(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


# --- The host's policy ----------------------------------------------------------------------


def _optional_names(loas: Iterable[str] | None) -> frozenset[str] | None:
    if loas is None:
        return None
    if isinstance(loas, str):
        raise TypeError("HostPolicy.loas must be an iterable of Loa names, not one string")
    return frozenset(loas)


def _optional_dirs(
    dirs: Iterable[str | os.PathLike[str]] | str | os.PathLike[str] | None,
) -> tuple[Path, ...] | None:
    if dirs is None:
        return None
    if isinstance(dirs, str | os.PathLike):
        dirs = [dirs]
    return tuple(Path(d).resolve() for d in dirs)


def _optional_size(size: int | str | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, str):
        parsed, problem = _parse_size(size)
        if problem:
            raise ValueError(f"HostPolicy.max_memory: {problem}")
        return parsed
    return size


def _check_positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not value > 0:
        raise ValueError(f"HostPolicy.{attribute.name} must be a positive number, got {value!r}")
    if attribute.name != "timeout" and not isinstance(value, int):
        raise ValueError(f"HostPolicy.{attribute.name} must be an int, got {value!r}")


@attrs.frozen
class HostPolicy:
    """The most the host grants any manifest; None (the default) caps nothing.

    ``loas``: the Loa names a manifest may ask for. ``timeout`` (seconds), ``fuel`` and
    ``max_memory`` (bytes, or a string like ``"64 MiB"``): the largest limits. ``wasi_dirs``:
    host directories inside which preopened directories must lie (``()``: none at all).
    ``allow_rw``: False turns every read-write directory read-only.
    """

    loas: frozenset[str] | None = attrs.field(default=None, converter=_optional_names)
    timeout: float | None = attrs.field(default=None, validator=_check_positive)
    fuel: int | None = attrs.field(default=None, validator=_check_positive)
    max_memory: int | None = attrs.field(
        default=None, converter=_optional_size, validator=_check_positive
    )
    wasi_dirs: tuple[Path, ...] | None = attrs.field(default=None, converter=_optional_dirs)
    allow_rw: bool = True


# --- Parsing --------------------------------------------------------------------------------


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # dates and times


def _suggest(word: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return close[0] if close else ""


def _parse_size(text: str) -> tuple[int, str]:
    """(bytes, "") or (0, what is wrong) for a size like ``"16 MiB"``."""
    m = _SIZE.fullmatch(text)
    if not m:
        return 0, f'cannot read {text!r} as a size; write bytes or e.g. "16 MiB"'
    number, unit = m.groups()
    if unit not in _UNITS and unit:
        close = _suggest(unit, _UNITS) or {"K": "KiB", "M": "MiB", "G": "GiB"}.get(
            unit[:1].upper(), ""
        )
        hint = f" (did you mean {close!r}?)" if close else ""
        return 0, f"unknown unit {unit!r} in {text!r}{hint}; use B, KiB, MiB or GiB"
    size = int(float(number) * _UNITS[unit or "B"])
    if size <= 0:
        return 0, f"must be a positive size, got {text!r}"
    return size, ""


class _Checker:
    """Validation with messages ``<file>: [section] key: ...``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, section: str, key: str, message: str) -> ManifestError:
        where = f"[{section}] {key}" if key else f"[{section}]"
        return ManifestError(f"{self.path}: {where}: {message}")

    def table(self, doc: Mapping[str, Any], section: str) -> dict[str, Any]:
        value = doc.get(section, {})
        if not isinstance(value, dict):
            raise self.error(section, "", f"must be a table, got {_type_name(value)}")
        keys = _SCHEMA[section]
        if keys is not None:
            for key in value:
                if key not in keys:
                    raise self.error(section, key, self.unknown(key, keys))
        return value

    @staticmethod
    def unknown(key: str, valid: tuple[str, ...]) -> str:
        close = _suggest(key, valid)
        hint = f"did you mean {close!r}? " if close else ""
        return f"unknown key; {hint}(valid keys: {', '.join(valid)})"

    def string(self, section: str, key: str, value: object) -> str:
        if not isinstance(value, str):
            hint = "; quote it" if isinstance(value, int | float) else ""
            raise self.error(
                section, key, f"must be a string, got {_type_name(value)} ({value!r}){hint}"
            )
        if not value.strip():
            raise self.error(section, key, "must not be empty")
        return value

    def strings(self, section: str, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.error(section, key, f"must be an array of strings, got {_type_name(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(
                    section,
                    f"{key}[{i}]",
                    f"must be a string, got {_type_name(item)} ({item!r})",
                )
            out.append(item)
        return tuple(out)

    def positive(self, section: str, key: str, value: object, *, integer: bool) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "an integer" if integer else "a number"
            raise self.error(section, key, f"must be {kind}, got {_type_name(value)}")
        if integer and not isinstance(value, int):
            raise self.error(section, key, f"must be an integer, got a float ({value!r})")
        if math.isnan(value) or value <= 0:
            raise self.error(section, key, f"must be positive, got {value!r}")
        return value


def parse_manifest(raw: bytes, path: str | os.PathLike[str]) -> Manifest:
    """A manifest from its bytes; ``path`` names the file (in messages) and its directory
    (for relative paths). ManifestError when the document is invalid."""
    file = Path(os.path.abspath(path))
    check = _Checker(file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        body, at = exc.object, exc.start  # after a BOM, if any
        line = body.count(b"\n", 0, at) + 1
        column = at - (body.rfind(b"\n", 0, at) + 1) + 1
        raise ManifestError(
            f"{file}:{line}:{column}: not UTF-8 text (byte 0x{body[at]:02x}); "
            "save the manifest as UTF-8"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_AT.match(str(exc))
        if m:
            what, toml_line, toml_column = m.groups()
            raise ManifestError(f"{file}:{toml_line}:{toml_column}: invalid TOML: {what}") from None
        raise ManifestError(f"{file}: invalid TOML: {exc}") from None

    for section, value in doc.items():
        if section in _SCHEMA:
            continue
        if not isinstance(value, dict):
            owner = next((s for s, keys in _SCHEMA.items() if keys and section in keys), None)
            hint = f"; it belongs under [{owner}]" if owner else ""
            raise ManifestError(
                f"{file}: {section}: a key outside any section{hint} "
                f"(sections: {', '.join(f'[{s}]' for s in _SCHEMA)})"
            )
        close = _suggest(section, _SCHEMA)
        hint = f"did you mean [{close}]? " if close else ""
        raise check.error(
            section,
            "",
            f"unknown section; {hint}(valid sections: {', '.join(f'[{s}]' for s in _SCHEMA)})",
        )

    if "spirit" not in doc:
        raise check.error(
            "spirit", "", "required section is missing (it needs name, source and sha256)"
        )
    spirit = check.table(doc, "spirit")
    for key in _REQUIRED:
        if key not in spirit:
            raise check.error("spirit", key, "required key is missing")
    name = check.string("spirit", "name", spirit["name"])
    version = spirit.get("version")
    if version is not None:
        version = check.string("spirit", "version", version)
    source_text = check.string("spirit", "source", spirit["source"])
    source = (file.parent / source_text).resolve()
    sha256 = check.string("spirit", "sha256", spirit["sha256"])
    if not _SHA256.fullmatch(sha256):
        raise check.error(
            "spirit",
            "sha256",
            f"must be 64 hex digits (the sha256 of {source}), got {sha256!r}",
        )

    grants = check.table(doc, "grants")
    loas = check.strings("grants", "loas", grants.get("loas", []))
    for i, loa in enumerate(loas):
        if not loa.strip():
            raise check.error("grants", f"loas[{i}]", "must not be empty")
        if loa in loas[:i]:
            raise check.error("grants", f"loas[{i}]", f"{loa!r} is listed twice")

    lim = check.table(doc, "limits")
    limits = Limits(
        timeout=(
            float(check.positive("limits", "timeout", lim["timeout"], integer=False))
            if "timeout" in lim
            else None
        ),
        fuel=check.positive("limits", "fuel", lim["fuel"], integer=True) if "fuel" in lim else None,
        max_memory=_max_memory(check, lim["max_memory"]) if "max_memory" in lim else None,
    )

    wasi = check.table(doc, "wasi")
    dirs = _dirs(check, file.parent, wasi.get("dirs", []))
    env = wasi.get("env", {})
    if not isinstance(env, dict):
        raise check.error("wasi", "env", f"must be a table of strings, got {_type_name(env)}")
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise check.error("wasi", f"env.{key}", "is not a valid variable name")
        if not isinstance(value, str):
            raise check.error(
                "wasi",
                f"env.{key}",
                f"must be a string, got {_type_name(value)} ({value!r}); quote it",
            )
    args = check.strings("wasi", "args", wasi.get("args", []))

    config = check.table(doc, "config")
    return Manifest(
        path=file,
        raw=bytes(raw),
        name=name,
        version=version,
        source=source,
        sha256=sha256.lower(),
        loas=loas,
        limits=limits,
        wasi=Wasi(dirs=dirs, env=env, args=args),
        config=config,
    )


def _max_memory(check: _Checker, value: object) -> int:
    if isinstance(value, str):
        size, problem = _parse_size(value)
        if problem:
            raise check.error("limits", "max_memory", problem)
        return size
    if isinstance(value, bool) or not isinstance(value, int):
        raise check.error(
            "limits",
            "max_memory",
            f'must be bytes (an integer) or a string like "16 MiB", got {_type_name(value)}',
        )
    return int(check.positive("limits", "max_memory", value, integer=True))


def _dirs(check: _Checker, base: Path, value: object) -> tuple[WasiDir, ...]:
    if not isinstance(value, list):
        raise check.error("wasi", "dirs", f"must be an array of tables, got {_type_name(value)}")
    out: list[WasiDir] = []
    for i, item in enumerate(value):
        where = f"dirs[{i}]"
        if not isinstance(item, dict):
            raise check.error(
                "wasi",
                where,
                f'must be a table like {{ host = "data", guest = "/data" }}, '
                f"got {_type_name(item)}",
            )
        for key in item:
            if key not in _DIR_KEYS:
                raise check.error("wasi", f"{where}.{key}", check.unknown(key, _DIR_KEYS))
        for key in ("host", "guest"):
            if key not in item:
                raise check.error("wasi", f"{where}.{key}", "required key is missing")
        host = (base / check.string("wasi", f"{where}.host", item["host"])).resolve()
        guest = check.string("wasi", f"{where}.guest", item["guest"])
        mode = item.get("mode", "ro")
        if mode not in ("ro", "rw"):
            raise check.error("wasi", f"{where}.mode", f'must be "ro" or "rw", got {mode!r}')
        if any(d.guest == guest for d in out):
            raise check.error("wasi", f"{where}.guest", f"{guest!r} is mapped twice")
        out.append(WasiDir(host=host, guest=guest, mode=mode))
    return tuple(out)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a spirit.toml. ManifestError naming the file (and the section
    and key) when it cannot be read or is invalid. The module file is read (and its
    sha256 checked) only by :meth:`Manifest.read_source`."""
    file = Path(os.path.abspath(path))
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{file}: manifest not found") from None
    except IsADirectoryError:
        raise ManifestError(f"{file}: is a directory; give the path of its spirit.toml") from None
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read the manifest: {exc.strerror}") from exc
    return parse_manifest(raw, file)
