"""Spirit packages (issue 14): a folder with a ``Spirit.dol`` becomes one Python package.

The fixture ``tests/dol/packages/cosmos`` is modelled on the DOL repository's multi-module
Spirits (examples/spirits/physics): a line-form manifest with docs, config, targets, a
registry dependency, public and private modules (one of them missing), an entry module
with consts, cross-module genes (waves and particles use mechanics' Vector3), inheritance
with ``is``, an enum in a gene, a module folder (``fields/mod.dol`` with its own ``mod``
lines), ``extern "C"`` and ``-> !``. ``tests/dol/packages/palette`` has the block form
and reaches its modules through ``use`` only.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vudo_runtime import VudoError, load_spirit
from vudo_runtime.codegen import (
    codegen,
    describe_package,
    format_package,
    generate_file,
    generate_package,
    inspect_package,
    is_spirit_package,
    load_package,
    write_package,
)
from vudo_runtime.codegen.emit import GENERATED_MARK

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ROOT / "tests" / "dol" / "packages"
COSMOS = PACKAGES / "cosmos"
PALETTE = PACKAGES / "palette"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkgs")
    write_package(COSMOS, out / "cosmos")
    write_package(PALETTE, out / "palette")
    return out


@pytest.fixture
def imported(written: Path) -> Iterator[Path]:
    sys.path.insert(0, str(written))
    try:
        yield written
    finally:
        sys.path.remove(str(written))
        for name in list(sys.modules):
            if name.split(".")[0] in ("cosmos", "palette"):
                del sys.modules[name]


def test_modules_found_with_their_visibility() -> None:
    package = load_package(COSMOS)
    assert package.manifest.qualified_name == "cosmos @ 0.9.0"
    assert package.python_name == "cosmos"
    rows = [(m.name, m.public, m.pyname, m.missing, m.declared_by) for m in package.modules]
    assert rows == [
        ("lib", True, "lib", False, "Spirit.dol"),
        ("particles", True, "particles", False, "Spirit.dol"),
        ("mechanics", True, "mechanics", False, "Spirit.dol"),
        ("waves", True, "waves", False, "Spirit.dol"),
        ("fields", True, "fields", False, "Spirit.dol"),
        ("constants", False, "_constants", False, "Spirit.dol"),
        ("scratch", False, "_scratch", True, "Spirit.dol"),  # declared, no scratch.dol
        ("fields.scalar", True, "fields_scalar", False, "mod.dol"),
        ("fields.detail", False, "_fields_detail", True, "mod.dol"),
    ]
    assert package.modules[0].entry and package.entry_path == COSMOS / "lib.dol"
    assert load_package(COSMOS / "Spirit.dol") == package  # the manifest itself works too


def test_block_form_and_modules_reached_through_use() -> None:
    package = load_package(PALETTE)
    assert (package.manifest.name, package.manifest.version) == ("palette", "0.2.0")
    assert package.manifest.dependencies == ("@univrs/cosmos @ >=0.9.0",)
    assert [(m.name, m.public, m.pyname) for m in package.modules] == [
        ("lib", True, "lib"),
        ("color", True, "color"),  # `pub use color.{...}`
        ("blend", False, "_blend"),  # `use blend.{...}`
    ]


def test_generated_files() -> None:
    files = generate_package(COSMOS)
    assert list(files) == [
        "__init__.py",
        "_constants.py",
        "fields.py",
        "fields_scalar.py",
        "lib.py",
        "mechanics.py",
        "particles.py",
        "waves.py",
    ]
    for name, text in files.items():
        lines = text.splitlines()
        assert lines[0] == GENERATED_MARK, name
        assert "cosmos @ 0.9.0" in lines[2], name  # the manifest's name and version
        compile(text, name, "exec")
    assert files["particles.py"].splitlines()[1:3] == [
        "# Source: cosmos/particles.dol",
        "# Spirit: cosmos @ 0.9.0 (public module particles)",
    ]
    assert "(private module constants)" in files["_constants.py"].splitlines()[2]
    init = files["__init__.py"]
    assert "Declared but not found, so not generated: scratch, fields.detail." in init
    assert generate_package(COSMOS) == files  # deterministic


def test_package_imports_and_honours_pub_mod(imported: Path) -> None:
    cosmos = importlib.import_module("cosmos")
    assert (cosmos.SPIRIT_NAME, cosmos.SPIRIT_VERSION, cosmos.__version__) == (
        "cosmos",
        "0.9.0",
        "0.9.0",
    )
    public = {"lib", "particles", "mechanics", "waves", "fields", "fields_scalar"}
    assert public <= set(cosmos.__all__) and "_constants" not in cosmos.__all__
    assert cosmos.CosmosSpirit is cosmos.lib.CosmosSpirit
    constants = importlib.import_module("cosmos._constants")  # private, still importable
    assert constants.PLANCK == 6.62607015e-34
    assert pytest.approx(constants.PLANCK / (2 * 3.141592653589793)) == constants.HBAR
    assert cosmos.lib.SPEED_OF_LIGHT == 299792458.0 and cosmos.lib.MAX_PARTICLES == 1_000_000
    assert cosmos.lib.BANNER == 'cosmos "0.9" \\ ready'


def test_genes_across_modules(imported: Path) -> None:
    particles = importlib.import_module("cosmos.particles")
    mechanics = importlib.import_module("cosmos.mechanics")
    waves = importlib.import_module("cosmos.waves")
    # waves and particles use mechanics' Vector3: imported, the very same layout
    assert waves.Vector3 is mechanics.Vector3
    assert waves.WAVE_LAYOUT.field("direction").type is mechanics.VECTOR3_LAYOUT
    assert particles.PARTICLE_LAYOUT.field("position").type is mechanics.VECTOR3_LAYOUT
    # inheritance with `is`: the parent's fields first, at the parent's offsets
    electron, particle = particles.ELECTRON_LAYOUT, particles.PARTICLE_LAYOUT
    assert electron.extends is particle
    assert electron.fields[: len(particle.fields)] == particle.fields
    own = electron.fields[len(particle.fields) :]
    assert [f.name for f in own] == ["lepton_number", "generation"]
    assert own[0].offset == particle.size
    assert issubclass(particles.Electron, particles.Particle)
    assert issubclass(waves.StandingWave, waves.Wave)
    # an enum in a gene; a gene that is an enum
    assert [m.name for m in particles.Mode] == ["Counting", "Tracking", "Idle"]
    assert particles.Detector().mode is particles.Mode.Idle
    assert [m.name for m in particles.Polarization] == ["Horizontal", "Vertical", "Circular"]
    # defaults and validators
    v = mechanics.Vector3(1.0, 2.0, 3.0)
    e = particles.Electron(mass=9.1e-31, spin=particles.Spin(), position=v)
    assert (e.charge, e.lepton_number, e.generation) == (0.0, 1, 1)
    with pytest.raises(ValueError, match=r"Electron\.generation must satisfy"):
        particles.Electron(mass=9.1e-31, spin=particles.Spin(), position=v, generation=4)
    with pytest.raises(ValueError, match="Particle breaks rule light_enough"):
        particles.Particle(1.0, particles.Spin(), v)
    wave = waves.StandingWave(direction=v)
    assert (wave.amplitude, wave.nodes) == (1.0, 2)
    scalar = importlib.import_module("cosmos.fields_scalar")
    with pytest.raises(ValueError, match=r"ScalarField\.width"):
        scalar.ScalarField(width=0)


async def test_cross_module_gene_round_trips_through_memory(imported: Path) -> None:
    particles = importlib.import_module("cosmos.particles")
    mechanics = importlib.import_module("cosmos.mechanics")
    value = particles.Electron(
        mass=9.1e-31,
        charge=-1.6e-19,
        spin=particles.Spin(1),
        position=mechanics.Vector3(1.0, 2.0, 3.0),
        generation=2,
    )
    async with await load_spirit(ROOT / "spirits" / "counter.wasm") as spirit:
        assert spirit.memory is not None
        ptr = spirit.memory.new_gene(value, particles.ELECTRON_LAYOUT)
        assert await particles.ElectronHandle(spirit, ptr).read() == value
        assert (await particles.ParticleHandle(spirit, ptr).read()).charge == -1.6e-19


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_generated_packages_pass_mypy_strict_and_ruff(written: Path) -> None:
    pytest.importorskip("mypy")
    result = _run(sys.executable, "-m", "mypy", "--strict", str(written / "cosmos"))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run(sys.executable, "-m", "mypy", "--strict", str(written / "palette"))
    assert result.returncode == 0, result.stdout + result.stderr
    pytest.importorskip("ruff")
    result = _run(sys.executable, "-m", "ruff", "check", "--no-cache", str(written))
    assert result.returncode == 0, result.stdout + result.stderr


def test_write_package_removes_stale_generated_files(tmp_path: Path) -> None:
    out = tmp_path / "cosmos"
    out.mkdir()
    (out / "gone.py").write_text(f"{GENERATED_MARK}\n# Source: x\n", encoding="utf-8")
    (out / "mine.py").write_text("# hand-written\n", encoding="utf-8")
    written = write_package(COSMOS, out)
    assert sorted(p.name for p in written) == sorted(generate_package(COSMOS))
    assert not (out / "gone.py").exists() and (out / "mine.py").exists()


def test_codegen_api_for_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `vudo codegen DIR [-o OUT]` calls: `codegen(source, output)`."""
    text, files = codegen(COSMOS, tmp_path / "out")
    assert text is None and (tmp_path / "out" / "__init__.py") in files
    monkeypatch.chdir(tmp_path)
    _, files = codegen(PALETTE)  # no -o: ./<spirit name>
    assert (tmp_path / "palette" / "color.py") in files
    text, files = codegen(ROOT / "spirits" / "counter.dol")  # a file: text to print
    assert text is not None and text.startswith(GENERATED_MARK) and files == []
    text, files = codegen(ROOT / "spirits" / "counter.dol", tmp_path / "c" / "counter.py")
    assert text is None and files == [tmp_path / "c" / "counter.py"]
    with pytest.raises(VudoError, match="is a Spirit package"):
        generate_file(COSMOS)


