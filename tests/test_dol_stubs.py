"""Stubs for the DOL real projects write (issue 14): inheritance laid out as DOL's compiler
does, consts, defaults and ``where`` constraints carried into the stubs, the never type,
``extern "C"``, and stubs that are valid Python whatever a doc comment holds.

mypy --strict and ruff run on the stub of ``tests/dol/features.dol`` in test_codegen.py
(every ``tests/dol/*.dol`` sample is type-checked there).
"""

from __future__ import annotations

import ast
import inspect
import itertools
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo_runtime import GeneLayout, load_spirit
from vudo_runtime.codegen import (
    Const,
    DolFile,
    Enum,
    EnumVariant,
    Function,
    Gene,
    GeneField,
    GeneRule,
    Param,
    TypeRef,
    generate_file,
    generate_from_dol,
    parse_dol,
)
from vudo_runtime.codegen.emit import docstring
from vudo_runtime.codegen.pyexpr import Expr, Scope, Unsupported, translate

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "dol"
_count = itertools.count()


def load(text: str, name: str = "stub") -> ModuleType:
    """Run a generated stub as a module."""
    module = ModuleType(f"_dol_stub_{name}_{next(_count)}")
    exec(compile(text, f"{name}.py", "exec"), module.__dict__)
    return module


def stub(source: str, name: str = "t") -> ModuleType:
    return load(generate_from_dol(parse_dol(source, f"{name}.dol"), f"{name}.dol"), name)


@pytest.fixture(scope="module")
def features() -> ModuleType:
    return load(generate_file(FIXTURES / "features.dol"), "features")


# --- inheritance: the parent's fields first, as DOL's compiler lays them out --------------
#
# DOL's wasm layout (src/wasm/layout.rs, compute_gene_layout): a gene that extends another
# copies the parent's fields at the parent's offsets, then continues from the parent's
# total (padded) size with the parent's alignment, each own field aligned to itself.


def test_dol_compilers_own_inheritance_case() -> None:
    mod = stub("gene Animal { has age: Int64 }\ngene Dog is Animal { has breed_id: Int64 }")
    dog = mod.DOG_LAYOUT
    assert [(f.name, f.offset) for f in dog.fields] == [("age", 0), ("breed_id", 8)]
    assert (dog.size, dog.alignment) == (16, 8)
    assert dog.extends is mod.ANIMAL_LAYOUT
    assert issubclass(mod.Dog, mod.Animal) and issubclass(mod.DogHandle, mod.AnimalHandle)


@pytest.mark.parametrize(
    ("source", "offsets", "size", "alignment"),
    [
        # the child's i64 is aligned past the parent's 4 bytes
        ("gen P { has flag: bool }\ngen C is P { has big: i64 }", [0, 8], 16, 8),
        # the child starts at the parent's padded size (16), not at its last byte (12)
        ("gen P { has x: f64  has flag: bool }\ngen C is P { has y: i32 }", [0, 8, 16], 24, 8),
        # grandchildren: every ancestor's fields, root first
        (
            "gen P { has a: i32 }\ngen M is P { has b: f64 }\ngen C is M { has c: i32 }",
            [0, 8, 16],
            24,
            8,
        ),
        # `extends` and `is` are one thing
        ("gen P { has a: i32 }\ngen C extends P { has b: i32 }", [0, 4], 8, 4),
    ],
)
def test_inherited_layouts(source: str, offsets: list[int], size: int, alignment: int) -> None:
    layout = stub(source).C_LAYOUT
    assert [f.offset for f in layout.fields] == offsets
    assert (layout.size, layout.alignment) == (size, alignment)
    names = [f.name for f in layout.fields]
    # the same as the runtime's own layout of the flattened chain, and of `extends=`
    parent = stub(source).P_LAYOUT
    assert layout.fields[: len(parent.fields)] == parent.fields
    assert names[0] == parent.fields[0].name


def test_parent_declared_after_the_child_and_cycles() -> None:
    mod = stub("gen C is P { has b: i64 }\ngen P { has a: i32 }")
    assert [f.name for f in mod.C_LAYOUT.fields] == ["a", "b"]
    text = generate_from_dol(parse_dol("gen A is B { }\ngen B is A { }"), "cycle.dol")
    assert "A_LAYOUT" not in text and "its parent gene" in text


def test_deep_inheritance_needs_no_recursion() -> None:
    chain = "\n".join(
        f"gen G{i} is G{i - 1} {{ has f{i}: i32 }}" if i else "gen G0 { has f0: i32 }"
        for i in range(1200)
    )
    text = generate_from_dol(parse_dol(chain), "deep.dol")
    assert "G1199_LAYOUT = GeneLayout.from_fields(" in text


