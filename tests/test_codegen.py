"""Typed stubs from DOL (and from wasm exports): generation, type checking, and real calls."""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vudo_runtime import (
    GeneHandle,
    GeneLayout,
    LayoutError,
    MemoryAccessError,
    SpiritFacade,
    VudoError,
    load_spirit,
)
from vudo_runtime.cli import main as vudo
from vudo_runtime.codegen import generate_file, generate_from_dol, generate_from_wasm, parse_dol
from vudo_runtime.codegen.emit import GENERATED_MARK
from vudo_runtime.codegen.generator import REFRESH_COMMAND, refresh
from vudo_runtime.codegen.generator import main as generator_main
from vudo_runtime.facade import allocated, gene_memory

ROOT = Path(__file__).resolve().parent.parent
SPIRITS = ROOT / "spirits"
DOL_SAMPLES = ROOT / "tests" / "dol"

#: Gene parameters (by value and by handle), enums, strings and a nested gene.
SHAPES_DOL = """\
/// Shapes: genes passed by value, enums and strings.

enum Color { Red, Green, Blue }

gen Point {
    has x: i64
    has y: i64
}

/// A point with a color and a label.
gen Tagged {
    has color: Color
    has label: string
    has at: Point

    /// The label.
    fun label() -> string { return this.label }
}

/// |x| + |y| for non-negative points.
fun manhattan(p: Point) -> i64 { return p.x + p.y }

/// The color after `c`, wrapping around.
fun next_color(c: Color) -> Color { return (c + 1) % 3 }

/// x of the tagged point.
fun tagged_x(t: Tagged) -> i64 { return t.at.x }
"""

#: The Spirit SHAPES_DOL describes. Tagged: color@0 (i32), label@4 (string), at@8 (Point),
#: size 24, align 8.
SHAPES_WAT = """
(module
  (memory (export "memory") 1 256)
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (local.get $p))
  (func (export "new_Point") (param $x i64) (param $y i64) (result i32)
    (local $p i32)
    (local.set $p (call $alloc (i32.const 16)))
    (i64.store offset=0 (local.get $p) (local.get $x))
    (i64.store offset=8 (local.get $p) (local.get $y))
    (local.get $p))
  (func (export "new_Tagged") (param $c i32) (param $label i32) (param $at i32) (result i32)
    (local $p i32)
    (local.set $p (call $alloc (i32.const 24)))
    (i32.store offset=0 (local.get $p) (local.get $c))
    (i32.store offset=4 (local.get $p) (local.get $label))
    (memory.copy (i32.add (local.get $p) (i32.const 8)) (local.get $at) (i32.const 16))
    (local.get $p))
  (func (export "Tagged.label") (param $self i32) (result i32)
    (i32.load offset=4 (local.get $self)))
  (func (export "manhattan") (param $p i32) (result i64)
    (i64.add (i64.load offset=0 (local.get $p)) (i64.load offset=8 (local.get $p))))
  (func (export "next_color") (param $c i32) (result i32)
    (i32.rem_u (i32.add (local.get $c) (i32.const 1)) (i32.const 3)))
  (func (export "tagged_x") (param $t i32) (result i64)
    (i64.load offset=8 (local.get $t)))
)
"""

#: Typed use of the generated stubs: mypy --strict must accept it, and every
#: `type: ignore` must be needed (strict warns about unused ones), so a stub that
#: lost its types fails here.
CONSUMER = """\
from __future__ import annotations

from counter import Counter, CounterHandle, CounterSpirit
from hello_world import HelloWorldHost
from shapes import Color, Point, ShapesSpirit, Tagged

from vudo_runtime import Spirit


class Printer:
    def vudo_print(self, ptr: int, len: int) -> None:
        print(ptr, len)


HOST: HelloWorldHost = Printer()


async def drive(spirit: Spirit, shapes: Spirit) -> int:
    facade = spirit.as_(CounterSpirit)
    c: CounterHandle = await facade.new_counter(5)
    n: int = await c.increment()
    state: Counter = await c.read()
    await c.add("one")  # type: ignore[arg-type]
    s = shapes.as_(ShapesSpirit)
    color: Color = await s.next_color(Color.Red)
    t = await s.new_tagged(color, "label", Point(1, 2))
    tagged: Tagged = await t.read()
    label: str = await t.label()
    total: int = await s.manhattan(tagged.at) + await s.manhattan(Point(3, 4))
    await s.manhattan(t)  # type: ignore[arg-type]
    return n + state.value + total + len(label)
"""


