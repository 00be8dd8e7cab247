"""Gene layouts: where each field of a DOL gene sits in linear memory.

A gene is laid out like a C struct (the DOL compiler's rules): fields in
declaration order, each at the next offset aligned to its own alignment; the
gene's alignment is the largest field alignment (at least 1); its size is padded
to a multiple of that alignment. With ``extends=parent`` the parent's fields come
first at the parent's offsets and the gene's own fields start at ``parent.size``.
A field whose type is another :class:`GeneLayout` is embedded inline.

Field types (canonical name, then the spellings accepted for it):

=========  ==============================================  ========  =====================
canonical  also accepted                                   stored    Python value
=========  ==============================================  ========  =====================
i32        Int32                                           4 / 4     int, signed
u32        UInt32                                          4 / 4     int, unsigned
i64        Int64                                           8 / 8     int, signed
u64        UInt64                                          8 / 8     int, unsigned
f32        Float32                                         4 / 4     float
f64        Float64                                         8 / 8     float
bool       Bool                                            4 / 4     bool (i32 0 / 1)
char       Char                                            4 / 4     1-character str (code point)
string     String, str                                     4 / 4     str (i32 pointer to a
                                                                     length-prefixed string)
ptr        &T, List, Vec, Option, Map, Set, Result         4 / 4     int (unsigned i32 pointer)
           (with or without ``<...>`` arguments)
enum       an ``enum.Enum`` subclass, a sequence of        4 / 4     the member (Enum) or the
           variant names, or an :class:`EnumType`                    variant name (names)
gene       a :class:`GeneLayout`                           inline    dict
=========  ==============================================  ========  =====================

An enum is stored as the i32 index of its variant in declaration order (DOL's
rule), whatever the Python members' values are. ``i8``/``i16``/``u8``/``u16`` and
128-bit integers have no layout in DOL genes and are rejected.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from vudo_runtime.errors import LayoutError

__all__ = ["EnumType", "Field", "FieldType", "GeneLayout", "TypeSpec"]

# canonical scalar kind -> (struct format char, size = alignment)
_SCALARS: dict[str, tuple[str, int]] = {
    "i32": ("i", 4),
    "u32": ("I", 4),
    "i64": ("q", 8),
    "u64": ("Q", 8),
    "f32": ("f", 4),
    "f64": ("d", 8),
    "bool": ("i", 4),
    "char": ("I", 4),
    "string": ("I", 4),
    "ptr": ("I", 4),
}

_ALIASES: dict[str, str] = {
    "Int32": "i32",
    "UInt32": "u32",
    "Int64": "i64",
    "UInt64": "u64",
    "Float32": "f32",
    "Float64": "f64",
    "Bool": "bool",
    "Char": "char",
    "String": "string",
    "str": "string",
}

_POINTER_HEADS = frozenset({"List", "Vec", "Option", "Map", "Set", "Result"})
_NO_LAYOUT = frozenset(
    {"i8", "i16", "u8", "u16", "i128", "u128", "Int8", "Int16", "UInt8", "UInt16"}
)

# kinds whose stored value is the Python value (no conversion on read or write)
_PLAIN_KINDS = frozenset({"i32", "u32", "i64", "u64", "f32", "f64", "ptr"})

_INT_RANGES: dict[str, tuple[int, int]] = {
    "i32": (-(2**31), 2**31 - 1),
    "u32": (0, 2**32 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u64": (0, 2**64 - 1),
    "ptr": (0, 2**32 - 1),
}


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) & -align


@attrs.frozen(repr=False)
class EnumType:
    """An enum field type: an i32 discriminant = index of the variant in ``variants``."""

    name: str
    variants: tuple[str, ...]
    python_enum: type[enum.Enum] | None = None
    _index: dict[str, int] = attrs.field(init=False, eq=False, hash=False)
    _members: tuple[Any, ...] = attrs.field(init=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        if not self.variants:
            raise LayoutError(f"enum {self.name or '(anonymous)'!r} has no variants")
        for v in self.variants:
            if not isinstance(v, str) or not v:
                raise LayoutError(
                    f"enum {self.name!r}: variant names must be non-empty str, got {v!r}"
                )
        if len(set(self.variants)) != len(self.variants):
            raise LayoutError(f"enum {self.name!r}: duplicate variant names in {self.variants!r}")
        index = {name: i for i, name in enumerate(self.variants)}
        members: tuple[Any, ...] = (
            tuple(self.python_enum) if self.python_enum is not None else self.variants
        )
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_members", members)

    @classmethod
    def of(cls, spec: type[enum.Enum] | Sequence[str], name: str = "") -> EnumType:
        """An EnumType from an ``enum.Enum`` subclass or a sequence of variant names."""
        if isinstance(spec, type) and issubclass(spec, enum.Enum):
            return cls(spec.__name__, tuple(m.name for m in spec), spec)
        if isinstance(spec, str | bytes):
            raise LayoutError(f"an enum needs a sequence of variant names, not the string {spec!r}")
        return cls(name, tuple(spec))

    def encode(self, value: Any) -> int:
        """The discriminant for a member, a variant name or an index; LayoutError otherwise."""
        if isinstance(value, enum.Enum):
            if self.python_enum is not None and isinstance(value, self.python_enum):
                return self._index[value.name]
            if self.python_enum is None and value.name in self._index:
                return self._index[value.name]
            raise LayoutError(f"{value!r} is not a member of enum {self.describe()}")
        if isinstance(value, str):
            try:
                return self._index[value]
            except KeyError:
                raise LayoutError(f"{value!r} is not a variant of enum {self.describe()}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(self.variants):
                return value
            raise LayoutError(
                f"discriminant {value} out of range for enum {self.describe()}"
                f" (0..{len(self.variants) - 1})"
            )
        raise LayoutError(
            f"expected a member, variant name or index of enum {self.describe()},"
            f" got {type(value).__name__} {value!r}"
        )

    def decode(self, discriminant: int) -> Any:
        """The member (or variant name) stored as ``discriminant``; LayoutError if invalid."""
        if 0 <= discriminant < len(self._members):
            return self._members[discriminant]
        raise LayoutError(
            f"invalid discriminant {discriminant} for enum {self.describe()}"
            f" (0..{len(self.variants) - 1})"
        )

    def describe(self) -> str:
        """``Name[A, B, C]`` for messages."""
        return (
            f"{self.name}[{', '.join(self.variants)}]"
            if self.name
            else f"[{', '.join(self.variants)}]"
        )

    def __repr__(self) -> str:
        return f"EnumType({self.describe()})"


FieldType: TypeAlias = "str | GeneLayout | EnumType"
"""A field's canonical type: a scalar kind name, an embedded GeneLayout or an EnumType."""

