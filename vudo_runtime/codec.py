"""Gene codec: a gene's values to and from the flat tuple of its ``struct`` format.

Built once per layout (``GeneLayout.codec``) and used by MemoryManager, which does the
memory I/O; nothing here touches memory. layout.py imports this module, so this one
does not import layout.py: it reads a layout through the small protocols below.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from vudo_runtime.errors import LayoutError
from vudo_runtime.scalars import SCALARS

__all__ = ["Codec", "EnumShape", "FieldShape", "GeneShape"]

# kinds whose stored value is the Python value (no conversion on read or write)
_PLAIN_KINDS = frozenset({"i32", "u32", "i64", "u64", "f32", "f64", "ptr"})

_INT_RANGES: dict[str, tuple[int, int]] = {
    "i32": (-(2**31), 2**31 - 1),
    "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u64": (0, 2**64 - 1),
    "ptr": (0, 2**32 - 1),
}


class EnumShape(Protocol):
    """What the codec uses of an ``EnumType``."""

    def encode(self, value: Any) -> int: ...

    def decode(self, discriminant: int) -> Any: ...

    def describe(self) -> str: ...


class FieldShape(Protocol):
    """What the codec reads of a ``Field``."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> Any:
        """The scalar kind name, a GeneShape (kind "gene") or an EnumShape (kind "enum")."""
        ...

    @property
    def offset(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def kind(self) -> str: ...


class GeneShape(Protocol):
    """What the codec reads of a ``GeneLayout``."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def fields(self) -> Sequence[FieldShape]: ...


@attrs.frozen
class _Node:
    """One field in the decode/encode tree; ``slot`` indexes the flat struct tuple."""

    name: str
    kind: str
    slot: int
    enum: EnumShape | None = None
    children: tuple[_Node, ...] = ()
    layout: GeneShape | None = None


class Codec:
    """A gene's flattened struct format plus the plan to turn its tuple into a dict and back."""

    __slots__ = (
        "attr_getter",
        "decode_plain",
        "getter",
        "instance_classes",
        "layout",
        "names",
        "nslots",
        "plain",
        "size",
        "struct",
        "tree",
    )

    def __init__(self, layout: GeneShape) -> None:
        fmt: list[str] = ["<"]
        pos = 0
        slot = 0

        def build(gl: GeneShape, base: int) -> tuple[_Node, ...]:
            nonlocal pos, slot
            nodes: list[_Node] = []
            for f in gl.fields:
                start = base + f.offset
                kind = f.kind
                if kind == "gene":
                    children = build(f.type, start)
                    nodes.append(_Node(f.name, kind, -1, children=children, layout=f.type))
                    continue
                char = "i" if kind == "enum" else SCALARS[kind][0]
                if start > pos:
                    fmt.append(f"{start - pos}x")
                fmt.append(char)
                pos = start + f.size
                en = f.type if kind == "enum" else None
                nodes.append(_Node(f.name, kind, slot, enum=en))
                slot += 1
            return tuple(nodes)

        self.tree = build(layout, 0)
        if layout.size > pos:
            fmt.append(f"{layout.size - pos}x")
        self.struct = struct.Struct("".join(fmt))
        self.size = self.struct.size
        if self.size != layout.size:  # pragma: no cover - guarded invariant
            raise LayoutError(f"gene {layout.name!r}: internal struct size mismatch")
        self.layout = layout
        self.nslots = slot
        self.names = tuple(f.name for f in layout.fields)
        self.plain = all(n.kind in _PLAIN_KINDS for n in self.tree)
        self.getter = _make_getter(self.names)
        self.attr_getter = _make_attr_getter(self.names)
        # attrs/dataclass classes seen, -> whether their fields are exactly this gene's
        self.instance_classes: dict[type, bool] = {}
        self.decode_plain = _make_plain_decoder(self.names)

    # -- decode -------------------------------------------------------------

    def decode(self, values: tuple[Any, ...], read_string: Callable[[int], str]) -> dict[str, Any]:
        """The gene as a dict from its unpacked struct tuple; strings via ``read_string``."""
        if self.plain:
            return self.decode_plain(values)
        return self._decode(self.tree, values, read_string, self.layout, ())

    def _decode(
        self,
        nodes: tuple[_Node, ...],
        values: tuple[Any, ...],
        read_string: Callable[[int], str],
        layout: GeneShape,
        path: tuple[str, ...],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n in nodes:
            kind = n.kind
            if kind in _PLAIN_KINDS:
                out[n.name] = values[n.slot]
            elif kind == "gene":
                assert n.layout is not None
                out[n.name] = self._decode(
                    n.children, values, read_string, n.layout, (*path, n.name)
                )
            elif kind == "bool":
                out[n.name] = values[n.slot] != 0
            elif kind == "string":
                out[n.name] = read_string(values[n.slot])
            elif kind == "char":
                code = values[n.slot]
                if code > 0x10FFFF:
                    raise self._error(
                        path, n, f"stored value {code:#x} is not a Unicode code point"
                    )
                out[n.name] = chr(code)
            else:
                assert n.enum is not None
                try:
                    out[n.name] = n.enum.decode(values[n.slot])
                except LayoutError as e:
                    raise self._error(path, n, str(e)) from None
        return out

    # -- encode -------------------------------------------------------------

    def encode(self, value: Any) -> tuple[list[Any], list[tuple[int, str]]]:
        """Validate ``value`` and flatten it: struct values plus ``(slot, text)`` strings to write.

        String slots hold 0 until the caller writes the strings and fills in their pointers.
        """
        flat: list[Any] = [0] * self.nslots
        strings: list[tuple[int, str]] = []
        self._encode(self.tree, value, flat, strings, self.layout, ())
        return flat, strings

    def _encode(
        self,
        nodes: tuple[_Node, ...],
        value: Any,
        flat: list[Any],
        strings: list[tuple[int, str]],
        layout: GeneShape,
        path: tuple[str, ...],
    ) -> None:
        fields = _field_values(value, layout, path, self.layout.name)
        for n in nodes:
            v = fields[n.name]
            kind = n.kind
            if kind == "gene":
                assert n.layout is not None
                self._encode(n.children, v, flat, strings, n.layout, (*path, n.name))
            elif kind == "string":
                if not isinstance(v, str):
                    raise self._error(path, n, f"expected str, got {type(v).__name__} {v!r}")
                strings.append((n.slot, v))
            elif kind == "enum":
                assert n.enum is not None
                try:
                    flat[n.slot] = n.enum.encode(v)
                except LayoutError as e:
                    raise self._error(path, n, str(e)) from None
            else:
                flat[n.slot] = self._scalar(path, n, v)

    def _scalar(self, path: tuple[str, ...], n: _Node, v: Any) -> Any:
        kind = n.kind
        if kind in _INT_RANGES:
            try:
                iv = operator.index(v)
            except TypeError:
                raise self._error(
                    path, n, f"expected an int, got {type(v).__name__} {v!r}"
                ) from None
            lo, hi = _INT_RANGES[kind]
            if not lo <= iv <= hi:
                raise self._error(path, n, f"value {iv} out of range [{lo}, {hi}]")
            return iv
        if kind in ("f32", "f64"):
            if isinstance(v, str | bytes | bytearray) or not (
                hasattr(type(v), "__float__") or hasattr(type(v), "__index__")
            ):
                raise self._error(path, n, f"expected a float, got {type(v).__name__} {v!r}")
            fv = float(v)
            if kind == "f32":
                try:
                    struct.pack("<f", fv)
                except OverflowError:
                    raise self._error(path, n, f"value {fv!r} is too large for f32") from None
            return fv
        if kind == "bool":
            if isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)):
                return int(v)
            raise self._error(path, n, f"expected a bool, got {type(v).__name__} {v!r}")
        if kind == "char":
            if isinstance(v, str) and len(v) == 1:
                return ord(v)
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0x10FFFF:
                return v
            raise self._error(
                path, n, f"expected a 1-character str or a code point, got {type(v).__name__} {v!r}"
            )
        raise self._error(path, n, f"unsupported field kind {kind!r}")  # pragma: no cover

    def matches_class(self, cls: type) -> bool:
        """Whether instances of ``cls`` (attrs or dataclass) have exactly this gene's fields."""
        ok = self.instance_classes.get(cls)
        if ok is None:
            names = _instance_field_names(cls)
            ok = names is not None and set(names) == set(self.names)
            self.instance_classes[cls] = ok
        return ok

    def diagnose(self, value: Any) -> LayoutError:
        """A precise LayoutError for a value the fast path's struct rejected."""
        try:
            self.encode(value)
        except LayoutError as e:
            return e
        return LayoutError(f"gene {self.layout.name!r}: value {value!r} cannot be packed")

    def _error(self, path: tuple[str, ...], n: _Node, message: str) -> LayoutError:
        dotted = ".".join((*path, n.name))
        # never a "gene" node: for the others the type's name is the enum's or the kind
        shown = n.enum.describe() if n.enum is not None else n.kind
        return LayoutError(f"gene {self.layout.name!r} field {dotted!r} ({shown}): {message}")