def _import(path: Path) -> ModuleType:
    """Import the module at ``path`` under a fresh name."""
    name = f"_vudo_stub_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_counter = itertools.count()


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every sample's stub, generated through `vudo codegen`, in one directory."""
    out = tmp_path_factory.mktemp("stubs")
    sources = [
        *((p, p.stem) for p in sorted(SPIRITS.glob("*.dol"))),
        *((p, p.stem) for p in sorted(DOL_SAMPLES.glob("*.dol"))),
        *((p, f"{p.stem}_wasm") for p in sorted(SPIRITS.glob("*.wasm"))),
    ]
    for src, stem in sources:
        assert vudo(["codegen", str(src), "-o", str(out / f"{stem}.py")]) == 0, src
    (out / "shapes.dol").write_text(SHAPES_DOL, encoding="utf-8")
    (out / "shapes.wat").write_text(SHAPES_WAT, encoding="utf-8")
    assert vudo(["codegen", str(out / "shapes.dol"), "-o", str(out / "shapes.py")]) == 0
    (out / "consumer.py").write_text(CONSUMER, encoding="utf-8")
    return out


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_generated_stubs_pass_mypy_strict(stubs: Path) -> None:
    pytest.importorskip("mypy")
    files = sorted(str(p) for p in stubs.glob("*.py"))
    result = _run(sys.executable, "-m", "mypy", "--strict", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_stubs_pass_ruff(stubs: Path) -> None:
    pytest.importorskip("ruff")
    files = sorted(str(p) for p in stubs.glob("*.py") if p.name != "consumer.py")
    result = _run(sys.executable, "-m", "ruff", "check", "--no-cache", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_header_names_the_source_as_given() -> None:
    source = (SPIRITS / "counter.dol").read_text()
    text = generate_from_dol(parse_dol(source), "spirits/counter.dol")
    assert text.splitlines()[:2] == [GENERATED_MARK, "# Source: spirits/counter.dol"]
    # only the name given appears: not where the file was parsed from
    assert text == generate_from_dol(parse_dol(source, "/elsewhere/c.dol"), "spirits/counter.dol")
    assert str(SPIRITS / "counter.dol") in generate_file(SPIRITS / "counter.dol")


@pytest.mark.parametrize(
    "source",
    [*sorted(SPIRITS.glob("*.dol")), *sorted(DOL_SAMPLES.glob("*.dol")), SPIRITS / "counter.wasm"],
    ids=lambda p: p.name,
)
def test_generation_is_deterministic(source: Path) -> None:
    assert generate_file(source) == generate_file(source)


# ---- the counter, through `vudo codegen ... -o` -------------------------------------------


async def test_cli_counter_stub_drives_the_counter(tmp_path: Path) -> None:
    out = tmp_path / "x" / "counter.py"
    out.parent.mkdir()
    assert vudo(["codegen", str(SPIRITS / "counter.dol"), "-o", str(out)]) == 0
    mod = _import(out)
    layout = mod.COUNTER_LAYOUT  # the runtime's own layout of the gene
    assert layout == GeneLayout.from_fields("Counter", [("value", "i64")])
    assert mod.Counter.__vudo_layout__ is mod.COUNTER_LAYOUT
    spirit = await load_spirit(SPIRITS / "counter.wasm")
    async with spirit:
        facade = spirit.as_(mod.CounterSpirit)
        assert isinstance(facade, mod.CounterSpirit)
        c = await facade.new_counter(5)
        assert isinstance(c, mod.CounterHandle) and c.spirit is spirit
        assert await c.increment() == 6
        assert await c.read() == mod.Counter(value=6)
        assert await c.get_value() == 6
        assert await c.add(10) == 16
        assert await c.read() == mod.Counter(value=6)
        assert await facade.add_numbers(2, 3) == 5
        assert spirit.read_back(c.ptr, mod.Counter) == mod.Counter(6)  # the runtime reads it too
        # a second handle is a second gene
        d = await facade.new_counter(-1, timeout=5.0)
        assert d.ptr != c.ptr and await d.increment() == 0


async def test_facade_load_classmethod(stubs: Path) -> None:
    mod = _import(stubs / "counter.py")
    facade = await mod.CounterSpirit.load(SPIRITS / "counter.wasm", name="typed")
    async with facade.spirit:
        assert facade.spirit.name == "typed"
        assert await facade.add_numbers(40, 2) == 42


# ---- geometry: several genes, mixed field widths ------------------------------------------


async def test_geometry_stub(stubs: Path) -> None:
    mod = _import(stubs / "geometry.py")
    mixed = mod.MIXED_LAYOUT
    assert (mixed.size, mixed.alignment) == (16, 8)
    assert [(f.name, f.offset) for f in mixed.fields] == [("count", 0), ("active", 4), ("value", 8)]
    assert [(f.name, f.offset) for f in mod.POINT_LAYOUT.fields] == [("x", 0), ("y", 8)]
    async with await load_spirit(SPIRITS / "geometry.wasm") as spirit:
        geo = spirit.as_(mod.GeometrySpirit)
        p = await geo.new_point(3, 4)
        assert await p.sum() == 7
        assert await p.scale(2) is None
        assert await p.read() == mod.Point(x=6, y=8)
        m = await geo.new_mixed(3, True, 0.5)
        assert await m.describe() == 4.5
        state = await m.read()
        assert state == mod.Mixed(count=3, active=True, value=0.5)
        assert state.active is True
        off = await geo.new_mixed(2, False, 0.25)
        assert await off.describe() == 2.25
        assert (await off.read()).active is False


# ---- strings and host imports -------------------------------------------------------------


async def test_strings_stub(stubs: Path) -> None:
    mod = _import(stubs / "strings.py")
    async with await load_spirit(SPIRITS / "strings.wasm") as spirit:
        s = spirit.as_(mod.StringsSpirit)
        assert await s.greeting() == "hello"
        assert await s.other() == "wörld"
        assert await s.echo("héllo") == "héllo"
        assert await s.upper("abc é") == "ABC é"
        assert await s.str_len("wörld") == 6
        assert await s.first_byte("A") == 65
        assert await s.checksum("ab") == 97 + 98
        with pytest.raises(LayoutError, match="UTF-8"):
            await s.invalid_utf8()


async def test_hello_world_stub_and_host_protocol(stubs: Path) -> None:
    mod = _import(stubs / "hello_world.py")
    lines: list[str] = []
    async with await load_spirit(SPIRITS / "hello_world.wasm", stdout=lines.append) as spirit:
        hello = spirit.as_(mod.HelloWorldSpirit)
        assert await hello.greet() is None
        await hello.greet_name("Ada")
    assert "".join(lines) == "Hello, World!Ada"
    host = mod.HelloWorldHost
    assert getattr(host, "_is_protocol", False)
    assert list(inspect.signature(host.vudo_print).parameters) == ["self", "ptr", "len"]


def test_host_protocol_lists_every_import(stubs: Path) -> None:
    mod = _import(stubs / "abi_probe.py")
    wanted = {"vudo_print", "vudo_now", "vudo_random", "vudo_abort", "vudo_panic"}
    assert wanted <= set(vars(mod.AbiProbeHost))
    text = (stubs / "abi_probe.py").read_text()
    assert "def vudo_now(self) -> int:" in text
    assert "def vudo_random(self) -> float:" in text
    # calculator imports nothing: no Protocol at all
    assert "Protocol" not in (stubs / "calculator.py").read_text()


async def test_calculator_stub_types(stubs: Path) -> None:
    mod = _import(stubs / "calculator.py")
    async with await load_spirit(SPIRITS / "calculator.wasm") as spirit:
        calc = spirit.as_(mod.CalculatorSpirit)
        assert await calc.add(40, 2) == 42
        assert await calc.divmod(17, 5) == (3, 2)
        assert await calc.average(1.0, 2.0) == 1.5
        assert await calc.is_even(4) is True
        assert await calc.noop() is None


# ---- genes as parameters, enums, nested genes ---------------------------------------------


async def test_gene_parameters_enums_and_nested_genes(stubs: Path) -> None:
    mod = _import(stubs / "shapes.py")
    assert [(f.name, f.offset) for f in mod.TAGGED_LAYOUT.fields] == [
        ("color", 0),
        ("label", 4),
        ("at", 8),
    ]
    assert mod.TAGGED_LAYOUT.field("at").type is mod.POINT_LAYOUT
    assert [c.name for c in mod.Color] == ["Red", "Green", "Blue"] and mod.Color.Blue == 2
    async with await load_spirit(stubs / "shapes.wat") as spirit:
        s = spirit.as_(mod.ShapesSpirit)
        assert await s.manhattan(mod.Point(3, 4)) == 7  # copied into the Spirit's memory
        p = await s.new_point(1, 2)
        assert await s.manhattan(p) == 3  # a handle passes its pointer
        nxt = await s.next_color(mod.Color.Blue)
        assert nxt is mod.Color.Red
        t = await s.new_tagged(mod.Color.Green, "hi", mod.Point(5, 6))
        assert await t.label() == "hi"
        assert await t.read() == mod.Tagged(color=mod.Color.Green, label="hi", at=mod.Point(5, 6))
        assert isinstance((await t.read()).color, mod.Color)
        value = mod.Tagged(mod.Color.Red, "by value", mod.Point(9, 1))
        assert await s.tagged_x(value) == 9
        with pytest.raises(TypeError, match="gene or a gene handle"):
            await s.manhattan(object())
        async with await load_spirit(stubs / "shapes.wat") as other:
            foreign = await other.as_(mod.ShapesSpirit).new_point(1, 1)
            with pytest.raises(VudoError, match="another Spirit"):
                await s.manhattan(foreign)


async def test_extends_nested_and_enum_fields_round_trip(stubs: Path) -> None:
    eco = _import(stubs / "ecosystem.py")
    assert issubclass(eco.Creature, eco.Organism)
    assert issubclass(eco.CreatureHandle, eco.OrganismHandle)
    creature, organism = eco.CREATURE_LAYOUT, eco.ORGANISM_LAYOUT
    assert creature.extends is organism
    assert creature.fields[: len(organism.fields)] == organism.fields
    assert creature.field("position").type is eco.POSITION_LAYOUT
    assert [m.name for m in eco.CreatureMood] == ["Calm", "Angry"]
    value = eco.Creature(
        id=7,
        energy=50.0,
        alive=True,
        position=eco.Position(x=1, y=2),
        diet=eco.Diet.Omnivore,
        moves=eco.Locomotion.Fly,
        name="Rex",
        tags=0,
        parent=0,
        scores=0,
        speed=1.5,
        age=3,
        nickname="none",
        mood=eco.CreatureMood.Angry,
    )
    async with await load_spirit(SPIRITS / "counter.wasm") as spirit:  # any Spirit with memory
        assert spirit.memory is not None
        ptr = spirit.memory.new_gene(value, creature)
        assert await eco.CreatureHandle(spirit, ptr).read() == value
        assert await eco.OrganismHandle(spirit, ptr).read() == eco.Organism(7, 50.0, True)


def test_genes_that_cannot_be_laid_out_keep_their_handles() -> None:
    dol = parse_dol(
        """
        gen Box<T> { has item: T  fun size() -> i64 { return 1 } }
        gen Orphan extends Missing { has x: i64 }
        gen Holder { has inner: Elsewhere }
        gen Loop { has next: Loop }
        gen Fine { has loop_ref: &Loop }
        fun open(b: Box) -> Box { return b }
        """,
        "odd.dol",
    )
    text = generate_from_dol(dol, "odd.dol")
    assert "BOX_LAYOUT" not in text and "class BoxHandle(GeneHandle):" in text
    assert "is generic over T" in text
    assert "its parent gene Missing is not declared in this file" in text
    assert "odd.dol:4:26: field inner: gene Elsewhere is not declared" in text
    assert "contains itself by value" in text
    assert "FINE_LAYOUT = GeneLayout.from_fields(" in text
    assert "async def open(self, b: BoxHandle, *, timeout: float | None = None) -> BoxHandle:" in (
        text
    )
    namespace: dict[str, Any] = {}
    exec(compile(text, "odd.py", "exec"), namespace)
    assert namespace["FINE_LAYOUT"].size == 4


def test_python_keywords_and_clashing_names_are_renamed() -> None:
    dol = parse_dol(
        """
        gen Spirit { has from: i64  has l: i64  fun read() -> i64 { return 1 } }
        fun load(class: i64, timeout: i64, self: i64) -> i64 { return class }
        """,
        "clash.dol",
    )
    text = generate_from_dol(dol, "clash.dol")
    namespace: dict[str, Any] = {}
    exec(compile(text, "clash.py", "exec"), namespace)
    gene = namespace["Spirit_"]  # not the imported Spirit
    assert [f.name for f in gene.__vudo_layout__.fields] == ["from_", "l_"]
    assert "async def read_(self" in text
    assert "async def load_(\n        self,\n        class_: int,\n        timeout_: int,\n" in text
    assert "class SpiritHandle(GeneHandle):" in text and "SPIRIT_LAYOUT = " in text
    assert "async def read(self) -> Spirit_:" in text


# ---- facades from wasm exports alone ------------------------------------------------------


async def test_wasm_only_calculator(stubs: Path) -> None:
    mod = _import(stubs / "calculator_wasm.py")
    text = (stubs / "calculator_wasm.py").read_text()
    assert "async def add(self, arg0: int, arg1: int, *, timeout" in text
    async with await load_spirit(SPIRITS / "calculator.wasm") as spirit:
        calc = spirit.as_(mod.CalculatorSpirit)
        assert await calc.add(40, 2) == 42
        assert await calc.divmod(7, 2) == (3, 1)
        assert await calc.average(1.0, 2.0) == 1.5
        assert await calc.is_even(3) == 0  # the wasm says i32: no bool without the DOL


async def test_wasm_only_counter(stubs: Path) -> None:
    mod = _import(stubs / "counter_wasm.py")
    assert not hasattr(mod.CounterHandle, "read")
    async with await load_spirit(SPIRITS / "counter.wasm") as spirit:
        counter = spirit.as_(mod.CounterSpirit)
        c = await counter.new_counter(5)
        assert isinstance(c, mod.CounterHandle)
        assert await c.increment() == 6
        assert await c.add(10) == 16
        assert await c.get_value() == 6
        assert await counter.add_numbers(1, 2) == 3


def test_wasm_only_facade_from_bytes_and_host_imports() -> None:
    text = generate_from_wasm((SPIRITS / "hello_world.wasm").read_bytes(), "hello.wasm")
    assert "class HelloSpirit(SpiritFacade):" in text and "class HelloHost(Protocol):" in text
    assert "def vudo_print(self, arg0: int, arg1: int) -> None:" in text
    assert "async def greet_name(self, arg0: int, *, timeout" in text


# ---- errors from `vudo codegen` -----------------------------------------------------------


def test_dol_syntax_error_exits_2_with_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.dol"
    bad.write_text("gen Broken {\n    has x:\n}\n", encoding="utf-8")
    out = tmp_path / "bad.py"
    assert vudo(["codegen", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:1:" in err and "expected a type" in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["missing.dol", "notes.txt", "missing.wasm"])
def test_unusable_sources_exit_2(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("gen X { has a: i64 }")
    assert vudo(["codegen", str(tmp_path / name)]) == 2
    assert name in capsys.readouterr().err


def test_stdout_when_no_output_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert vudo(["codegen", str(SPIRITS / "counter.dol")]) == 0
    assert "class CounterSpirit(SpiritFacade):" in capsys.readouterr().out


# ---- the checked-in stubs in codegen/ -----------------------------------------------------


def test_checked_in_stubs_are_fresh() -> None:
    stale = refresh(ROOT, check=True)
    assert not stale, (
        f"the stubs in codegen/ differ from what spirits/*.dol generates: {', '.join(stale)};"
        f" refresh them with `{REFRESH_COMMAND}` (from the repository root)"
    )


def test_checked_in_stubs_cover_every_spirit() -> None:
    stems = {p.stem for p in SPIRITS.glob("*.dol")}
    assert stems and stems <= {p.stem for p in (ROOT / "codegen").glob("*.py")}


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "spirits").mkdir()
    for name in ("counter.dol", "geometry.dol"):
        shutil.copy(SPIRITS / name, tmp_path / "spirits" / name)
    (tmp_path / "codegen").mkdir()
    yield tmp_path


def test_refresh_writes_removes_stale_and_keeps_hand_written(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = checkout / "codegen"
    (out / "__init__.py").write_text('"""Hand-written."""\n')
    (out / "gone.py").write_text(GENERATED_MARK + "\n# Source: spirits/gone.dol\n")
    (out / "geometry.py").write_text("stale\n")
    assert generator_main(["--check", "--root", str(checkout)]) == 1
    assert REFRESH_COMMAND in capsys.readouterr().err
    assert (out / "geometry.py").read_text() == "stale\n"
    assert generator_main(["--refresh", "--root", str(checkout)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "counter.py", "geometry.py"]
    assert (out / "counter.py").read_text() == generate_from_dol(
        parse_dol((SPIRITS / "counter.dol").read_text()), "spirits/counter.dol"
    )
    assert generator_main(["--check", "--root", str(checkout)]) == 0
    assert refresh(checkout) == []


def test_refresh_without_spirits_is_an_error(tmp_path: Path) -> None:
    assert generator_main(["--check", "--root", str(tmp_path)]) == 2
    with pytest.raises(VudoError, match="no spirits"):
        refresh(tmp_path)


def test_refresh_runs_as_a_module(checkout: Path) -> None:
    module = "vudo_runtime.codegen.generator"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", module, "--refresh", "--root", str(checkout)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wrote", "codegen/counter.py", "wrote", "codegen/geometry.py"]


def test_checked_in_counter_stub_imports_as_a_package() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        counter = importlib.import_module("codegen.counter")
    finally:
        sys.path.remove(str(ROOT))
    assert counter.CounterSpirit.__vudo_facade__ is True


async def test_stubs_share_gene_handle_and_spirit_facade() -> None:
    counter = _import(ROOT / "codegen" / "counter.py")
    assert issubclass(counter.CounterSpirit, SpiritFacade)
    assert issubclass(counter.CounterHandle, GeneHandle)
    assert counter.GeneHandle is GeneHandle  # imported, not defined again
    async with await load_spirit(SPIRITS / "calculator.wasm") as spirit:  # exports no memory
        assert isinstance(spirit.as_(counter.CounterSpirit), SpiritFacade)
        with pytest.raises(VudoError, match="exports no memory, so it holds no genes"):
            gene_memory(spirit)
        with pytest.raises(MemoryAccessError, match="new_Counter returned 0, its heap is full"):
            allocated(spirit, "new_Counter", 0)
        assert allocated(spirit, "new_Counter", -8) == 0xFFFFFFF8


def test_constructor_parameters_do_not_hide_allocated() -> None:
    text = generate_from_dol(parse_dol("gen Block { has allocated: bool }"), "block.dol")
    assert "async def new_block(self, allocated_: bool, *" in text
    assert 'allocated(self.spirit, "new_Block", ptr)' in text


# ---- examples -----------------------------------------------------------------------------


def _example(name: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_example_basic_spirit(tmp_path: Path) -> None:
    out = _example("basic_spirit.py", tmp_path)
    assert "add(40, 2) = 42" in out
    assert "divmod(17, 5) = (3, 2)" in out
    assert "div(1, 0) trapped:" in out
    assert "sync: mul(6, 7) = 42" in out
    assert "sync: is_even(10) = True" in out


def test_example_typed_stubs(tmp_path: Path) -> None:
    out = _example("typed_stubs.py", tmp_path)
    assert "increment() -> 6" in out
    assert "read() -> Counter(value=6)" in out
    assert "add_numbers(2, 3) -> 5" in out
    assert "greeting() -> 'hello'" in out
    assert "str_len('wörld') -> 6 bytes" in out
