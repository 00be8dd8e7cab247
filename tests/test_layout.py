"""Gene layouts: DOL's C-like rules, type spellings, enums, extends, nesting, errors."""

from __future__ import annotations

import ctypes
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vudo_runtime import EnumType, Field, GeneLayout, LayoutError

POINT = GeneLayout.from_fields("Point", [("x", "i64"), ("y", "i64")])
MIXED = GeneLayout.from_fields("Mixed", [("count", "i32"), ("active", "bool"), ("value", "f64")])
ABC = GeneLayout.from_fields("ABC", [("a", "i32"), ("b", "i64"), ("c", "i32")])


class Color(enum.Enum):
    RED = 10
    GREEN = 20
    BLUE = 30


def offsets(layout: GeneLayout) -> dict[str, int]:
    return {f.name: f.offset for f in layout.fields}


# -- the reference layouts of DOL-ABI.md ---------------------------------------------


def test_point_reference_layout() -> None:
    assert (POINT.size, POINT.alignment) == (16, 8)
    assert offsets(POINT) == {"x": 0, "y": 8}


def test_mixed_reference_layout() -> None:
    assert offsets(MIXED) == {"count": 0, "active": 4, "value": 8}
    assert (MIXED.size, MIXED.alignment) == (16, 8)


def test_abc_reference_layout() -> None:
    assert offsets(ABC) == {"a": 0, "b": 8, "c": 16}
    assert (ABC.size, ABC.alignment) == (24, 8)


def test_dol_entity_layout() -> None:
    # the DOL compiler's own test: id@0 position@8 active@16 score@20, size 24
    entity = GeneLayout.from_fields(
        "Entity", [("id", "Int32"), ("position", "Float64"), ("active", "Bool"), ("score", "i32")]
    )
    assert offsets(entity) == {"id": 0, "position": 8, "active": 16, "score": 20}
    assert (entity.size, entity.alignment) == (24, 8)


def test_field_records_type_size_and_align() -> None:
    f = ABC.field("b")
    assert f == Field("b", "i64", 8, 8, 8)
    assert (f.name, f.type, f.offset, f.size, f.align, f.kind) == ("b", "i64", 8, 8, 8, "i64")
    assert ABC.fields[0].name == "a"
    assert isinstance(ABC.fields, tuple)


def test_empty_gene() -> None:
    empty = GeneLayout.from_fields("Empty", [])
    assert (empty.size, empty.alignment, empty.fields) == (0, 1, ())


def test_all_four_byte_fields_give_alignment_four() -> None:
    small = GeneLayout.from_fields("Small", [("a", "i32"), ("b", "f32"), ("c", "i32")])
    assert (small.size, small.alignment) == (12, 4)


def test_from_fields_accepts_a_mapping() -> None:
    assert GeneLayout.from_fields("Point", {"x": "i64", "y": "i64"}) == POINT


# -- type spellings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "size"),
    [
        ("i32", "i32", 4),
        ("Int32", "i32", 4),
        ("u32", "u32", 4),
        ("UInt32", "u32", 4),
        ("i64", "i64", 8),
        ("Int64", "i64", 8),
        ("u64", "u64", 8),
        ("UInt64", "u64", 8),
        ("f32", "f32", 4),
        ("Float32", "f32", 4),
        ("f64", "f64", 8),
        ("Float64", "f64", 8),
        ("bool", "bool", 4),
        ("Bool", "bool", 4),
        ("char", "char", 4),
        ("Char", "char", 4),
        ("string", "string", 4),
        ("String", "string", 4),
        ("str", "string", 4),
        ("ptr", "ptr", 4),
        ("&Node", "ptr", 4),
        ("List<i64>", "ptr", 4),
        ("Vec<String>", "ptr", 4),
        ("Option<Point>", "ptr", 4),
        ("Map<string, i64>", "ptr", 4),
        ("Result<i64, string>", "ptr", 4),
        ("List", "ptr", 4),
    ],
)
def test_type_spellings(spec: str, kind: str, size: int) -> None:
    layout = GeneLayout.from_fields("G", [("f", spec)])
    f = layout.field("f")
    assert (f.kind, f.size, f.align) == (kind, size, size)
    assert f.type == kind


