"""Build the sample Spirits: compile every ``spirits/*.wat`` into the ``.wasm`` beside it.

Run from the repository root::

    python spirits/build.py            # rebuild every .wasm
    python spirits/build.py --check    # exit 1 if any .wasm is missing or stale

Compilation uses ``wasmtime.wat2wasm``, so the output is deterministic and the
tests can compare the committed ``.wasm`` files with a fresh build byte for byte.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import wasmtime

SPIRITS_DIR = Path(__file__).resolve().parent


def wat_sources(directory: Path = SPIRITS_DIR) -> list[Path]:
    """Every ``.wat`` file in ``directory``, sorted by name."""
    return sorted(directory.glob("*.wat"))


def compile_wat(wat: Path) -> bytes:
    """The binary module for one ``.wat`` file."""
    return bytes(wasmtime.wat2wasm(wat.read_text(encoding="utf-8")))


def build(directory: Path = SPIRITS_DIR, *, check: bool = False) -> list[Path]:
    """Compile every ``.wat`` in ``directory``.

    Writes each ``.wasm`` whose contents differ from a fresh build (or, with
    ``check``, writes nothing). Returns the ``.wasm`` paths that were (or, with
    ``check``, would be) written.
    """
    changed: list[Path] = []
    for wat in wat_sources(directory):
        wasm = wat.with_suffix(".wasm")
        binary = compile_wat(wat)
        if wasm.exists() and wasm.read_bytes() == binary:
            continue
        changed.append(wasm)
        if not check:
            wasm.write_bytes(binary)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any .wasm is missing or out of date",
    )
    args = parser.parse_args(argv)
    changed = build(check=args.check)
    for wasm in changed:
        verb = "stale" if args.check else "wrote"
        print(f"{verb} {wasm.relative_to(SPIRITS_DIR.parent)}")
    if args.check and changed:
        return 1
    if not changed:
        print(f"{len(wat_sources())} Spirits up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