async def test_inherited_gene_round_trips_through_spirit_memory(features: ModuleType) -> None:
    animal = features.Animal(
        id=7, energy=50.0, alive=True, diet=features.Diet.Herbivore, name="Rex", speed=2.5
    )
    layout = features.ANIMAL_LAYOUT
    assert [f.name for f in layout.fields][:3] == ["id", "energy", "alive"]
    async with await load_spirit(ROOT / "spirits" / "counter.wasm") as spirit:
        assert spirit.memory is not None
        ptr = spirit.memory.new_gene(animal, layout)
        assert await features.AnimalHandle(spirit, ptr).read() == animal
        # the same pointer read as the parent: the parent's fields at the same offsets
        assert await features.OrganismHandle(spirit, ptr).read() == features.Organism(7, 50.0, True)


# --- consts, defaults, constraints, rules -------------------------------------------------


def test_consts(features: ModuleType) -> None:
    assert features.MAX_POPULATION == 10_000 and isinstance(features.MAX_POPULATION, int)
    assert features.HALF == 0.5 and features.LIMIT == 5000.0
    assert features.NAME == 'features "quoted" \\ path'
    assert not hasattr(features, "FLAGS")  # a List has no Python value: a comment says so
    text = generate_file(FIXTURES / "features.dol")
    assert '# const FLAGS: List<string> = ["a", "b"]  (no Python value:' in text
    assert "MAX_POPULATION: Final = 10000" in text


def test_consts_in_order_and_typed() -> None:
    mod = stub(
        """
        const B = A + 1
        const A: i64 = 2
        const C: f64 = 3
        const D: i64 = 1.5
        const E: bool = !false && A > 1
        const F = "a" + "b"
        const G: Color = Color::Green
        const H = 7 / 2
        const Q = 7.0 / 2
        const J = 0x1F + 0b11 + 1_000
        enum Color { Red, Green }
        """
    )
    assert not hasattr(mod, "B")  # refers to a later const
    assert mod.A == 2 and mod.C == 3.0 and isinstance(mod.C, float)
    assert not hasattr(mod, "D")  # a float is no i64
    assert mod.E is True and mod.F == "ab" and mod.G is mod.Color.Green
    assert not hasattr(mod, "H") and mod.Q == 3.5  # integer `/` truncates in DOL: not carried
    assert mod.J == 31 + 3 + 1000


def test_defaults_are_attrs_defaults(features: ModuleType) -> None:
    org = features.Organism(1)
    assert (org.energy, org.alive) == (100.0, True)
    animal = features.Animal(id=1, speed=1.0)
    assert animal.diet is features.Diet.Omnivore and animal.mood is features.Mood.Calm
    assert (animal.legs, animal.name) == (4, "animal")
    herd = features.Herd(id=2, speed=1.0, members=12)
    assert herd.size is features.Size.Medium
    # the layout still reads and writes every field
    assert features.Herd.from_gene(attrs.asdict(herd, recurse=False)) == herd


def test_default_before_a_field_without_one_is_keyword_only() -> None:
    mod = stub("gen P { has x: i64 = 3\n has y: i64 }\ngen Q { has a: i64\n has b: f64 = 0.5 }")
    params = inspect.signature(mod.P).parameters
    assert params["x"].kind is inspect.Parameter.KEYWORD_ONLY and params["x"].default == 3
    assert mod.P(5) == mod.P(y=5, x=3)
    assert mod.Q(1) == mod.Q(1, 0.5)  # a trailing default stays positional


def test_where_constraints_are_validators(features: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"Organism\.energy must satisfy `energy >= 0.0`"):
        features.Organism(1, -1.0)
    with pytest.raises(ValueError, match=r"Animal\.legs must satisfy"):
        features.Animal(id=1, speed=1.0, legs=-2)
    with pytest.raises(ValueError, match=r"Animal\.speed"):
        features.Animal(id=1, speed=0.0)


def test_rules_are_checked_after_init(features: ModuleType) -> None:
    with pytest.raises(ValueError, match="Organism breaks rule alive_needs_energy"):
        features.Organism(1, 0.0, True)
    assert features.Organism(1, 0.0, False).alive is False
    with pytest.raises(ValueError, match="Animal breaks rule named"):
        features.Animal(id=1, speed=1.0, name="")
    with pytest.raises(ValueError, match="alive_needs_energy"):  # the parent's rule too
        features.Animal(id=1, speed=1.0, energy=0.0)