@pytest.mark.parametrize("spec", ["i8", "u16", "i128", "UInt8"])
def test_types_without_a_dol_layout_are_rejected(spec: str) -> None:
    with pytest.raises(LayoutError, match=r"'G'.*'f'.*no gene layout"):
        GeneLayout.from_fields("G", [("f", spec)])


@pytest.mark.parametrize("spec", ["Point", "integer", "", "List<", 3.5, None, b"i32"])
def test_unknown_type_names_gene_and_field(spec: Any) -> None:
    with pytest.raises(LayoutError, match=r"gene 'G' field 'f'.*unknown type"):
        GeneLayout.from_fields("G", [("f", spec)])


# -- names ---------------------------------------------------------------------------


def test_duplicate_field() -> None:
    with pytest.raises(LayoutError, match=r"gene 'G'.*duplicate field 'a'"):
        GeneLayout.from_fields("G", [("a", "i32"), ("a", "i64")])


def test_duplicate_with_parent_field() -> None:
    with pytest.raises(
        LayoutError, match=r"gene 'Child'.*duplicate field 'x'.*parent gene 'Point'"
    ):
        GeneLayout.from_fields("Child", [("x", "i32")], extends=POINT)


@pytest.mark.parametrize("name", ["", "two words", "1st", 7, None])
def test_bad_field_names(name: Any) -> None:
    with pytest.raises(LayoutError, match=r"gene 'G'.*field name"):
        GeneLayout.from_fields("G", [(name, "i32")])


@pytest.mark.parametrize("name", ["", None])
def test_bad_gene_names(name: Any) -> None:
    with pytest.raises(LayoutError, match="non-empty name"):
        GeneLayout.from_fields(name, [("a", "i32")])


def test_field_pairs_must_be_pairs() -> None:
    with pytest.raises(LayoutError, match=r"\(name, type\) pair"):
        GeneLayout.from_fields("G", [("a", "i32", "extra")])  # type: ignore[list-item]


def test_extends_must_be_a_layout() -> None:
    with pytest.raises(LayoutError, match="extends= must be a GeneLayout"):
        GeneLayout.from_fields("G", [("a", "i32")], extends="Point")  # type: ignore[arg-type]


def test_field_lookup_error_lists_fields() -> None:
    with pytest.raises(LayoutError, match=r"gene 'Point' has no field 'z'; fields: x, y"):
        POINT.field("z")


# -- extends and nesting --------------------------------------------------------------


def test_extends_keeps_parent_offsets_and_starts_after_parent_size() -> None:
    parent = GeneLayout.from_fields("Base", [("id", "i64"), ("tag", "i32")])  # size 16
    child = GeneLayout.from_fields("Derived", [("extra", "i32")], extends=parent)
    assert [f.name for f in child.fields] == ["id", "tag", "extra"]
    assert offsets(child) == {"id": 0, "tag": 8, "extra": 16}
    assert (child.size, child.alignment) == (24, 8)
    assert child.extends is parent
    assert child.fields[:2] == parent.fields


def test_extends_inherits_alignment() -> None:
    child = GeneLayout.from_fields("Named", [("n", "i32")], extends=POINT)
    assert (child.size, child.alignment) == (24, 8)


def test_extends_chain() -> None:
    a = GeneLayout.from_fields("A", [("a", "i32")])
    b = GeneLayout.from_fields("B", [("b", "i64")], extends=a)
    c = GeneLayout.from_fields("C", [("c", "i32")], extends=b)
    assert offsets(c) == {"a": 0, "b": 8, "c": 16}
    assert c.size == 24
    with pytest.raises(LayoutError, match="duplicate field 'a'"):
        GeneLayout.from_fields("D", [("a", "f64")], extends=c)


