"""The DOL front end on the language as real DOL projects write it (issue 14).

Every construct the DOL Spirits use that the parser used to refuse, each in the shape
the DOL repository's own sources have it: gene inheritance with ``is``, Spirit manifests,
an ``enum`` inside a gene, the never type ``-> !``, ``extern "C"``; and what else the
language has (traits, systems, rules, ``where``, defaults, consts, ``sex var``, ``--``
comments, docs blocks before the declaration they document). Also: the front end is
linear in its input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from vudo_runtime import DolSyntaxError
from vudo_runtime.codegen import (
    Enum,
    Function,
    ModDecl,
    SpiritManifest,
    TypeRef,
    Use,
    is_void,
    parse_dol,
    parse_dol_file,
    tokenize,
    wasm_types,
)

FIXTURES = Path(__file__).resolve().parent / "dol"
ROOT = FIXTURES.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def T(name: str, *args: TypeRef) -> TypeRef:
    return TypeRef(name, args)


# --- gene inheritance ---------------------------------------------------------------------


def test_gene_inheritance_with_is() -> None:
    dol = parse_dol(
        """
        pub gen Particle {
            has mass: f64
            has charge: f64
        }

        pub gen Electron is Particle {
            has lepton_number: i8
            has generation: u8
        }
        type Muon is Particle { has lifetime: f64 }
        gen Box<T> is Container<T> { has item: T }
        """
    )
    particle, electron, muon, box = dol.genes
    assert electron.extends == "Particle" and electron.public
    assert [f.name for f in electron.fields] == ["lepton_number", "generation"]
    assert muon.extends == "Particle"
    assert box.extends == "Container" and box.type_params == ("T",)
    assert dol.ancestry(electron) == (particle, electron)


def test_is_inside_a_gene_is_still_a_dol_1_statement() -> None:
    gene = parse_dol("gene container.exists {\n  container is running\n}").genes[0]
    assert gene.extends is None and gene.fields == ()


# --- Spirit manifests ---------------------------------------------------------------------

LINE_MANIFEST = """\
// DOL v0.9.0 Physics Spirit Package
spirit physics @ 0.9.0

docs {
    Physics modeling Spirit for DOL v0.9.0.

    Usage:
        use @univrs/physics @ ^0.9
}

config {
    entry: "lib.dol"
    target: wasm32
    features: ["f64-precision", "simd"]
}

targets {
    rust: { edition: "2021" }
    wasm: { optimize: true, target: "wasm32-unknown-unknown" }
}

requires {
    @univrs/std: "^0.8"
}

use @univrs/chemistry @ ^0.9