def test_what_python_cannot_check_is_documented() -> None:
    text = generate_from_dol(
        parse_dol(
            """
            gen Bag {
                has tags: List<string> = [] where len(tags) < 10
                has n: i64 = compute() where n % 2 == 0
                has s: string where other > 1
                rule sorted { each tag in tags is sorted }
            }
            """
        ),
        "bag.dol",
    )
    assert "#: DOL default: [] (a field of this type has no Python default)" in text
    assert "#: where len(tags) < 10 (not checked: a field of this type cannot be checked" in text
    assert "compute(...) has no Python equivalent here" in text
    assert "rounds differently in DOL and Python" in text
    assert "'other' is not a const, field or enum variant here" in text
    assert "Not checked by this class:" in text and "- rule sorted: each tag in tags" in text
    load(text, "bag")


@pytest.mark.parametrize(
    ("source", "kind", "python"),
    [
        ("1 + 2 * 3", "int", "1 + (2 * 3)"),
        ("(1 + 2) * 3", "int", "(1 + 2) * 3"),
        ("-1.5e-3", "float", "-1.5e-3"),
        ("10_000", "int", "10000"),
        ("007", "int", "7"),
        ("2.0 / 4", "float", "2.0 / 4"),
        ("!a && b || c", "bool", "((not a) and b) or c"),
        ("a and not b", "bool", "a and (not b)"),
        ("a implies b", "bool", "(not a) or b"),
        ("x >= 0 && x <= 10", "bool", "(value >= 0) and (value <= 10)"),
        ('"a\\"b" + "\\u{e9}"', "str", '"a\\"b" + "\\u00e9"'),
        ("'x'", "str", '"x"'),
        ("s.len() > 0", "bool", "len(s) > 0"),
        ("len(s) == 3", "bool", "len(s) == 3"),
        ("abs(x) + max(x, 2)", "int", "abs(value) + max(value, 2)"),
        ("x > 0 // a comment", "bool", "value > 0"),
    ],
)
def test_expression_translation(source: str, kind: str, python: str) -> None:
    names = {
        "a": Expr("a", "bool"),
        "b": Expr("b", "bool"),
        "c": Expr("c", "bool"),
        "x": Expr("value", "int"),
        "s": Expr("s", "str"),
    }
    result = translate(source, Scope(lambda parts, _: names.get(".".join(parts))))
    assert result == Expr(python, kind)
    compile(result.source, "<expr>", "eval")


@pytest.mark.parametrize(
    "source",
    ["7 % 2", "7 / 2", "f(1)", "1 < 2 < 3", "x.y", '1 + "a"', "a == 1", "0..10", "{", "", "x"],
)
def test_untranslatable_expressions(source: str) -> None:
    names = {"a": Expr("a", "bool")}
    result = translate(source, Scope(lambda parts, _: names.get(".".join(parts))))
    assert isinstance(result, Unsupported) and result.reason


# --- never type, extern "C" in stubs ------------------------------------------------------


def test_never_and_extern_c_in_the_stub(features: ModuleType) -> None:
    text = generate_file(FIXTURES / "features.dol")
    assert "async def forever(self, a: Animal | AnimalHandle, *, timeout" in text
    assert ") -> NoReturn:" in text and "raise VudoError(" in text
    host = features.FeaturesHost
    assert list(inspect.signature(host.host_abort).parameters) == ["self", "code"]
    assert "def host_abort(self, code: int) -> None:" in text
    assert "def host_printf(self, fmt: int) -> int:" in text
    assert "Variadic in DOL" in text and "def host_clock(self) -> int:" in text


async def test_a_never_returning_export_that_returns_is_an_error() -> None:
    from vudo_runtime import VudoError

    mod = stub("fun stop() -> ! { }", "never")
    wat = '(module (func (export "stop")))'
    async with await load_spirit(wat.encode()) as spirit:
        with pytest.raises(VudoError, match="never returns"):
            await spirit.as_(mod.NeverSpirit).stop()


# --- valid Python whatever the docs hold --------------------------------------------------

