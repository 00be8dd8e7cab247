"""The DOL declaration front end: lexer, parser, AST and the type mapping."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo_runtime import DolSyntaxError, LayoutError, VudoError
from vudo_runtime.codegen import (
    Const,
    DolFile,
    Enum,
    Function,
    Gene,
    LayoutType,
    SexVar,
    TokenKind,
    TypeAlias,
    TypeContext,
    TypeRef,
    class_name,
    is_void,
    layout_type,
    parse_dol,
    parse_dol_file,
    python_type,
    tokenize,
    wasm_type,
    wasm_types,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "dol"
SPIRITS = ROOT / "spirits"


def parse_error(text: str) -> DolSyntaxError:
    with pytest.raises(DolSyntaxError) as info:
        parse_dol(text, file="t.dol")
    return info.value


def only_gene(text: str) -> Gene:
    (gene,) = parse_dol(text).genes
    return gene


def T(name: str, *args: TypeRef) -> TypeRef:
    return TypeRef(name, args)


# --- the sample Spirits -------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPIRITS.glob("*.dol")), ids=lambda p: p.name)
def test_every_sample_spirit_parses(path: Path) -> None:
    dol = parse_dol_file(path)
    assert dol.path == str(path)
    assert dol.items
    assert dol.doc  # each sample opens with a file-level doc comment
    for item in dol.items:
        assert item.doc, f"{item.name} lost its doc comment"


def test_counter_spirit() -> None:
    dol = parse_dol_file(SPIRITS / "counter.dol")
    (counter,) = dol.genes
    assert counter.name == "Counter"
    assert [(f.name, str(f.type)) for f in counter.fields] == [("value", "i64")]
    assert counter.fields[0].doc == "The current count."
    assert [m.export_name for m in counter.methods] == [
        "Counter.increment",
        "Counter.get_value",
        "Counter.add",
    ]
    add = counter.method("add")
    assert add is not None and add.params[0].name == "n" and add.returns == T("i64")
    assert [f.name for f in dol.functions] == ["add_numbers"]
    assert [f.export_name for f in dol.exports] == [
        "add_numbers",
        "Counter.increment",
        "Counter.get_value",
        "Counter.add",
    ]


def test_hello_world_host_import() -> None:
    dol = parse_dol_file(SPIRITS / "hello_world.dol")
    (imp,) = dol.host_imports
    assert imp.name == "vudo_print" and imp.is_sex and not imp.has_body
    assert [(p.name, str(p.type)) for p in imp.params] == [("ptr", "i32"), ("len", "i32")]
    assert [f.name for f in dol.exports] == ["greet", "greet_name"]


def test_calculator_tuple_result() -> None:
    dol = parse_dol_file(SPIRITS / "calculator.dol")
    divmod_ = dol.get("divmod")
    assert isinstance(divmod_, Function)
    assert divmod_.returns == TypeRef("()", (T("i64"), T("i64")))
    assert wasm_types(divmod_.returns) == ("i64", "i64")
    noop = dol.get("noop")
    assert isinstance(noop, Function) and noop.returns is None and noop.params == ()
    # The blank line after the file's opening doc run detaches it from `add`.
    assert dol.doc is not None and dol.doc.startswith("Calculator: pure arithmetic")
    assert dol.functions[0].doc == "Sum of two integers."


# --- the big fixture ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def eco() -> DolFile:
    return parse_dol_file(FIXTURES / "ecosystem.dol")


def test_ecosystem_items_in_order(eco: DolFile) -> None:
    kinds = [(type(i).__name__, i.name) for i in eco.items]
    assert kinds == [
        ("Const", "MAX_POPULATION"),
        ("Const", "RATE"),
        ("Const", "GREETING"),
        ("SexVar", "TICK"),
        ("SexVar", "LAST_ERROR"),
        ("Enum", "Locomotion"),
        ("Enum", "Diet"),
        ("Enum", "Season"),
        ("TypeAlias", "Id"),
        ("TypeAlias", "Registry"),
        ("Gene", "Position"),
        ("Gene", "Organism"),
        ("Gene", "Creature"),
        ("Function", "vudo_print"),
        ("Function", "vudo_now"),
        ("Function", "tick"),
        ("Function", "distance"),
        ("Function", "nested_generics"),
        ("Function", "census"),
    ]
    # Nothing from the skipped mod block, trait, system or impl leaks out.
    names = {i.name for i in eco.items}
    assert not names & {"hidden", "NotParsed", "Grazer", "Meadow", "graze"}


def test_ecosystem_file_doc(eco: DolFile) -> None:
    assert eco.doc is not None
    assert eco.doc.startswith("A small ecosystem simulation")
    assert eco.doc.endswith("The ecosystem module. {nested {braces}} are fine.")


def test_ecosystem_consts_and_vars(eco: DolFile) -> None:
    max_pop, rate, greeting = eco.consts
    assert max_pop == Const(
        "MAX_POPULATION", T("i64"), "10_000", "Largest population the simulation allows.",
        True, 18, 5,
    )  # fmt: skip
    assert rate.value == "0.25 * 4.0" and not rate.public
    assert greeting.type is None and greeting.value == '"hello, {world}"'
    tick, last_error = eco.sex_vars
    assert tick == SexVar(
        "TICK", T("i64"), "0", "Ticks since the simulation started.", False, 23, 5
    )
    assert last_error.public and last_error.default is None and last_error.type == T("string")


def test_ecosystem_enums(eco: DolFile) -> None:
    loco, diet, season = eco.enums
    assert loco.variant_names == ("Walk", "Swim", "Fly")
    assert loco.doc == "How a creature moves."
    assert loco.variants[0].doc == "On the ground."
    assert diet.variant_names == ("Herbivore", "Carnivore", "Omnivore")  # newline-separated
    assert season.variant_names == ("Spring", "Summer", "Autumn", "Winter")  # trailing comma
    assert season.public


def test_ecosystem_aliases(eco: DolFile) -> None:
    ident, registry = eco.type_aliases
    assert ident == TypeAlias("Id", T("u64"), "Another name for an identifier.", line=43, column=1)
    assert str(registry.target) == "Map<string, List<Option<Creature>>>"


def test_ecosystem_position(eco: DolFile) -> None:
    pos = eco.gene("Position")
    assert pos is not None and pos.public and pos.extends is None
    x, y = pos.fields
    assert (x.name, x.type, x.doc, x.default) == ("x", T("i32"), "Column.", None)
    assert (y.default, y.constraint, y.doc) == ("0", "y >= 0", "Row.")
    assert pos.methods == ()
    assert pos.doc is not None
    first, _, docs = pos.doc.partition("\n\n")
    assert first == "A position on the grid."
    assert docs.startswith("2D coordinate on the grid. Prose may hold a lone \" quote, don't")
    assert docs.endswith("{nested {braces}} as long as they balance.")


def test_ecosystem_extends_and_nesting(eco: DolFile) -> None:
    creature = eco.gene("Creature")
    organism = eco.gene("Organism")
    assert creature is not None and organism is not None
    assert creature.extends == "Organism" and organism.extends is None
    assert eco.ancestry(creature) == (organism, creature)
    # Own fields only; the parent's come first in memory, via ancestry().
    assert [f.name for f in creature.fields] == [
        "position", "diet", "moves", "name", "tags", "parent", "scores", "speed", "age",
        "nickname", "mood",
    ]  # fmt: skip
    types = {f.name: f.type for f in creature.fields}
    assert types["position"] == T("Position")  # a nested gene
    assert eco.gene(types["position"].name) is not None
    assert types["diet"] == T("Diet")
    assert types["tags"] == T("List", T("string"))
    assert types["parent"] == T("Option", TypeRef("&", (T("Creature"),)))
    assert types["scores"] == T("Map", T("string"), T("Vec", T("f32")))
    assert types["mood"] == TypeRef("enum", variants=("Calm", "Angry"))
    speed = creature.field("speed")
    assert speed is not None and speed.default == "1.5"  # bare `name: Type = default` field
    nickname = creature.field("nickname")
    assert nickname is not None and nickname.default == '"none"'  # after an @crdt annotation
    assert creature.field("position") is not None
    assert creature.field("position").doc == "Where it is: a nested gene, embedded inline."  # type: ignore[union-attr]
    assert [f.name for g in eco.ancestry(creature) for f in g.fields][:4] == [
        "id", "energy", "alive", "position",
    ]  # fmt: skip


def test_ecosystem_methods(eco: DolFile) -> None:
    creature = eco.gene("Creature")
    assert creature is not None
    step, shout, pair = creature.methods
    assert step.public and step.owner == "Creature" and step.export_name == "Creature.step"
    assert [(p.name, str(p.type)) for p in step.params] == [("dx", "i32"), ("dy", "i32")]
    assert step.returns == T("Position") and step.doc == "Moves by (dx, dy)."
    assert shout.is_sex and shout.has_body and not shout.is_host_import
    assert str(pair.returns) == "(i64, f64)"
    organism = eco.gene("Organism")
    assert organism is not None
    (spend,) = organism.methods  # braces in its string, char and comment did not confuse it
    assert spend.name == "spend" and spend.doc == "Spends energy; returns what is left."


def test_ecosystem_functions(eco: DolFile) -> None:
    assert [f.name for f in eco.host_imports] == ["vudo_print", "vudo_now"]
    now = eco.get("vudo_now")
    assert isinstance(now, Function) and now.returns == T("i64") and now.is_host_import
    tick = eco.get("tick")
    assert isinstance(tick, Function)
    assert tick.is_sex and tick.has_body and not tick.is_host_import and tick.public
    distance = eco.get("distance")
    assert isinstance(distance, Function)
    assert [p.name for p in distance.params] == ["a", "b"]  # params across lines
    nested = eco.get("nested_generics")
    assert isinstance(nested, Function)
    assert str(nested.params[0].type) == "Result<List<Map<i64, Option<string>>>, string>"
    assert nested.params[1].type == TypeRef("&", (T("Creature"),))  # &mut T
    census = eco.get("census")
    assert isinstance(census, Function)
    assert census.returns == T("Map", T("Diet"), T("i64"))
    assert census.doc is None  # the file's closing exegesis is file docs, not census's


def test_ecosystem_type_context(eco: DolFile) -> None:
    ctx = TypeContext.from_file(eco)
    assert ctx.genes == {"Position", "Organism", "Creature"}
    assert ctx.enums == {"Locomotion", "Diet", "Season"}
    organism = eco.gene("Organism")
    assert organism is not None
    id_field = organism.field("id")
    assert id_field is not None
    assert layout_type(id_field.type, ctx) == LayoutType("scalar", "u64")  # via alias Id = u64
    creature = eco.gene("Creature")
    assert creature is not None
    layouts = {f.name: layout_type(f.type, ctx) for f in creature.fields}
    assert layouts == {
        "position": LayoutType("gene", "Position"),
        "diet": LayoutType("enum", "Diet"),
        "moves": LayoutType("enum", "Locomotion"),
        "name": LayoutType("scalar", "string"),
        "tags": LayoutType("scalar", "ptr"),
        "parent": LayoutType("scalar", "ptr"),
        "scores": LayoutType("scalar", "ptr"),
        "speed": LayoutType("scalar", "f32"),
        "age": LayoutType("scalar", "u32"),
        "nickname": LayoutType("scalar", "string"),
        "mood": LayoutType("enum", "", ("Calm", "Angry")),
    }
    hints = {f.name: python_type(f.type, ctx) for f in creature.fields}
    assert hints["position"] == "Position" and hints["diet"] == "Diet"
    assert hints["tags"] == "int" and hints["name"] == "str" and hints["speed"] == "float"


# --- legacy DOL ---------------------------------------------------------------------------


def test_legacy_keywords_and_types() -> None:
    dol = parse_dol_file(FIXTURES / "legacy.dol")
    account, container = dol.genes
    assert [(f.name, f.type.name) for f in account.fields] == [
        ("id", "Int64"), ("balance", "Float64"), ("frozen", "Bool"), ("owner", "String"),
        ("shard", "Int32"), ("ratio", "Float32"),
    ]  # fmt: skip
    assert account.doc == "A bank account, documented DOL 1.0 style after the gene."
    assert [layout_type(f.type).name for f in account.fields] == [
        "i64", "f64", "bool", "string", "i32", "f32",
    ]  # fmt: skip
    assert [python_type(f.type) for f in account.fields] == [
        "int", "float", "bool", "str", "int", "float",
    ]  # fmt: skip
    # DOL 1.0 predicate statements are read past; the dotted name is kept.
    assert container.name == "container.exists" and container.fields == ()
    assert container.doc == "A container is the fundamental unit."
    assert class_name(container.name) == "ContainerExists"
    # The exegesis after the constraint belongs to the (skipped) constraint.
    assert dol.doc is None
    (deposit,) = dol.functions
    assert deposit.returns == T("Float64")


def test_gene_and_gen_are_the_same() -> None:
    a = only_gene("gene A { has x: Int32 }")
    b = only_gene("gen  A { has x: Int32 }")
    assert a == attrs.evolve(b, column=1)


def test_type_with_body_is_a_gene() -> None:
    dol = parse_dol("type Point { x: f64  y: f64 }\ntype Point3 extends Point { z: f64 }")
    point, point3 = dol.genes
    assert [f.name for f in point.fields] == ["x", "y"]
    assert point3.extends == "Point" and [f.name for f in point3.fields] == ["z"]


# --- declarations in detail ---------------------------------------------------------------


def test_fields_separated_by_whitespace_or_commas() -> None:
    gene = only_gene(
        "gen A { has x: i64 = 1 has y: i64, z: bool; w: f64 = 2.0, v: i64 = 3 u: i64 }"
    )
    assert [(f.name, f.default) for f in gene.fields] == [
        ("x", "1"), ("y", None), ("z", None), ("w", "2.0"), ("v", "3"), ("u", None),
    ]  # fmt: skip


def test_default_expressions_keep_their_source() -> None:
    gene = only_gene(
        """
        gen A {
            has p: Point = Point { x: 1, y: 2 }
            has s: string = "a } b"
            has n: i64 = 1 +
                2
            has m: i64 = compute(3)
                .clamp(0, 9)
            has v: List<i64> = [1, 2, 3] where len(v) < 10
            has done: bool = false
            has pick: i64 = if done ? a : b
        }
        """
    )
    assert [f.default for f in gene.fields] == [
        "Point { x: 1, y: 2 }",
        '"a } b"',
        "1 +\n                2",
        "compute(3)\n                .clamp(0, 9)",
        "[1, 2, 3]",
        "false",
        "if done ? a : b",
    ]
    assert gene.fields[4].constraint == "len(v) < 10"


def test_keywords_as_field_and_param_names() -> None:
    dol = parse_dol("gen A { type: Int64  has docs: string }\nfun f(type: i64) -> i64 { }")
    assert [f.name for f in dol.genes[0].fields] == ["type", "docs"]
    assert dol.functions[0].params[0].name == "type"


def test_sex_fun_with_and_without_body() -> None:
    dol = parse_dol(
        """
        sex fun host_log(level: i32, ptr: i32, len: i32)
        sex fun bump() -> i64 { return 1 }
        pub sex fun announce(s: string) { host_log(1, s) }
        extern fun ext_clock() -> i64
        fun declared_only(x: i64) -> i64
        """
    )
    by_name = {f.name: f for f in dol.functions}
    assert by_name["host_log"].is_host_import and not by_name["host_log"].has_body
    assert not by_name["bump"].is_host_import and by_name["bump"].is_sex
    assert by_name["announce"].public and by_name["announce"].has_body
    assert by_name["ext_clock"].is_host_import and not by_name["ext_clock"].is_sex
    assert not by_name["declared_only"].is_host_import and not by_name["declared_only"].has_body
    assert [f.name for f in dol.host_imports] == ["host_log", "ext_clock"]
    assert [f.name for f in dol.exports] == ["bump", "announce"]


def test_function_extras() -> None:
    dol = parse_dol(
        """
        gen Counter {
            has value: i64
            provides new(start: i64) -> Counter { return Counter { value: start } }
            fun add(self, n: i64) -> i64 { }
            fun set(&mut self, mut n: i64) { }
        }
        fun first<T, U: Ord>(xs: List<T>, d: T = zero()) -> T where T: Copy { }
        pub(spirit) fun visible() { }
        #[wasm_export]
        @inline fun annotated() -> bool { }
        """
    )
    counter = dol.genes[0]
    new, add, set_ = counter.methods
    assert new.is_static and new.returns == T("Counter")
    assert [p.name for p in add.params] == ["n"]  # explicit receivers are dropped
    assert [p.name for p in set_.params] == ["n"]
    first = dol.get("first")
    assert isinstance(first, Function)
    assert first.type_params == ("T", "U") and [p.name for p in first.params] == ["xs", "d"]
    visible = dol.get("visible")
    assert isinstance(visible, Function) and visible.public
    assert isinstance(dol.get("annotated"), Function)


def test_enum_forms() -> None:
    dol = parse_dol(
        """
        type Color = enum { Red, Green, Blue }
        enum Shape {
            Circle(f64)
            Rect { w: f64, h: f64 }
            Dot
        }
        enum Code { Ok = 0, NotFound = 404, }
        gen Pixel { has color: Color  has flag: enum { On, Off } }
        """
    )
    color, shape, code = dol.enums
    assert color.variant_names == ("Red", "Green", "Blue")
    assert shape.variant_names == ("Circle", "Rect", "Dot")
    assert [v.value for v in code.variants] == ["0", "404"]
    pixel = dol.genes[0]
    assert pixel.fields[1].type.variants == ("On", "Off")
    ctx = TypeContext.from_file(dol)
    assert layout_type(pixel.fields[0].type, ctx) == LayoutType("enum", "Color")
    assert wasm_type(pixel.fields[0].type, ctx) == "i32"
    assert python_type(pixel.fields[0].type, ctx) == "Color"


def test_type_syntax() -> None:
    dol = parse_dol(
        """
        fun f(
            a: &T, b: &&T, c: (i64, f64), d: (i64,), e: (i64), f: [u8], g: [i32; 4],
            h: fun(i64, i64) -> i64, i: (string) -> bool, j: i64?, k: std::io::Handle,
            l: Map<K, List<Option<Result<T, E>>>>, m: (), n: List<i64,>
        ) { }
        """
    )
    types = {p.name: p.type for p in dol.functions[0].params}
    assert {name: str(t) for name, t in types.items()} == {
        "a": "&T",
        "b": "&&T",
        "c": "(i64, f64)",
        "d": "(i64,)",
        "e": "i64",
        "f": "[u8]",
        "g": "[i32]",
        "h": "fun(i64, i64) -> i64",
        "i": "fun(string) -> bool",
        "j": "Option<i64>",
        "k": "std::io::Handle",
        "l": "Map<K, List<Option<Result<T, E>>>>",
        "m": "()",
        "n": "List<i64>",
    }
    assert [t.name for t in types["l"].walk()] == ["Map", "K", "List", "Option", "Result", "T", "E"]


def test_skipped_constructs_are_not_misread() -> None:
    dol = parse_dol(
        """
        use a::b::{c, d}
        pub use e.f
        mod g
        module h.i @ 1.0.0
        docs { top-level prose with 'quotes }
        mod j {
            fun inner() { "}" }
        }
        rule r { x > 0 && "}" != '}' // }
        }
        constraint c2 { /* { */ }
        trait Tr { fun needs() -> i64  has x: i64 }
        system S @ 1.0.0 { requires T >= 1.0.0 }
        impl Tr for A { fun needs() -> i64 { 1 } }
        evolves A @ 2.0.0 > 1.0.0 { adds has y: i64 }
        law l(a, b) { a == b }
        docs { belongs to the law, so it is dropped }
        gen A { has x: i64 }
        """
    )
    assert [i.name for i in dol.items] == ["A"]
    assert dol.doc == "top-level prose with 'quotes"


def test_nested_block_comments_and_strings() -> None:
    dol = parse_dol(
        r"""
        /* outer /* inner } */ still comment { */
        fun f() -> string { return "esc \" } {" + 'x' + '\'' + '\u{7d}' }
        fun g() { }
        """
    )
    assert [f.name for f in dol.functions] == ["f", "g"]


# --- doc comments -------------------------------------------------------------------------


def test_doc_comment_attachment() -> None:
    dol = parse_dol(
        """/// The file.

/// Gene A,
/// two lines.
// a plain comment between keeps the doc attached
gen A {
    /// Field x.
    has x: i64

    /// Orphan, followed by a blank line.

    has y: i64
    /// Method m.
    fun m() { }
    docs { Inline docs. }
}
docs { Trailing DOL 1.0 docs. }

/// Detached: a blank line separates it from E, and it is not at the top.

/// Enum E.
enum E {
    /// Variant V.
    V
}
/// Alias.
type Al = i64
/// Const.
const K: i64 = 1
/// Var.
sex var G: i64
/// Host import.
sex fun h()
"""
    )
    assert dol.doc == "The file."
    a = dol.genes[0]
    assert a.doc == "Gene A,\ntwo lines.\n\nInline docs.\n\nTrailing DOL 1.0 docs."
    assert [f.doc for f in a.fields] == ["Field x.", None]
    assert a.methods[0].doc == "Method m."
    e = dol.enums[0]
    assert e.doc == "Enum E." and e.variants[0].doc == "Variant V."
    assert [i.doc for i in dol.items[2:]] == ["Alias.", "Const.", "Var.", "Host import."]


def test_inner_doc_comments_are_file_docs() -> None:
    dol = parse_dol("//! Module docs.\n//! More.\nfun f() { }")
    assert dol.doc == "Module docs.\nMore."
    assert dol.functions[0].doc is None


def test_doc_on_modifiers_and_annotations() -> None:
    dol = parse_dol("/// On pub.\npub fun f() { }\n/// On annotation.\n@x(1) gen A { }")
    assert dol.functions[0].doc == "On pub."
    assert dol.genes[0].doc == "On annotation."


def test_tokenizer_docs_text_and_positions() -> None:
    tokens, doc = tokenize('docs { a "b } c\ngen  X', "f.dol")
    assert doc is None
    assert [(t.kind, t.text) for t in tokens] == [
        (TokenKind.NAME, "docs"),
        (TokenKind.DOCS_TEXT, ' a "b '),
        (TokenKind.NAME, "c"),
        (TokenKind.NAME, "gen"),
        (TokenKind.NAME, "X"),
        (TokenKind.EOF, ""),
    ]
    assert [(t.line, t.column) for t in tokens] == [(1, 1), (1, 6), (1, 15), (2, 1), (2, 6), (2, 7)]


# --- errors -------------------------------------------------------------------------------


def test_error_is_a_vudo_syntax_error_with_location() -> None:
    err = parse_error("gen A {\n  has x\n}")
    assert isinstance(err, VudoError) and isinstance(err, SyntaxError)
    assert (err.file, err.line, err.column) == ("t.dol", 3, 1)
    assert err.message == "expected ':' after field name 'x', found '}'"
    assert str(err) == "t.dol:3:1: expected ':' after field name 'x', found '}'"


def test_unclosed_gene_points_at_its_brace() -> None:
    err = parse_error("// header\n\ngen Point {\n  has x: i64\n  has y: i64\n")
    assert (err.line, err.column) == (3, 11)
    assert "unclosed '{' of gene 'Point' opened at line 3, column 11" in err.message
    assert "reached end of file" in err.message


def test_unclosed_function_body_points_at_its_brace() -> None:
    err = parse_error("fun f() -> i64 {\n  if x { return 1 }\n")
    assert (err.line, err.column) == (1, 16)
    assert "unclosed '{' of the body of function 'f'" in err.message


def test_unclosed_method_body_and_parameters() -> None:
    err = parse_error("gen A {\n  fun m(\n    a: i64,\n")
    assert err.line == 2 and "parameters of method 'A.m'" in err.message
    err = parse_error("gen A {\n  fun m() {\n    a }\n")
    assert err.line == 1 and "gene 'A'" in err.message


def test_unclosed_docs_and_rule() -> None:
    err = parse_error("gen A { }\n\ndocs {\n  prose with { an open brace }\n")
    assert (err.line, err.column) == (3, 6) and "docs block" in err.message
    err = parse_error("rule r {\n  x > 0\n")
    assert err.line == 1 and "rule 'r'" in err.message


def test_unterminated_literals() -> None:
    err = parse_error('fun f() {\n  let s = "abc\n}\n')
    assert (err.line, err.column) == (2, 11) and "unterminated string" in err.message
    err = parse_error("/* never closed\n gen A { }")
    assert (err.line, err.column) == (1, 1) and "block comment" in err.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gen A { has x: }", "expected a type after ':' in field 'x' of gene 'A', found '}'"),
        ("gen A { has x:\n has y: i64 }", "after ':' in field 'x' of gene 'A', found 'has'"),
        ("gen A { x: = 3 }", "expected a type after ':' in field 'x' of gene 'A', found '='"),
        ("fun f(a) { }", "expected ':' after parameter 'a' of function 'f', found ')'"),
        ("fun f(a: ) { }", "expected a type for parameter 'a' of function 'f', found ')'"),
        ("fun f() -> { }", "expected a type after '->' in function 'f', found '{'"),
        ("sex var G = 1", "expected ':' after variable name 'G', found '='"),
        ("const K: = 1", "expected a type after ':' in const 'K', found '='"),
        ("type X = ", "expected a type after '=' in type 'X', found end of file"),
        ("fun f(a: List<i64) { }", "expected ',' or '>' in the type arguments of 'List'"),
        ("fun f(a: (i64 f64)) { }", "expected ',' or ')' in the tuple type"),
    ],
)  # fmt: skip
def test_missing_types(source: str, message: str) -> None:
    assert message in parse_error(source).message


def test_unknown_word_in_gene_body() -> None:
    err = parse_error("gen A {\n  has x: i32\n  hax y: i32\n}")
    assert (err.line, err.column) == (3, 3)
    assert err.message.startswith(
        "unknown 'hax' in gene 'A': expected has, fun, rule, docs, a field 'name: Type' or '}'"
    )
    assert "did you mean 'has'?" in err.message
    err = parse_error("gen A { hax x: i32 }")
    assert (err.line, err.column) == (1, 9) and "unknown 'hax' in gene 'A'" in err.message
    err = parse_error("gen A { 42 }")
    assert "unknown '42' in gene 'A'" in err.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gene", "expected a gene name after 'gene', found end of file"),
        ("gen A", "expected '{' to open the body of gene 'A', found end of file"),
        ("gen A extends { }", "expected a type after 'extends' in gene 'A', found '{'"),
        ("gan A { }", "unknown 'gan' at top level: expected a declaration"),
        ("}", "unmatched '}' at top level"),
        ("sex gen A { }", "expected 'fun' or 'var' after 'sex', found 'gen'"),
        ("pub 42", "expected a declaration after the modifiers, found '42'"),
        ("fun (a: i64) { }", "expected a function name after 'fun', found '('"),
        ("fun f { }", "expected '(' after function name 'f', found '{'"),
        ("fun f(1) { }", "expected a parameter name or ')' in function 'f', found '1'"),
        ("docs", "expected '{' after 'docs', found end of file"),
        ("trait T", "expected '{' to open the body of trait 'T', found end of file"),
        ("trait T\ngen A { }", "expected '{' to open the body of trait 'T', found 'gen'"),
        ("enum E { 1 }", "expected a variant name or '}' in enum 'E', found '1'"),
        ("enum E { A, A }", "duplicate variant 'A' in enum 'E'"),
        ("gen A { has x: i64 has x: f64 }", "duplicate field 'x' in gene 'A'"),
        ("fun f(a: i64, a: i64) { }", "duplicate parameter 'a' in function 'f'"),
        ("sex var V: i64\nsex var V: f64", "duplicate declaration of sex var 'V'"),
        ("type X = i64\ntype X = f64", "duplicate declaration of type alias 'X'"),
        ("gen X { }\nenum X { A }", "duplicate declaration of enum 'X'"),
        ("gen A { }\n\ngen A { }", "duplicate declaration of gene 'A': 'A' is already declared"),
        ("const K: i64 =", "expected an expression after '=' in const 'K', found end of file"),
        ("gen A { has x: i64 = }", "expected an expression after '=' in field 'x' of gene 'A'"),
        ("gen A { pub 3 }", "expected 'fun' after 'pub' in gene 'A', found '3'"),
        ("gen A<T { }", "expected '>' to close the type parameters"),
        ("type X", "expected '=' after type name 'X'"),
    ],
)  # fmt: skip
def test_error_messages(source: str, message: str) -> None:
    assert message in parse_error(source).message


def test_deep_type_nesting_is_an_error_not_a_crash() -> None:
    err = parse_error("fun f(a: " + "List<" * 500 + "i64" + ">" * 500 + ") { }")
    assert "nested more than" in err.message


def test_parse_dol_file_encoding(tmp_path: Path) -> None:
    good = tmp_path / "bom.dol"
    good.write_bytes("\ufeffgen A { has x: i64 }".encode())
    assert parse_dol_file(good).genes[0].name == "A"
    bad = tmp_path / "bad.dol"
    bad.write_bytes(b"gen A {\n  has \xff: i64\n}")
    with pytest.raises(DolSyntaxError) as info:
        parse_dol_file(bad)
    assert (info.value.file, info.value.line, info.value.column) == (str(bad), 2, 7)
    assert "not valid UTF-8" in info.value.message


def test_ancestry_stops_at_cycles_and_unknown_parents() -> None:
    dol = parse_dol("gen A extends C { }\ngen B extends A { }\ngen C extends B { }")
    a, b, c = dol.genes
    assert dol.ancestry(c) == (a, b, c)
    lone = parse_dol("gen D extends Elsewhere { }").genes[0]
    assert parse_dol("").ancestry(lone) == (lone,)


# --- robustness ---------------------------------------------------------------------------

DOL_TOKENS = [
    "gen", "gene", "has", "fun", "pub", "sex", "var", "const", "type", "enum", "rule",
    "constraint", "docs", "exegesis", "trait", "system", "use", "mod", "module", "extends",
    "where", "provides", "impl", "extern", "self", "&", "&&", "mut", "{", "}", "(", ")", "<",
    ">", "[", "]", ",", ":", "::", ";", "=", "->", "?", ".", "@", "#", "!", '"', "'", '"s"',
    "'c'", "'{'", '"}"', "//", "///", "//!", "/*", "*/", "x", "A", "Point", "i64", "f64",
    "bool", "string", "List", "Option", "Map", "0", "1.5", "1.0.0", "\n", "\n\n", " ", "\t",
    "is", "has x: i64", "fun f(a: i64) -> i64 { a }", "sex fun h(p: i32)", "enum { A, B }",
]  # fmt: skip

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_syntax_error(text: str) -> DolFile | None:
    """Parse, allowing only DolSyntaxError; a result must be well formed."""
    try:
        dol = parse_dol(text, file="fuzz.dol")
    except DolSyntaxError as err:
        assert err.line >= 1 and err.column >= 1
        assert err.message
        return None
    for item in dol.items:
        assert item.name
    return dol


@FUZZ
@given(st.text())
def test_random_text_never_crashes(text: str) -> None:
    parse_or_syntax_error(text)


@FUZZ
@given(st.lists(st.sampled_from(DOL_TOKENS), max_size=80).map(" ".join))
def test_random_token_soup_never_crashes(text: str) -> None:
    parse_or_syntax_error(text)


@FUZZ
@given(st.lists(st.sampled_from(DOL_TOKENS), max_size=80).map("".join))
def test_random_glued_tokens_never_crash(text: str) -> None:
    parse_or_syntax_error(text)


ECOSYSTEM = (FIXTURES / "ecosystem.dol").read_text(encoding="utf-8")


@FUZZ
@given(st.data())
def test_mutated_fixture_never_crashes(data: st.DataObject) -> None:
    text = ECOSYSTEM
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        insert = data.draw(st.sampled_from(["", *DOL_TOKENS]))
        text = text[:start] + insert + text[end:]
    parse_or_syntax_error(text)


def test_every_prefix_of_the_fixture_parses_or_fails_cleanly() -> None:
    for cut in range(0, len(ECOSYSTEM), 7):
        parse_or_syntax_error(ECOSYSTEM[:cut])


def test_large_file_parses_quickly() -> None:
    body = "\n".join(
        f"/// Gene {i}.\ngen G{i} {{\n  has a: i64 = {i}\n  b: List<Map<string, f64>>\n"
        f"  fun m{i}(x: i64) -> i64 {{ if x > 0 {{ return x }} return {i} }}\n}}"
        for i in range(2000)
    )
    start = time.perf_counter()
    dol = parse_dol(body)
    assert len(dol.genes) == 2000
    assert time.perf_counter() - start < 10


# --- the type mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "current", "legacy"),
    [
        ("i8", "i64", "i32"), ("i16", "i64", "i32"), ("i32", "i64", "i32"), ("i64", "i64", "i64"),
        ("u8", "i64", "i32"), ("u32", "i64", "i32"), ("u64", "i64", "i64"), ("i128", "i64", "i64"),
        ("UInt32", "i64", "i32"), ("UInt64", "i64", "i64"), ("usize", "i64", "i32"),
        ("int", "i64", "i64"), ("Int32", "i64", "i32"), ("Int64", "i64", "i64"),
        ("f32", "f64", "f32"), ("f64", "f64", "f64"), ("Float32", "f64", "f32"),
        ("Float64", "f64", "f64"), ("float", "f64", "f64"),
        ("bool", "i32", "i32"), ("Bool", "i32", "i32"), ("char", "i32", "i32"),
        ("string", "i32", "i32"), ("String", "i32", "i32"),
        ("List", "i32", "i32"), ("Option", "i32", "i32"), ("Point", "i32", "i32"),
    ],
)  # fmt: skip
def test_wasm_boundary_types(name: str, current: str, legacy: str) -> None:
    assert wasm_type(T(name)) == current
    assert wasm_type(T(name), legacy=True) == legacy


def test_wasm_types_void_tuple_and_containers() -> None:
    assert wasm_types(None) == () and wasm_type(None) is None
    assert wasm_types(TypeRef("()")) == () and wasm_type(T("void")) is None
    pair = TypeRef("()", (T("i32"), TypeRef("()", (T("f32"), T("bool")))))
    assert wasm_types(pair) == ("i64", "f64", "i32")
    assert wasm_types(pair, legacy=True) == ("i32", "f32", "i32")
    with pytest.raises(ValueError, match="wasm_types"):
        wasm_type(pair)
    assert wasm_type(T("Map", T("K"), T("V"))) == "i32"
    assert wasm_type(T("Result", T("i64"), T("string"))) == "i32"
    assert wasm_type(TypeRef("&", (T("Point"),))) == "i32"
    assert wasm_type(TypeRef("enum", variants=("A",))) == "i32"
    ctx = TypeContext(aliases={"Id": T("u64"), "Ratio": T("f32")})
    assert wasm_type(T("Id"), ctx) == "i64" and wasm_type(T("Ratio"), ctx, legacy=True) == "f32"


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("i32", "i32"), ("Int32", "i32"), ("u32", "u32"), ("UInt32", "u32"),
        ("i64", "i64"), ("Int64", "i64"), ("int", "i64"), ("u64", "u64"), ("UInt64", "u64"),
        ("f32", "f32"), ("Float32", "f32"), ("f64", "f64"), ("Float64", "f64"),
        ("bool", "bool"), ("Bool", "bool"), ("char", "char"), ("Char", "char"),
        ("string", "string"), ("String", "string"),
        ("List", "ptr"), ("Vec", "ptr"), ("Option", "ptr"), ("Map", "ptr"), ("&", "ptr"),
        ("[]", "ptr"), ("fn", "i32"),
    ],
)  # fmt: skip
def test_layout_scalars(name: str, layout: str) -> None:
    assert layout_type(T(name)) == LayoutType("scalar", layout)


def test_layout_user_types_and_errors() -> None:
    ctx = TypeContext(
        genes=frozenset({"Point"}), enums=frozenset({"Color"}), aliases={"P": T("Point")}
    )
    assert layout_type(T("Point"), ctx) == LayoutType("gene", "Point")
    assert layout_type(T("P"), ctx) == LayoutType("gene", "Point")
    assert layout_type(T("Color"), ctx) == LayoutType("enum", "Color")
    assert layout_type(TypeRef("enum", variants=("A", "B"))) == LayoutType("enum", "", ("A", "B"))
    assert layout_type(T("Elsewhere")) == LayoutType("gene", "Elsewhere")
    bad_types = [T(n) for n in ("i8", "u8", "i16", "UInt16", "usize", "i128", "void")]
    for bad in [*bad_types, TypeRef("()"), TypeRef("()", (T("i64"),))]:
        with pytest.raises(LayoutError):
            layout_type(bad)


def test_alias_cycles_terminate() -> None:
    ctx = TypeContext(aliases={"A": T("B"), "B": T("A")})
    assert ctx.resolve(T("A")).name in {"A", "B"}
    assert wasm_type(T("A"), ctx) == "i32"


@pytest.mark.parametrize(
    ("t", "hint"),
    [
        (T("i32"), "int"), (T("u64"), "int"), (T("Int64"), "int"), (T("char"), "int"),
        (T("f32"), "float"), (T("Float64"), "float"), (T("bool"), "bool"), (T("Bool"), "bool"),
        (T("string"), "str"), (T("String"), "str"),
        (T("List", T("i64")), "int"), (T("Option", T("string")), "int"),
        (TypeRef("&", (T("Point"),)), "int"), (T("Point"), "Point"), (T("Color"), "Color"),
        (TypeRef("()", (T("i64"), T("f64"))), "tuple[int, float]"), (TypeRef("()"), "None"),
        (None, "None"), (T("a.b_c"), "ABC"),
    ],
)  # fmt: skip
def test_python_types(t: TypeRef | None, hint: str) -> None:
    ctx = TypeContext(genes=frozenset({"Point"}), enums=frozenset({"Color"}))
    assert python_type(t, ctx) == hint


def test_is_void() -> None:
    assert is_void(None) and is_void(TypeRef("()")) and is_void(T("void"))
    assert not is_void(TypeRef("()", (T("i64"),))) and not is_void(T("i64"))


def test_ast_nodes_are_frozen_and_hashable(eco: DolFile) -> None:
    assert hash(eco) == hash(parse_dol_file(FIXTURES / "ecosystem.dol"))
    gene = eco.genes[0]
    with pytest.raises(AttributeError):
        gene.name = "Other"  # type: ignore[misc]
    assert isinstance(eco.get("Locomotion"), Enum)
    assert eco.get("nope") is None
