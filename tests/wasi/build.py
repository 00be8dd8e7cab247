"""Rebuild the committed WASI (preview 1) test fixtures: every ``*.c`` here -> ``*.wasm``.

CI has no clang, so the built modules are committed next to their sources, together
with ``manifest.json``, which records the toolchain, the flags and the SHA-256 of each
source and each module.

    python tests/wasi/build.py            # rebuild every *.wasm and manifest.json
    python tests/wasi/build.py --check    # verify only; exit 1 if anything is stale

Toolchain (Debian 12): ``apt-get install clang lld wasi-libc libclang-rt-dev-wasm32``.
Debian's wasi-libc is laid out multiarch-style under ``/usr`` (``/usr/include/wasm32-wasi``,
``/usr/lib/wasm32-wasi``), so there the sysroot is ``/usr``; a wasi-sdk style sysroot
(``/usr/share/wasi-sysroot``) or ``$WASI_SYSROOT`` is used when present instead.
``$WASI_CC`` overrides the compiler (default ``clang``).

Determinism: compiling and linking are two separate clang calls on purpose. When a
single ``clang -O2 ... -o x.wasm`` call links, clang runs ``wasm-opt`` on the result if
binaryen happens to be on ``PATH``, so the bytes would depend on what else is installed.
A link without any ``-O`` flag never does. ``--strip-debug`` drops the DWARF that
Debian's ``libc.a`` carries (build paths of Debian's builder, ~75 % of the bytes); the
``name`` section (function names in trap backtraces) and ``producers`` section
(``clang version ...``) stay: both are stable for one toolchain.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"

TARGET = "wasm32-wasi"
#: Flags for ``clang -c`` (source -> object). The source is passed by its bare name
#: from a cwd of this directory, though with -g0 no path reaches the module anyway.
COMPILE_FLAGS: tuple[str, ...] = (
    f"--target={TARGET}",
    "-std=gnu17",
    "-O2",
    "-g0",
    "-Wall",
    "-Wextra",
    "-Werror",
)
#: Flags for the link (object -> module). No -O here: see the module docstring.
LINK_FLAGS: tuple[str, ...] = (
    f"--target={TARGET}",
    "-Wl,--strip-debug",
)
#: Candidate sysroots, first hit wins (``$WASI_SYSROOT`` goes before all of them).
SYSROOT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/wasi-sysroot"),  # wasi-sdk layout
    Path("/usr"),  # Debian's wasi-libc: /usr/include/wasm32-wasi, /usr/lib/wasm32-wasi
)


class ToolchainMissing(RuntimeError):
    """clang, wasm-ld, the wasi-libc sysroot or the wasm32 builtins are not installed."""


@dataclass(frozen=True)
class Toolchain:
    clang: str
    sysroot: Path
    clang_version: str  # first line of ``clang --version``
    libc_sha256: str  # of the sysroot's libc.a: the other input that changes the bytes

    @property
    def sysroot_flag(self) -> str:
        return f"--sysroot={self.sysroot}"

    def describe(self) -> dict[str, str]:
        return {
            "clang_version": self.clang_version,
            "sysroot": str(self.sysroot),
            "libc_sha256": self.libc_sha256,
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sysroot_ok(root: Path) -> bool:
    return (root / "lib" / "wasm32-wasi" / "libc.a").is_file() or (
        root / "lib" / "libc.a"
    ).is_file()


def find_toolchain() -> Toolchain:
    """Locate clang and a wasm32-wasi sysroot, or raise :class:`ToolchainMissing`."""
    cc = os.environ.get("WASI_CC", "clang")
    clang = shutil.which(cc)
    if clang is None:
        raise ToolchainMissing(f"{cc} not found on PATH (apt-get install clang lld)")
    env_root = os.environ.get("WASI_SYSROOT")
    candidates = (Path(env_root),) if env_root else SYSROOT_CANDIDATES
    sysroot = next((root for root in candidates if _sysroot_ok(root)), None)
    if sysroot is None:
        raise ToolchainMissing(
            f"no wasm32-wasi sysroot with libc.a in {[str(c) for c in candidates]} "
            "(apt-get install wasi-libc)"
        )
    version = subprocess.run(
        [clang, "--version"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[0]

    def print_file(name: str) -> Path:
        out = subprocess.run(
            [clang, f"--target={TARGET}", f"--sysroot={sysroot}", f"-print-file-name={name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return Path(out)

    libc = print_file("libc.a")
    if not libc.is_absolute() or not libc.is_file():
        raise ToolchainMissing(f"clang does not find libc.a in sysroot {sysroot}")
    builtins = subprocess.run(
        [clang, f"--target={TARGET}", "-print-libgcc-file-name"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(builtins).is_file():
        raise ToolchainMissing(
            f"wasm32 compiler-rt builtins missing: {builtins} "
            "(apt-get install libclang-rt-dev-wasm32)"
        )
    if shutil.which("wasm-ld") is None and shutil.which("wasm-ld", path=Path(clang).parent) is None:
        raise ToolchainMissing("wasm-ld not found (apt-get install lld)")
    return Toolchain(clang, sysroot, version, _sha256(libc.read_bytes()))


def sources() -> list[Path]:
    return sorted(HERE.glob("*.c"))


def build_one(tc: Toolchain, source: Path, out: Path) -> bytes:
    """Compile and link ``source`` into ``out``; return the module's bytes."""
    with tempfile.TemporaryDirectory(prefix="wasi-build-") as tmp:
        obj = Path(tmp) / (source.stem + ".o")
        subprocess.run(
            [tc.clang, *COMPILE_FLAGS, tc.sysroot_flag, "-c", source.name, "-o", str(obj)],
            check=True,
            cwd=source.parent,
        )
        subprocess.run(
            [tc.clang, *LINK_FLAGS, tc.sysroot_flag, str(obj), "-o", str(out)],
            check=True,
        )
    out.chmod(0o644)  # the linker marks it executable; it is data to the tests
    return out.read_bytes()