def test_nested_gene_is_inline() -> None:
    rect = GeneLayout.from_fields(
        "Rect", [("flag", "bool"), ("top_left", POINT), ("width", "f64"), ("height", "f32")]
    )
    assert offsets(rect) == {"flag": 0, "top_left": 8, "width": 24, "height": 32}
    assert (rect.size, rect.alignment) == (40, 8)
    f = rect.field("top_left")
    assert (f.kind, f.type, f.size, f.align) == ("gene", POINT, 16, 8)


def test_nested_gene_keeps_its_own_padding() -> None:
    inner = GeneLayout.from_fields("Inner", [("a", "i64"), ("b", "i32")])  # size 16
    outer = GeneLayout.from_fields("Outer", [("inner", inner), ("c", "i32")])
    assert offsets(outer) == {"inner": 0, "c": 16}
    assert outer.size == 24


# -- enums ----------------------------------------------------------------------------


def test_enum_from_python_enum_uses_declaration_index() -> None:
    g = GeneLayout.from_fields("Paint", [("color", Color)])
    f = g.field("color")
    assert (f.kind, f.size, f.align) == ("enum", 4, 4)
    assert isinstance(f.type, EnumType)
    assert f.type.variants == ("RED", "GREEN", "BLUE")
    assert f.type.encode(Color.BLUE) == 2  # the index, not the value 30
    assert f.type.encode("GREEN") == 1
    assert f.type.encode(0) == 0
    assert f.type.decode(2) is Color.BLUE


def test_enum_from_names() -> None:
    g = GeneLayout.from_fields("Task", [("state", ["Todo", "Doing", "Done"])])
    t = g.field("state").type
    assert isinstance(t, EnumType)
    assert t.decode(1) == "Doing"
    assert t.encode("Done") == 2
    assert t.python_enum is None


def test_enum_type_can_be_given_directly() -> None:
    et = EnumType.of(["A", "B"], name="AB")
    g = GeneLayout.from_fields("G", [("e", et)])
    assert g.field("e").type is et