NASTY = [
    '"""',
    '""',
    '"',
    "\\",
    '\\"',
    "\\\\",
    "'''",
    "\x00",
    "\r",
    "\r\n",
    "\n",
    "\t",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u2028",
    "\u2029",
    "\ud800",
    "\ufeff",
    "é",
    "𝔘",
    "{",
    "}",
    "#",
    "# noqa",
    "f'{x}'",
    "*/",
    "/*",
    "--",
]
DOC_TEXT = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=12).map(
    "".join
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(text: str) -> None:
    compile(text, "stub.py", "exec")
    ast.parse(text)
    text.encode("utf-8")  # writable as the UTF-8 file it becomes
    assert "\x00" not in text


def _file_with_docs(doc: str) -> DolFile:
    i64, f64 = TypeRef("i64"), TypeRef("f64")
    method = Function("m", (Param("x", i64),), i64, doc=doc, owner="G")
    gene = Gene(
        "G",
        (
            GeneField("a", i64, default="1", doc=doc, constraint="a > 0"),
            GeneField("b", f64, default=doc[:40] or "x", doc=doc, constraint=doc[:40] or "y"),
        ),
        (method,),
        doc=doc,
        rules=(GeneRule("r", doc or "true", doc), GeneRule("s", "this.a < 10", doc)),
    )
    child = Gene("H", (GeneField("c", i64, doc=doc),), extends="G", doc=doc)
    return DolFile(
        path=doc[:30] or "d.dol",
        items=(
            Const("K", i64, "1", doc=doc),
            Const("L", None, doc or "1", doc=doc),
            Enum("E", (EnumVariant("V", doc=doc),), doc=doc),
            gene,
            child,
            Function("f", (Param("p", i64),), i64, doc=doc),
            Function("h", (), None, doc=doc, is_host_import=True, is_sex=True, has_body=False),
        ),
        doc=doc,
    )


@PROPERTY
@given(DOC_TEXT)
def test_stub_is_valid_python_whatever_the_docs_hold(doc: str) -> None:
    text = generate_from_dol(_file_with_docs(doc), doc[:50] or "d.dol")
    _valid(text)
    load(text)  # and it imports: layouts, attrs classes, validators


@PROPERTY
@given(DOC_TEXT)
def test_stub_from_dol_source_is_valid_python_whatever_the_docs_hold(doc: str) -> None:
    line = " ".join(doc.replace("\r", " ").replace("\n", " ").split("\n"))
    prose = doc.replace("{", "(").replace("}", ")")
    source = (
        f"//! {line}\n\n/// {line}\ngen A {{\n    /// {line}\n    has x: i64\n"
        f"    docs {{{prose}}}\n}}\n\ndocs {{{prose}}}\n\n/// {line}\nfun f(a: A) -> i64 {{ }}\n"
    )
    text = generate_from_dol(parse_dol(source, "p.dol"), "p.dol")
    _valid(text)


@pytest.mark.parametrize("doc", [*NASTY, 'ends in """', "ends in \\", 'x"""y"""', "a" * 500])
def test_docstring_keeps_the_text(doc: str) -> None:
    lines = docstring(doc, "    ")
    if not doc.strip():
        assert lines == []
        return
    value = ast.literal_eval("\n".join(line.strip() for line in lines))
    assert isinstance(value, str)
    # printable text survives word for word (modulo wrapping; a word too long for a line
    # is broken)
    if doc.isprintable() and max(map(len, doc.split()), default=0) < 80:
        assert " ".join(value.split()) == " ".join(doc.split())


def test_doc_ending_in_triple_quotes_regression() -> None:
    text = generate_from_dol(parse_dol('/// Say """hi"""\nfun f() { }'), "q.dol")
    _valid(text)
    mod = load(text)
    assert mod.QSpirit.f.__doc__ == 'Say """hi"""'


def test_names_python_would_read_as_one_are_kept_apart() -> None:
    mod = stub("gen ﬁeld { has x: i64 }\ngen field { has y: i64 }\nfun ｆ() -> i64 { }")
    assert {"field", "field_"} <= set(vars(mod))
    assert isinstance(mod.FIELD_LAYOUT, GeneLayout)


def test_field_values_any_attrs(features: ModuleType) -> None:
    fields: dict[str, Any] = {f.name: f for f in attrs.fields(features.Animal)}
    assert fields["speed"].kw_only and fields["speed"].default is attrs.NOTHING
    assert fields["legs"].validator is not None


SOUP = [
    "gen", "gene", "has", "fun", "pub", "sex", "var", "const", "type", "enum", "rule", "is",
    "extends", "where", "docs", "extern", '"C"', "spirit", "mod", "use", "trait", "system",
    "{", "}", "(", ")", "<", ">", ",", ":", "=", "->", "!", "?", ".", "::", "@", "...", "\n",
    "A", "B", "x", "y", "i64", "f64", "bool", "string", "List", "0", "1.5", '"s"', "'c'",
    "&&", "||", "==", ">=", "+", "-", "*", "/", "this", "--", "//", "/// d", "{ }",
    "has x: i64 = 1 where x > 0", "gen A is B { }", "enum { P, Q }", "fun f(a: A) -> ! { }",
]  # fmt: skip


@PROPERTY
@given(st.lists(st.sampled_from(SOUP), max_size=60).map(" ".join))
def test_whatever_parses_generates_valid_python(text: str) -> None:
    from vudo_runtime import DolSyntaxError

    try:
        dol = parse_dol(text, "soup.dol")
    except DolSyntaxError:
        return
    _valid(generate_from_dol(dol, "soup.dol"))