def build_all(tc: Toolchain, out_dir: Path) -> dict[str, bytes]:
    """Build every source into ``out_dir``; return ``{"name.wasm": bytes}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        f"{src.stem}.wasm": build_one(tc, src, out_dir / f"{src.stem}.wasm") for src in sources()
    }


def manifest_for(tc: Toolchain, built: dict[str, bytes]) -> dict[str, object]:
    fixtures = {}
    for src in sources():
        wasm = built[f"{src.stem}.wasm"]
        fixtures[src.stem] = {
            "source_sha256": _sha256(src.read_bytes()),
            "wasm_sha256": _sha256(wasm),
            "wasm_size": len(wasm),
        }
    return {
        "toolchain": tc.describe(),
        "compile_flags": list(COMPILE_FLAGS),
        "link_flags": list(LINK_FLAGS),
        "fixtures": fixtures,
    }


def manifest_problems(manifest: dict[str, object] | None = None) -> list[str]:
    """Staleness that needs no clang: sources, modules and manifest agree with each other."""
    if manifest is None:
        if not MANIFEST.is_file():
            return [f"{MANIFEST.name} missing"]
        manifest = json.loads(MANIFEST.read_text())
    problems = []
    flags = (manifest.get("compile_flags"), manifest.get("link_flags"))
    if flags != (list(COMPILE_FLAGS), list(LINK_FLAGS)):
        problems.append("flags in build.py differ from those recorded in manifest.json")
    recorded = manifest.get("fixtures")
    if not isinstance(recorded, dict):
        return [*problems, "manifest.json has no fixtures table"]
    names = {src.stem for src in sources()}
    problems += [f"{n}.c has no entry in manifest.json" for n in sorted(names - recorded.keys())]
    problems += [
        f"manifest.json lists {n}, which has no .c" for n in sorted(recorded.keys() - names)
    ]
    for name in sorted(names & recorded.keys()):
        entry = recorded[name]
        wasm = HERE / f"{name}.wasm"
        if _sha256((HERE / f"{name}.c").read_bytes()) != entry["source_sha256"]:
            problems.append(f"{name}.c changed since {name}.wasm was built")
        if not wasm.is_file():
            problems.append(f"{name}.wasm missing")
        elif _sha256(wasm.read_bytes()) != entry["wasm_sha256"]:
            problems.append(f"{name}.wasm differs from the module recorded in manifest.json")
    return problems


def check(tc: Toolchain | None) -> list[str]:
    """All staleness problems; with a toolchain, also rebuild and compare bytes."""
    problems = manifest_problems()
    if tc is None:
        return problems
    with tempfile.TemporaryDirectory(prefix="wasi-check-") as tmp:
        fresh = build_all(tc, Path(tmp))
    for name, data in fresh.items():
        committed = HERE / name
        if committed.is_file() and committed.read_bytes() != data:
            problems.append(f"{name} differs from a fresh build")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only verify the committed modules; exit 1 if stale"
    )
    args = parser.parse_args(argv)
    try:
        tc: Toolchain | None = find_toolchain()
    except ToolchainMissing as exc:
        if not args.check:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"note: {exc}; checking hashes only, not rebuilding", file=sys.stderr)
        tc = None
    if args.check:
        if tc is not None and MANIFEST.is_file():
            recorded = json.loads(MANIFEST.read_text()).get("toolchain")
            if recorded != tc.describe():
                print(
                    f"note: fixtures were built with {recorded}, this machine has "
                    f"{tc.describe()}; a byte difference may be the toolchain's",
                    file=sys.stderr,
                )
        problems = check(tc)
        for problem in problems:
            print(f"stale: {problem}", file=sys.stderr)
        if problems:
            print("run: python tests/wasi/build.py", file=sys.stderr)
            return 1
        print(f"ok: {len(sources())} fixtures up to date")
        return 0
    assert tc is not None
    built = build_all(tc, HERE)
    MANIFEST.write_text(json.dumps(manifest_for(tc, built), indent=2, sort_keys=True) + "\n")
    for name, data in built.items():
        print(f"{name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