TypeSpec: TypeAlias = "str | GeneLayout | EnumType | type[enum.Enum] | Sequence[str]"
"""What ``GeneLayout.from_fields`` accepts as a field type (see the module's table)."""


@attrs.frozen(repr=False)
class Field:
    """One field of a gene: its name, canonical type, byte offset, size and alignment."""

    name: str
    type: FieldType
    offset: int
    size: int
    align: int

    @property
    def kind(self) -> str:
        """The scalar kind name, or ``"enum"`` / ``"gene"``."""
        if isinstance(self.type, GeneLayout):
            return "gene"
        if isinstance(self.type, EnumType):
            return "enum"
        return self.type

    def __repr__(self) -> str:
        t = self.type.name if isinstance(self.type, GeneLayout) else self.type
        shown = t.describe() if isinstance(t, EnumType) else t
        return (
            f"Field({self.name!r}, {shown}, offset={self.offset},"
            f" size={self.size}, align={self.align})"
        )


def _resolve_type(gene: str, field: str, spec: Any) -> tuple[FieldType, int, int]:
    """Canonical type, size and alignment for a type spec; LayoutError if unknown."""
    if isinstance(spec, GeneLayout):
        return spec, spec.size, spec.alignment
    if isinstance(spec, EnumType):
        return spec, 4, 4
    if isinstance(spec, type) and issubclass(spec, enum.Enum):
        try:
            return EnumType.of(spec), 4, 4
        except LayoutError as e:
            raise LayoutError(f"gene {gene!r} field {field!r}: {e}") from None
    if isinstance(spec, str):
        text = spec.strip()
        kind = _ALIASES.get(text, text)
        if kind in _SCALARS:
            return kind, _SCALARS[kind][1], _SCALARS[kind][1]
        head = text.split("<", 1)[0].strip()
        if text.startswith("&") or (
            head in _POINTER_HEADS and (head == text or text.endswith(">"))
        ):
            return "ptr", 4, 4
        if text in _NO_LAYOUT:
            raise LayoutError(
                f"gene {gene!r} field {field!r}: type {spec!r} has no gene layout in DOL;"
                " use i32/u32 (4 bytes) or i64/u64 (8 bytes)"
            )
        raise LayoutError(
            f"gene {gene!r} field {field!r}: unknown type {spec!r}; expected one of "
            + ", ".join(_SCALARS)
            + " (or a DOL spelling such as Int64, String, List<T>, &T), an enum.Enum subclass"
            " or list of variant names, or a GeneLayout for an embedded gene"
        )
    if isinstance(spec, Sequence) and not isinstance(spec, bytes | bytearray):
        try:
            return EnumType.of(spec, name=field), 4, 4
        except LayoutError as e:
            raise LayoutError(f"gene {gene!r} field {field!r}: {e}") from None
    raise LayoutError(
        f"gene {gene!r} field {field!r}: unknown type {spec!r} ({type(spec).__name__});"
        " give a type name such as 'i64', an enum, or a GeneLayout"
    )