def _make_getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """``d -> (d[name0], d[name1], ...)`` in one C call; KeyError for a missing name."""
    if len(names) >= 2:
        return operator.itemgetter(*names)
    if len(names) == 1:
        only = names[0]
        return lambda d: (d[only],)
    return lambda d: ()


def _make_attr_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj -> (obj.name0, obj.name1, ...)`` in one C call."""
    if len(names) >= 2:
        return operator.attrgetter(*names)
    if len(names) == 1:
        only = names[0]
        return lambda obj: (getattr(obj, only),)
    return lambda obj: ()


def _make_plain_decoder(names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """A function building the gene dict straight from the unpacked tuple.

    Generated once per layout (as attrs generates ``__init__``): a dict display with
    constant keys is three times faster than ``dict(zip(names, values))``. The names
    are embedded with ``repr``, so any string is safe.
    """
    body = ", ".join(f"{name!r}: v[{i}]" for i, name in enumerate(names))
    namespace: dict[str, Any] = {}
    exec(f"def decode(v):\n    return {{{body}}}\n", namespace)
    decode: Callable[[tuple[Any, ...]], dict[str, Any]] = namespace["decode"]
    return decode


_INSTANCE_NAMES: dict[type, tuple[str, ...] | None] = {}


def _instance_field_names(cls: type) -> tuple[str, ...] | None:
    """Field names of an attrs or dataclass class (None for anything else), cached."""
    try:
        return _INSTANCE_NAMES[cls]
    except KeyError:
        pass
    names: tuple[str, ...] | None = None
    if attrs.has(cls):
        names = tuple(a.name for a in attrs.fields(cls))
    elif dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
    _INSTANCE_NAMES[cls] = names
    return names


def _field_values(
    value: Any, layout: GeneShape, path: tuple[str, ...], root: str
) -> Mapping[str, Any]:
    """The field values of a dict / Mapping, attrs instance or dataclass, checked against layout."""
    where = f"gene {root!r}" + (f" field {'.'.join(path)!r} ({layout.name})" if path else "")
    if isinstance(value, Mapping):
        got: Mapping[str, Any] = value
        keys = set(value.keys())
    else:
        cls = type(value)
        names = _instance_field_names(cls)
        if names is None:
            raise LayoutError(
                f"{where}: expected a dict, an attrs instance or a dataclass instance,"
                f" got {cls.__name__} {value!r}"
            )
        got = {name: getattr(value, name) for name in names}
        keys = set(names)
    expected = {f.name for f in layout.fields}
    if keys != expected:
        missing = [f.name for f in layout.fields if f.name not in keys]
        extra = sorted(str(k) for k in keys - expected)
        parts = []
        if missing:
            parts.append("missing field(s) " + ", ".join(repr(m) for m in missing))
        if extra:
            parts.append("unknown field(s) " + ", ".join(repr(x) for x in extra))
        raise LayoutError(
            f"{where}: "
            + "; ".join(parts)
            + f" (gene {layout.name!r} has "
            + (", ".join(f.name for f in layout.fields) or "no fields")
            + ")"
        )
    return got
