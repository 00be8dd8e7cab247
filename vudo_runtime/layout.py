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

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from vudo_runtime.codec import Codec
from vudo_runtime.errors import LayoutError
from vudo_runtime.scalars import SCALARS

__all__ = ["EnumType", "Field", "FieldType", "GeneLayout", "TypeSpec"]

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
        if kind in SCALARS:
            return kind, SCALARS[kind][1], SCALARS[kind][1]
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
            + ", ".join(SCALARS)
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
    # the precomputed encoder/decoder: a plain attribute, not a property, as
    # MemoryManager reads it on every gene access
    codec: Codec = attrs.field(init=False, eq=False, hash=False)
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
        object.__setattr__(self, "codec", Codec(self))

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
    elif f.type in SCALARS:
        expected = (SCALARS[f.type][1], SCALARS[f.type][1])
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