pub mod particles
pub mod mechanics
mod constants
"""


def test_spirit_manifest_line_form() -> None:
    dol = parse_dol(LINE_MANIFEST, "Spirit.dol")
    spirit = dol.spirit
    assert isinstance(spirit, SpiritManifest)
    assert (spirit.name, spirit.version, spirit.qualified_name) == (
        "physics",
        "0.9.0",
        "physics @ 0.9.0",
    )
    assert spirit.doc is not None and spirit.doc.startswith("Physics modeling Spirit")
    assert "use @univrs/physics @ ^0.9" in spirit.doc  # prose, not a statement
    assert (spirit.entry, spirit.target, spirit.features) == (
        "lib.dol",
        "wasm32",
        ("f64-precision", "simd"),
    )
    assert [(m.name, m.public) for m in spirit.modules] == [
        ("particles", True),
        ("mechanics", True),
        ("constants", False),
    ]
    assert spirit.dependencies == ("@univrs/std ^0.8", "@univrs/chemistry ^0.9")
    assert dol.items == ()
    assert dol.uses == (Use("@univrs/chemistry", False, "^0.9", 26, 1),)


def test_spirit_manifest_docs_string_and_block_form() -> None:
    short = parse_dol(
        'spirit minimal_test @ 0.1.0\n\ndocs "Minimal test, \\"quoted\\""\n\n'
        'config {\n    entry: "src/lib.dol"\n    target: wasm32\n}\n'
    ).spirit
    assert short is not None
    assert (short.name, short.doc, short.entry) == (
        "minimal_test",
        'Minimal test, "quoted"',
        "src/lib.dol",
    )
    block = parse_dol(
        """
        spirit Visual {
            has name: "visual"
            has version: "0.1.0"
            has authors: ["VUDO Team <team@univrs.io>"]
            has lib: "lib.dol"
            has dependencies: [
                "@univrs/physics @ >=0.1.0",
                "@univrs/chemistry @ >=0.1.0"
            ]
            requires @univrs/std: "^1.0"
            rule valid { this.version != "" }
            docs {
                Visual Arts Spirit.
            }
        }
        """
    ).spirit
    assert block is not None
    assert (block.name, block.version, block.entry, block.doc) == (
        "visual",
        "0.1.0",
        "lib.dol",
        "Visual Arts Spirit.",
    )
    assert block.dependencies == (
        '@univrs/std: "^1.0"',
        "@univrs/physics @ >=0.1.0",
        "@univrs/chemistry @ >=0.1.0",
    )


def test_actor_style_spirit_block_is_skipped() -> None:
    dol = parse_dol(
        'spirit Counter @0.1.0 {\n    """\n    A counter.\n    """\n'
        "    mut value: Int = 0\n    fn init() -> Unit { self.value = 0; }\n}\n"
        "fun after() -> i64 { return 1 }"
    )
    assert dol.spirit is None and [f.name for f in dol.functions] == ["after"]


def test_mod_use_and_module_lines_are_kept() -> None:
    dol = parse_dol(
        """
        module physics.particles @ 0.9.0
        use local::lib::SPEED_OF_LIGHT
        pub use color.{ RGB, mix }
        use @univrs/physics.waves.{ Wave }
        pub mod particles
        mod constants
        mod inline { fun hidden() { } }
        """
    )
    assert dol.module is not None
    assert (dol.module.name, dol.module.version) == ("physics.particles", "0.9.0")
    assert [(u.path, u.public, u.local_root) for u in dol.uses] == [
        ("local::lib::SPEED_OF_LIGHT", False, "lib"),
        ("color.{RGB,mix}", True, "color"),
        ("@univrs/physics.waves.{Wave}", False, None),
    ]
    assert dol.mods == (
        ModDecl("particles", True, False, 6, 13),
        ModDecl("constants", False, False, 7, 9),
        ModDecl("inline", False, True, 8, 9),
    )
    assert dol.functions == ()


# --- enums inside genes -------------------------------------------------------------------


def test_anonymous_enum_in_a_gene_makes_the_gene_an_enum() -> None:
    dol = parse_dol(
        """
        gen Task {
            has priority: Priority
        }

        gen Priority {
            enum {
                Low,
                Medium,
                High,
                Urgent
            }
        }

        docs {
            Task list using RGA for maintaining causal order.
        }
        """
    )
    (priority,) = dol.enums
    assert priority.name == "Priority" and priority.owner is None
    assert priority.variant_names == ("Low", "Medium", "High", "Urgent")
    assert priority.doc == "Task list using RGA for maintaining causal order."
    assert [g.name for g in dol.genes] == ["Task"]


def test_named_enum_inside_a_gene_is_declared_beside_it() -> None:
    dol = parse_dol(
        """
        gen Detector {
            /// What it is doing.
            enum Mode { Counting, Tracking, Idle }
            has mode: Mode = Mode::Idle
            enum: i64
        }
        """
    )
    (mode,) = dol.enums
    assert (mode.name, mode.owner, mode.doc) == ("Mode", "Detector", "What it is doing.")
    detector = dol.genes[0]
    assert [(f.name, str(f.type), f.default) for f in detector.fields] == [
        ("mode", "Mode", "Mode::Idle"),
        ("enum", "i64", None),  # a field called `enum`
    ]
    assert [type(i).__name__ for i in dol.items] == ["Enum", "Gene"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gen P { has x: i64\n enum { A } }", "gene 'P' is an enum"),
        ("gen P { enum { A } enum { B } }", "declares a second anonymous enum"),
        ("gen P { enum Q { A } }\nenum Q { B }", "duplicate declaration of enum 'Q'"),
    ],
)
def test_enum_in_gene_errors(source: str, message: str) -> None:
    with pytest.raises(DolSyntaxError, match=message):
        parse_dol(source)


# --- the never type, extern "C" -----------------------------------------------------------


def test_never_type() -> None:
    dol = parse_dol("sex extern fun exit(code: i32) -> !\nfun spin() -> ! { loop { } }")
    exit_, spin = dol.functions
    assert exit_.returns == T("!") and is_void(exit_.returns) and exit_.is_host_import
    assert spin.returns == T("!") and spin.has_body
    assert wasm_types(exit_.returns) == ()


def test_extern_c_declarations() -> None:
    dol = parse_dol(
        """
        // Extern declarations
        sex extern "C" fun printf(fmt: Ptr<i8>, ...) -> i32
        sex extern "C" fun malloc(size: u64) -> Ptr<()>
        extern "C" fun free(ptr: *mut u8)
        pub extern "wasi" {
            /// Clock.
            fun clock() -> i64
            sex fun write(fd: i32, ptr: i32, len: i32) -> i32;
        }
        """
    )
    printf, malloc, free, clock, write = dol.functions
    assert (printf.abi, printf.variadic, printf.is_sex, printf.is_host_import) == (
        "C",
        True,
        True,
        True,
    )
    assert [p.name for p in printf.params] == ["fmt"]
    assert str(malloc.returns) == "Ptr<()>" and not malloc.variadic
    assert free.params[0].type == TypeRef("&", (T("u8"),)) and free.abi == "C"
    assert (clock.abi, clock.public, clock.doc, clock.is_host_import) == (
        "wasi",
        True,
        "Clock.",
        True,
    )
    assert write.is_sex and write.abi == "wasi"
    assert [f.name for f in dol.host_imports] == ["printf", "malloc", "free", "clock", "write"]


def test_function_types_with_sex_and_impl() -> None:
    dol = parse_dol(
        "type Callback = sex fun(string) -> ()\n"
        "fun apply(f: impl Fn(f64) -> f64, g: dyn Shape) -> bool { }"
    )
    (alias,) = dol.type_aliases
    assert str(alias.target) == "fun(string) -> ()"
    apply = dol.functions[0]
    assert str(apply.params[0].type) == "fun(f64) -> f64"
    assert apply.params[1].type == T("Shape")


# --- traits, systems, rules, where, defaults, consts, sex var -----------------------------


def test_traits_systems_and_rules_are_kept_by_name() -> None:
    dol = parse_dol(
        """
        docs {
            The module.
        }

        docs {
            Things that move.
        }

        pub trait Movable<T>: Positioned {
            fun move_by(dx: f64) -> Self
            law identity { move_by(0.0) == this }
        }

        system Solver @ 0.9.0 {
            requires Body >= 0.9.0
            state bodies: List<Body>
        }

        rule positive_mass {
            each Body has mass > 0
        }
        docs {
            A rule, documented DOL 1.0 style below it.
        }

        constraint legacy.rule { mass never negative }
        """
    )
    assert dol.doc == "The module."
    (movable,) = dol.traits
    assert (movable.name, movable.public, movable.doc) == ("Movable", True, "Things that move.")
    (solver,) = dol.systems
    assert (solver.name, solver.version) == ("Solver", "0.9.0")
    positive, legacy = dol.rules
    assert positive.text == "each Body has mass > 0"
    assert positive.doc == "A rule, documented DOL 1.0 style below it."
    assert legacy.name == "legacy.rule"
    assert dol.items == ()


def test_gene_rules_defaults_and_where() -> None:
    gene = parse_dol(
        """
        gen Body<T> where T: Copy {
            has mass: f64 = 1.0 where mass > 0.0
            has tag: T
            rule heavy_enough { this.mass >= 0.001 }
            constraint bounded { this.mass < 1e9 }
            law unchecked(a, b) { a == b }
        }
        """
    ).genes[0]
    assert gene.type_params == ("T",)
    mass = gene.field("mass")
    assert mass is not None and (mass.default, mass.constraint) == ("1.0", "mass > 0.0")
    assert [(r.name, r.text) for r in gene.rules] == [
        ("heavy_enough", "this.mass >= 0.001"),
        ("bounded", "this.mass < 1e9"),
    ]


def test_consts_and_sex_vars() -> None:
    dol = parse_dol(
        """
        pub const SPEED_OF_LIGHT: f64 = 299792458.0
        pub const AVOGADRO: f64 = 6.02214076e23
        const STOP_CODONS: Vec<string> = vec!["UAA", "UAG", "UGA"]
        sex var COUNTER: i64 = 0
        pub sex var LOG: List<string> = []
        var plain: i32
        """
    )
    assert [(c.name, c.value) for c in dol.consts] == [
        ("SPEED_OF_LIGHT", "299792458.0"),
        ("AVOGADRO", "6.02214076e23"),
        ("STOP_CODONS", 'vec!["UAA", "UAG", "UGA"]'),
    ]
    assert [(v.name, v.default, v.public) for v in dol.sex_vars] == [
        ("COUNTER", "0", False),
        ("LOG", "[]", True),
        ("plain", None, False),
    ]


# --- comments and docs --------------------------------------------------------------------


def test_dash_dash_comments() -> None:
    dol = parse_dol(
        "-- =====================\n-- Lexer State { (unbalanced in a comment\n"
        "gen Lexer {\n  has pos: i64 -- the offset }\n}\n"
        'fun f() -> string {\n  let s = "--not a comment"  -- but this is }\n  return s\n}\n'
    )
    assert [f.name for f in dol.genes[0].fields] == ["pos"]
    assert [f.name for f in dol.functions] == ["f"]
    tokens, _ = tokenize("a -- b\nc - -d")
    assert [t.text for t in tokens] == ["a", "c", "-", "-", "d", ""]


def test_docs_blocks_document_what_follows_them() -> None:
    dol = parse_dol(
        """module physics.particles @ 0.9.0