class Other(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("PURPLE", "not a variant"),
        (3, "out of range"),
        (-1, "out of range"),
        (Other.RED, "not a member"),
        (True, "expected a member"),
        (1.0, "expected a member"),
    ],
)
def test_enum_encode_errors(value: Any, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        EnumType.of(Color).encode(value)


def test_enum_decode_error() -> None:
    with pytest.raises(LayoutError, match="invalid discriminant 7"):
        EnumType.of(Color).decode(7)


@pytest.mark.parametrize("spec", [[], ["A", "A"], ["A", ""], "ABC"])
def test_bad_enums(spec: Any) -> None:
    with pytest.raises(LayoutError):
        GeneLayout.from_fields("G", [("e", spec)])


def test_empty_python_enum_rejected() -> None:
    class Nothing(enum.Enum):
        pass

    with pytest.raises(LayoutError, match=r"'G' field 'e'.*no variants"):
        GeneLayout.from_fields("G", [("e", Nothing)])


# -- value semantics --------------------------------------------------------------------


def test_layouts_are_frozen_and_hashable() -> None:
    again = GeneLayout.from_fields("Point", [("x", "i64"), ("y", "i64")])
    assert again == POINT
    assert hash(again) == hash(POINT)
    assert {POINT: 1}[again] == 1
    with pytest.raises(AttributeError):
        POINT.size = 3  # type: ignore[misc]
    assert GeneLayout.from_fields("Point", [("x", "i64"), ("y", "f64")]) != POINT


def test_reprs_are_readable() -> None:
    assert repr(POINT) == "GeneLayout('Point', size=16, alignment=8, fields=[x: i64 @0, y: i64 @8])"
    assert "Color[RED, GREEN, BLUE]" in repr(GeneLayout.from_fields("P", [("c", Color)]))
    assert repr(ABC.field("b")) == "Field('b', i64, offset=8, size=8, align=8)"


def test_direct_construction_is_checked() -> None:
    assert GeneLayout("Point", POINT.fields, 16, 8) == POINT
    with pytest.raises(LayoutError, match="outside the gene"):
        GeneLayout("Bad", (Field("x", "i64", 8, 8, 8),), 8, 8)
    with pytest.raises(LayoutError, match="overlaps"):
        GeneLayout("Bad", (Field("x", "i64", 0, 8, 8), Field("y", "i32", 4, 4, 4)), 16, 8)
    with pytest.raises(LayoutError, match="do not fit type i64"):
        GeneLayout("Bad", (Field("x", "i64", 0, 4, 4),), 8, 8)
    with pytest.raises(LayoutError, match="do not fit type i32"):
        GeneLayout("Bad", (Field("x", "i32", 2, 4, 4),), 8, 4)
    with pytest.raises(LayoutError, match="unknown canonical type 'Int64'"):
        GeneLayout("Bad", (Field("x", "Int64", 0, 8, 8),), 8, 8)
    with pytest.raises(LayoutError, match="power of two"):
        GeneLayout("Bad", (), 0, 3)


def test_codec_struct_matches_layout() -> None:
    assert POINT.codec.struct.format == "<qq"
    assert MIXED.codec.struct.format == "<iid"
    assert ABC.codec.struct.format == "<i4xqi4x"
    assert POINT.codec.plain and not MIXED.codec.plain


# -- the rules agree with the platform C compiler (ctypes) ------------------------------

_CTYPES = {
    "i32": ctypes.c_int32,
    "u32": ctypes.c_uint32,
    "i64": ctypes.c_int64,
    "u64": ctypes.c_uint64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
    "bool": ctypes.c_int32,
    "char": ctypes.c_uint32,
    "string": ctypes.c_uint32,
    "ptr": ctypes.c_uint32,
}

scalar_kinds = st.sampled_from(sorted(_CTYPES))


def _as_ctypes(layout: GeneLayout) -> type[ctypes.Structure]:
    fields: list[tuple[str, Any]] = []
    for f in layout.fields:
        if isinstance(f.type, GeneLayout):
            fields.append((f.name, _as_ctypes(f.type)))
        elif isinstance(f.type, EnumType):
            fields.append((f.name, ctypes.c_int32))
        else:
            fields.append((f.name, _CTYPES[f.type]))
    return type(layout.name, (ctypes.Structure,), {"_fields_": fields})


@st.composite
def layouts(draw: st.DrawFn, depth: int = 2) -> GeneLayout:
    n = draw(st.integers(0, 6))
    fields: list[tuple[str, Any]] = []
    for i in range(n):
        if depth and draw(st.integers(0, 4)) == 0:
            fields.append((f"g{i}", draw(layouts(depth=depth - 1))))
        elif draw(st.integers(0, 6)) == 0:
            fields.append((f"e{i}", ["A", "B", "C"]))
        else:
            fields.append((f"f{i}", draw(scalar_kinds)))
    return GeneLayout.from_fields(f"G{depth}_{n}", fields)


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_layout_agrees_with_c(layout: GeneLayout) -> None:
    c = _as_ctypes(layout)
    assert ctypes.sizeof(c) == layout.size
    assert ctypes.alignment(c) == layout.alignment
    for f in layout.fields:
        assert getattr(c, f.name).offset == f.offset, f.name
    assert layout.codec.struct.size == layout.size


@settings(max_examples=200, deadline=None)
@given(layouts(depth=1), st.lists(scalar_kinds, max_size=4))
def test_extends_agrees_with_c_embedding(parent: GeneLayout, kinds: list[str]) -> None:
    child = GeneLayout.from_fields(
        "Child", [(f"c{i}", k) for i, k in enumerate(kinds)], extends=parent
    )
    c_parent = _as_ctypes(parent)
    fields = [(f"c{i}", _CTYPES[k]) for i, k in enumerate(kinds)]
    c_child = type("Child", (c_parent,), {"_fields_": fields})
    assert ctypes.sizeof(c_child) == child.size
    assert child.fields[: len(parent.fields)] == parent.fields
    for f in child.fields[len(parent.fields) :]:
        assert getattr(c_child, f.name).offset == f.offset
        assert f.offset >= parent.size
    assert child.alignment == ctypes.alignment(c_child)
    assert child.size % child.alignment == 0