def test_describe_and_format_for_inspect() -> None:
    """What `vudo inspect DIR [--json]` calls: `inspect_package(source, as_json=...)`."""
    assert is_spirit_package(COSMOS) and is_spirit_package(COSMOS / "Spirit.dol")
    assert not is_spirit_package(ROOT / "spirits") and inspect_package(ROOT / "spirits") is None
    info = describe_package(COSMOS)
    assert (info["spirit"], info["version"], info["entry"]) == ("cosmos", "0.9.0", "cosmos/lib.dol")
    assert info["dependencies"] == ["@univrs/std ^1.0"]
    particles = next(m for m in info["modules"] if m["name"] == "particles")
    assert particles["python_module"] == "cosmos.particles" and particles["public"]
    assert particles["genes"] == ["Spin", "Particle", "Electron", "Photon", "Detector"]
    assert particles["host_imports"] == ["cosmos_abort", "cosmos_log"]
    text = format_package(info)
    assert text.startswith("Spirit cosmos @ 0.9.0 (cosmos/Spirit.dol)\n")
    assert "  pub   particles      cosmos/particles.dol -> cosmos.particles: 5 genes" in text
    assert "  mod   constants      cosmos/constants.dol -> cosmos._constants: 4 consts" in text
    assert "  mod   scratch        missing (declared in Spirit.dol)" in text
    assert inspect_package(COSMOS) == text
    assert json.loads(inspect_package(COSMOS, as_json=True) or "") == info


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"lib.dol": "fun f() { }"}, "no Spirit.dol here"),
        ({"Spirit.dol": "// nothing\n"}, "no Spirit manifest in it"),
    ],
)
def test_not_a_package(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(VudoError, match=message):
        load_package(tmp_path)


def test_a_module_with_a_syntax_error_names_its_file(tmp_path: Path) -> None:
    from vudo_runtime import DolSyntaxError

    (tmp_path / "Spirit.dol").write_text("spirit broken @ 0.1.0\npub mod bad\n", encoding="utf-8")
    (tmp_path / "lib.dol").write_text("module broken\n", encoding="utf-8")
    (tmp_path / "bad.dol").write_text("gen A {\n  has x:\n}\n", encoding="utf-8")
    with pytest.raises(DolSyntaxError) as info:
        generate_package(tmp_path)
    assert info.value.file == str(tmp_path / "bad.dol") and info.value.line == 3


def test_cyclic_modules_still_generate(tmp_path: Path) -> None:
    (tmp_path / "Spirit.dol").write_text(
        "spirit loop @ 1.0.0\npub mod a\npub mod b\n", encoding="utf-8"
    )
    (tmp_path / "a.dol").write_text(
        "use local::b::B\npub gen A { has b: B }\npub enum Ka { X }", encoding="utf-8"
    )
    (tmp_path / "b.dol").write_text(
        "use local::a::Ka\npub gen B { has k: Ka }\npub gen C { has a: A }", encoding="utf-8"
    )
    files = generate_package(tmp_path)
    for name, text in files.items():
        compile(text, name, "exec")

    # the cycle is cut (a comes after b, so b cannot see a): what b misses is said, not guessed
    def said(text: str) -> str:
        return " ".join(text.replace("#", " ").split())

    assert "field a: gene A is not declared in this Spirit package" in said(files["b.py"])
    assert "field b: gene B has no layout" in said(files["a.py"])