docs {
    Particle physics module.
}

use local::lib::SPEED_OF_LIGHT

docs {
    3D position vector in meters.
}

pub gen Position {
    has x: f64
}

docs {
    Electron - fundamental lepton with negative charge.
}

/// And a doc comment.
pub gen Electron is Position {
    has spin: i32

    docs {
        Flips the spin.
    }

    fun flip() -> i32 { return 0 - this.spin }

    docs { At the end: the gene's. }
}

docs {
    Speed of light in vacuum (m/s).
}

pub const C: f64 = 299792458.0

gen Last { }

docs {
    Trailing: no declaration follows, so it documents the gene above.
}
"""
    )
    assert dol.doc == "Particle physics module."
    position, electron, last = dol.genes
    assert position.doc == "3D position vector in meters."
    assert electron.doc == (
        "Electron - fundamental lepton with negative charge.\n\nAnd a doc comment.\n\n"
        "At the end: the gene's."
    )
    assert electron.methods[0].doc == "Flips the spin."
    assert dol.consts[0].doc == "Speed of light in vacuum (m/s)."
    assert last.doc == "Trailing: no declaration follows, so it documents the gene above."


def test_docs_in_function_bodies_and_enums_do_not_break_skipping() -> None:
    dol = parse_dol(
        """
        fun f() -> i64 {
            docs { a lone " quote, an apostrophe's {balanced} prose }
            return 1
        }
        enum E {
            A,
            docs { The variants. }
            B
        }
        fun g() { }
        """
    )
    assert [f.name for f in dol.functions] == ["f", "g"]
    assert dol.enums[0].variant_names == ("A", "B")


# --- the real corpus, in miniature --------------------------------------------------------


def test_features_fixture() -> None:
    dol = parse_dol_file(FIXTURES / "features.dol")
    assert [(type(i).__name__, i.name) for i in dol.items] == [
        ("Const", "MAX_POPULATION"),
        ("Const", "HALF"),
        ("Const", "LIMIT"),
        ("Const", "NAME"),
        ("Const", "FLAGS"),
        ("SexVar", "TICK"),
        ("Enum", "Diet"),
        ("Gene", "Organism"),
        ("Enum", "Mood"),
        ("Gene", "Animal"),
        ("Enum", "Size"),
        ("Gene", "Herd"),
        ("Function", "host_abort"),
        ("Function", "host_printf"),
        ("Function", "host_clock"),
        ("TypeAlias", "Callback"),
        ("Function", "forever"),
        ("Function", "feed"),
    ]
    animal = dol.gene("Animal")
    assert animal is not None and animal.extends == "Organism"
    mood = dol.get("Mood")
    assert isinstance(mood, Enum) and mood.owner == "Animal"
    forever = dol.get("forever")
    assert isinstance(forever, Function) and forever.returns == T("!")
    assert [t.name for t in dol.traits] == ["Grazer"]
    assert [s.name for s in dol.systems] == ["Meadow"]


# --- linear time --------------------------------------------------------------------------


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        parse_dol(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    "unit",
    [
        "V{i},\n",  # one huge enum: was quadratic (duplicate check per variant)
        "p{i}: i64,\n",  # one huge parameter list: was quadratic too
        "/* c {i} */ gen G{i} {{ has x: i64 }}\n",
        'fun f{i}() -> string {{ let s = "}}" /* {{ */ return s }}\n',
        "docs {{ prose {{ {i} }} }}\nconst K{i}: i64 = {i}\n",
    ],
)
def test_front_end_is_linear(unit: str) -> None:
    wrap = {"V": ("enum Big {\n", "}\n"), "p": ("fun f(\n", ") { }\n")}.get(unit[0], ("", ""))

    def source(n: int) -> str:
        return wrap[0] + "".join(unit.format(i=i) for i in range(n)) + wrap[1]

    small, large = source(4000), source(16000)
    ratio = _seconds(large) / _seconds(small)
    assert ratio < 4 * 2.5, f"4x the input took {ratio:.1f}x the time"


def test_a_megabyte_parses_in_well_under_a_second_per_megabyte() -> None:
    from benchmarks.codegen import make_source

    text = make_source(1_000_000)
    assert _seconds(text) < 3.0  # about 0.3 s here; generous for a loaded machine


def test_codegen_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.codegen import main

    assert main(["--quick", "--repeat", "1", "--size", "20000"]) == 0
    out = capsys.readouterr().out
    assert "spirit    after   codegen" in out and "big enum  after   parse" in out
    assert "target: codegen of 1 MB under 1 s" in out
