"""How DOL types look to a host: wasm boundary types, gene-field layout types, Python hints.

The three mappings follow DOL-ABI.md. At the boundary the current compiler widens every
integer to i64 and every float to f64 and passes everything else (bool, strings,
collections, genes, enums) as an i32; older Spirits keep i32/f32 unwidened (``legacy``).
Inside a gene, fields keep their own width. Names that are neither built in nor known to
the :class:`TypeContext` as an enum or alias are taken to be genes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import attrs

from vudo_runtime.codegen.ast import ARRAY, FUNCTION, INLINE_ENUM, REF, TUPLE, DolFile, TypeRef
from vudo_runtime.errors import LayoutError

WasmType = Literal["i32", "i64", "f32", "f64"]

#: 32-bit integers: stored as i32 / u32 in a gene.
INT32_TYPES = frozenset({"i32", "Int32"})
UINT32_TYPES = frozenset({"u32", "UInt32"})
#: 64-bit integers, and the unsized ``int`` names, which DOL makes 64-bit.
INT64_TYPES = frozenset({"i64", "Int64", "int", "Int", "Integer"})
UINT64_TYPES = frozenset({"u64", "UInt64", "uint"})
#: Integers with no gene layout in DOL (8/16-bit, pointer-sized, 128-bit).
SMALL_INT_TYPES = frozenset(
    {"i8", "i16", "u8", "u16", "isize", "usize", "Int8", "Int16", "UInt8", "UInt16"}
)
INT128_TYPES = frozenset({"i128", "u128", "Int128", "UInt128"})
#: Integers an older Spirit passes unwidened as i32 (``legacy``).
NARROW_INT_TYPES = INT32_TYPES | UINT32_TYPES | SMALL_INT_TYPES
INT_TYPES = NARROW_INT_TYPES | INT64_TYPES | UINT64_TYPES | INT128_TYPES
FLOAT32_TYPES = frozenset({"f32", "Float32"})
FLOAT64_TYPES = frozenset({"f64", "float", "Float", "Float64", "double"})
FLOAT_TYPES = FLOAT32_TYPES | FLOAT64_TYPES
BOOL_TYPES = frozenset({"bool", "Bool", "Boolean"})
CHAR_TYPES = frozenset({"char", "Char"})
STRING_TYPES = frozenset({"string", "String", "str", "Str"})
#: Types with no value: a function returning one has no result.
VOID_TYPES = frozenset({"void", "Void", "unit", "Unit", "Never", "!"})
#: Built-in containers, passed and stored as an i32 pointer into linear memory.
POINTER_TYPES = frozenset(
    {"List", "Vec", "Option", "Map", "HashMap", "BTreeMap", "Set", "HashSet", "BTreeSet"}
    | {"Result", "Box", "Rc", "Arc", "Array", "Bytes", "Tuple", REF, ARRAY}
)

LayoutKind = Literal["scalar", "enum", "gene"]


@attrs.frozen
class LayoutType:
    """What a gene field's type means to the layout module.

    ``kind`` is ``"scalar"`` (``name`` is one of ``"i32" "u32" "i64" "u64" "f32" "f64"
    "bool" "char" "string" "ptr"``, the layout module's canonical names), ``"enum"``
    (``name`` is the enum, ``variants`` its variant names when known from an inline
    ``enum { ... }``) or ``"gene"`` (``name`` is the nested gene, embedded inline).
    """

    kind: LayoutKind
    name: str
    variants: tuple[str, ...] = ()


@attrs.frozen
class TypeContext:
    """What one DOL file declares: its genes, enums and aliases, to resolve named types."""

    genes: frozenset[str] = frozenset()
    enums: frozenset[str] = frozenset()
    aliases: Mapping[str, TypeRef] = attrs.field(factory=dict)

    @classmethod
    def from_file(cls, dol: DolFile) -> TypeContext:
        """The context of a parsed file."""
        return cls(
            genes=frozenset(g.name for g in dol.genes),
            enums=frozenset(e.name for e in dol.enums),
            aliases={a.name: a.target for a in dol.type_aliases},
        )

    def resolve(self, t: TypeRef) -> TypeRef:
        """``t`` with aliases followed to their target (a cycle stops at its first repeat)."""
        seen: set[str] = set()
        while not t.args and t.name in self.aliases and t.name not in seen:
            seen.add(t.name)
            t = self.aliases[t.name]
        return t


_EMPTY = TypeContext()


def is_void(t: TypeRef | None) -> bool:
    """True for no type, the unit ``()`` and ``void``-like names."""
    return t is None or (t.name == TUPLE and not t.args) or t.name in VOID_TYPES


def wasm_types(
    t: TypeRef | None, ctx: TypeContext | None = None, *, legacy: bool = False
) -> tuple[WasmType, ...]:
    """The wasm value types ``t`` takes in a function signature, flattening tuples.

    A void type gives ``()``; a tuple gives one value per element (multi-value results).
    With ``legacy``, 32-bit ints and ``f32`` stay unwidened, as older Spirits have them.
    """
    ctx = ctx or _EMPTY
    if t is None:
        return ()
    t = ctx.resolve(t)
    if is_void(t):
        return ()
    if t.name == TUPLE:
        return tuple(w for arg in t.args for w in wasm_types(arg, ctx, legacy=legacy))
    if t.name in INT_TYPES:
        return ("i32",) if legacy and t.name in NARROW_INT_TYPES else ("i64",)
    if t.name in FLOAT_TYPES:
        return ("f32",) if legacy and t.name in FLOAT32_TYPES else ("f64",)
    return ("i32",)


def wasm_type(
    t: TypeRef | None, ctx: TypeContext | None = None, *, legacy: bool = False
) -> WasmType | None:
    """The single wasm type of a parameter or result, or None for a void type.

    Raises ValueError for a tuple of several values; use :func:`wasm_types` for those.
    """
    types = wasm_types(t, ctx, legacy=legacy)
    if len(types) > 1:
        raise ValueError(f"{t} is {len(types)} wasm values; use wasm_types() for tuples")
    return types[0] if types else None


# How each scalar DOL type is stored in a gene (a layout.py field type), in lookup order.
_SCALAR_FIELDS: tuple[tuple[frozenset[str], str], ...] = (
    (INT32_TYPES | {FUNCTION}, "i32"),
    (UINT32_TYPES, "u32"),
    (INT64_TYPES, "i64"),
    (UINT64_TYPES, "u64"),
    (CHAR_TYPES, "char"),
    (FLOAT32_TYPES, "f32"),
    (FLOAT64_TYPES, "f64"),
    (BOOL_TYPES, "bool"),
    (STRING_TYPES, "string"),
    (POINTER_TYPES, "ptr"),
)


def layout_type(t: TypeRef, ctx: TypeContext | None = None) -> LayoutType:
    """The layout of a gene field of type ``t``, per DOL-ABI.md "Gene layout".

    Raises :class:`LayoutError` for types with no place in a gene: void, tuples, and
    8-, 16-, pointer-sized and 128-bit integers (the DOL compiler lays out none of them).
    """
    ctx = ctx or _EMPTY
    t = ctx.resolve(t)
    name = t.name
    for names, stored in _SCALAR_FIELDS:
        if name in names:
            return LayoutType("scalar", stored)
    if name == INLINE_ENUM:
        return LayoutType("enum", "", t.variants)
    if name in SMALL_INT_TYPES or name in INT128_TYPES:
        raise LayoutError(
            f"a gene field cannot hold {t}: DOL genes lay out only 32- and 64-bit integers;"
            " use i32/u32 or i64/u64"
        )
    if is_void(t) or name == TUPLE:
        raise LayoutError(f"a gene field cannot hold {t}: it has no memory layout")
    if name in ctx.enums:
        return LayoutType("enum", name)
    return LayoutType("gene", name)


def python_type(t: TypeRef | None, ctx: TypeContext | None = None) -> str:
    """The Python annotation (as source text) a caller sees for a value of type ``t``.

    Numbers, bools and strings become ``int``/``float``/``bool``/``str``; pointers
    (containers, references) are ``int`` for now; a gene or enum is its class name;
    a tuple result is a ``tuple[...]``; void is ``None``.
    """
    ctx = ctx or _EMPTY
    if t is None:
        return "None"
    t = ctx.resolve(t)
    name = t.name
    if is_void(t):
        return "None"
    if name == TUPLE:
        return "tuple[" + ", ".join(python_type(a, ctx) for a in t.args) + "]"
    if name in INT_TYPES or name in CHAR_TYPES:
        return "int"
    if name in FLOAT_TYPES:
        return "float"
    if name in BOOL_TYPES:
        return "bool"
    if name in STRING_TYPES:
        return "str"
    if name in POINTER_TYPES or name in (FUNCTION, INLINE_ENUM):
        return "int"
    return class_name(name)


def class_name(dol_name: str) -> str:
    """The Python class name for a DOL gene or enum: ``Counter`` stays, ``a.b_c`` -> ``ABC``."""
    parts = [p for p in re.split(r"\.|::", dol_name) if p]
    if len(parts) == 1:
        return parts[0]
    return "".join(w[:1].upper() + w[1:] for p in parts for w in p.split("_"))


__all__ = [
    "LayoutType",
    "TypeContext",
    "class_name",
    "is_void",
    "layout_type",
    "python_type",
    "wasm_type",
    "wasm_types",
]