@attrs.frozen(repr=False)
class GeneLayout:
    """The memory layout of one gene; build it with :meth:`from_fields`.

    Reading and writing a gene goes through a ``struct.Struct`` precomputed for the
    whole (flattened) gene, so a gene costs one pack or unpack.
    """

    name: str
    fields: tuple[Field, ...]
    size: int
    alignment: int
    extends: GeneLayout | None = None
    _codec: _Codec = attrs.field(init=False, eq=False, hash=False)
    _by_name: dict[str, Field] = attrs.field(init=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        by_name: dict[str, Field] = {}
        end = 0
        for f in self.fields:
            if f.name in by_name:
                raise LayoutError(f"gene {self.name!r}: duplicate field {f.name!r}")
            _check_field(self.name, f)
            if f.offset < end or f.offset + f.size > self.size:
                raise LayoutError(
                    f"gene {self.name!r} field {f.name!r}: offset {f.offset} + size {f.size}"
                    f" overlaps the previous field or lies outside the gene's {self.size} bytes"
                )
            end = f.offset + f.size
            by_name[f.name] = f
        if self.alignment < 1 or self.alignment & (self.alignment - 1):
            raise LayoutError(
                f"gene {self.name!r}: alignment {self.alignment} is not a power of two"
            )
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_codec", _Codec(self))

    @classmethod
    def from_fields(
        cls,
        name: str,
        fields: Iterable[tuple[str, TypeSpec]] | Mapping[str, TypeSpec],
        extends: GeneLayout | None = None,
    ) -> GeneLayout:
        """Lay out ``fields`` (``[(name, type), ...]`` or a dict) by DOL's C-like rules.

        ``extends=parent`` puts the parent's fields first at the same offsets.
        Unknown types, empty or duplicate names (also against the parent's) raise
        LayoutError naming the gene and the field.
        """
        if not isinstance(name, str) or not name:
            raise LayoutError(f"a gene needs a non-empty name, got {name!r}")
        if extends is not None and not isinstance(extends, GeneLayout):
            raise LayoutError(
                f"gene {name!r}: extends= must be a GeneLayout, got {type(extends).__name__}"
            )
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        laid: list[Field] = list(extends.fields) if extends else []
        seen = {f.name for f in laid}
        offset = extends.size if extends else 0
        alignment = extends.alignment if extends else 1
        for item in items:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise LayoutError(
                    f"gene {name!r}: each field must be a (name, type) pair, got {item!r}"
                )
            fname, spec = item
            if not isinstance(fname, str) or not fname.isidentifier():
                raise LayoutError(
                    f"gene {name!r}: field name {fname!r} is not a valid (non-empty) identifier"
                )
            if fname in seen:
                where = (
                    f" (already a field of parent gene {extends.name!r})"
                    if extends and extends._by_name.get(fname) is not None
                    else ""
                )
                raise LayoutError(f"gene {name!r}: duplicate field {fname!r}{where}")
            seen.add(fname)
            ftype, fsize, falign = _resolve_type(name, fname, spec)
            offset = _round_up(offset, falign)
            laid.append(Field(fname, ftype, offset, fsize, falign))
            offset += fsize
            alignment = max(alignment, falign)
        return cls(name, tuple(laid), _round_up(offset, alignment), alignment, extends)

    def field(self, name: str) -> Field:
        """The field called ``name``; LayoutError listing the fields if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise LayoutError(
                f"gene {self.name!r} has no field {name!r}; fields: "
                + (", ".join(self._by_name) or "(none)")
            ) from None

    @property
    def codec(self) -> _Codec:
        """The precomputed encoder/decoder used by MemoryManager (internal)."""
        return self._codec

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}: {_type_name(f.type)} @{f.offset}" for f in self.fields)
        return (
            f"GeneLayout({self.name!r}, size={self.size},"
            f" alignment={self.alignment}, fields=[{parts}])"
        )


def _check_field(gene: str, f: Field) -> None:
    """A directly built Field must agree with its type's size and alignment."""
    if isinstance(f.type, GeneLayout):
        expected = (f.type.size, f.type.alignment)
    elif isinstance(f.type, EnumType):
        expected = (4, 4)
    elif f.type in _SCALARS:
        expected = (_SCALARS[f.type][1], _SCALARS[f.type][1])
    else:
        raise LayoutError(
            f"gene {gene!r} field {f.name!r}: unknown canonical type {f.type!r};"
            " build layouts with GeneLayout.from_fields"
        )
    if (f.size, f.align) != expected or f.offset % f.align:
        raise LayoutError(
            f"gene {gene!r} field {f.name!r}: size {f.size} / align {f.align} at offset"
            f" {f.offset} do not fit type {_type_name(f.type)} (size / align {expected})"
        )


def _type_name(t: FieldType) -> str:
    if isinstance(t, GeneLayout):
        return t.name
    if isinstance(t, EnumType):
        return t.describe()
    return t


# ---------------------------------------------------------------------------
# Encoding and decoding gene values (no memory access here: MemoryManager does I/O)


@attrs.frozen
class _Node:
    """One field in the decode/encode tree; ``slot`` indexes the flat struct tuple."""

    name: str
    kind: str
    slot: int
    field: Field
    enum: EnumType | None = None
    children: tuple[_Node, ...] = ()
    layout: GeneLayout | None = None


class _Codec:
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

    def __init__(self, layout: GeneLayout) -> None:
        fmt: list[str] = ["<"]
        pos = 0
        slot = 0

        def build(gl: GeneLayout, base: int) -> tuple[_Node, ...]:
            nonlocal pos, slot
            nodes: list[_Node] = []
            for f in gl.fields:
                start = base + f.offset
                if isinstance(f.type, GeneLayout):
                    children = build(f.type, start)
                    nodes.append(_Node(f.name, "gene", -1, f, children=children, layout=f.type))
                    continue
                kind = "enum" if isinstance(f.type, EnumType) else f.type
                char = "i" if kind == "enum" else _SCALARS[kind][0]
                if start > pos:
                    fmt.append(f"{start - pos}x")
                fmt.append(char)
                pos = start + f.size
                en = f.type if isinstance(f.type, EnumType) else None
                nodes.append(_Node(f.name, kind, slot, f, enum=en))
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
        layout: GeneLayout,
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
        layout: GeneLayout,
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
        return LayoutError(
            f"gene {self.layout.name!r} field {dotted!r} ({_type_name(n.field.type)}): {message}"
        )


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
    value: Any, layout: GeneLayout, path: tuple[str, ...], root: str
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
