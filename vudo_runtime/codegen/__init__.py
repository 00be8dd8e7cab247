"""DOL declarations -> typed Python: the front end (lexer, parser, AST), the type mapping and
the stub generator (``generate_file``, ``generate_from_dol``, ``generate_from_wasm``), and
Spirit packages (a folder with a ``Spirit.dol``: ``generate_package``, ``write_package``,
``describe_package``, ``format_package``).

What ``vudo codegen SOURCE [-o OUT]`` and ``vudo inspect SOURCE`` do for each kind of
source is :func:`codegen` and :func:`inspect_package` here.
"""

import os
from pathlib import Path

from vudo_runtime.codegen.ast import (
    Const,
    DolFile,
    Enum,
    EnumVariant,
    Function,
    Gene,
    GeneField,
    GeneRule,
    Item,
    ModDecl,
    ModuleDecl,
    Param,
    Rule,
    SexVar,
    SpiritManifest,
    System,
    Trait,
    TypeAlias,
    TypeRef,
    Use,
)
from vudo_runtime.codegen.lexer import Token, TokenKind, tokenize
from vudo_runtime.codegen.package import (
    PackageModule,
    SpiritPackage,
    describe_package,
    find_manifest,
    format_package,
    generate_package,
    is_spirit_package,
    load_package,
    write_package,
)
from vudo_runtime.codegen.parser import KEYWORDS, parse_dol, parse_dol_file
from vudo_runtime.codegen.types import (
    LayoutType,
    TypeContext,
    class_name,
    is_void,
    layout_type,
    python_type,
    wasm_type,
    wasm_types,
)
from vudo_runtime.errors import VudoError


def generate_file(path: str | os.PathLike[str]) -> str:
    """The stub module for a ``.dol`` file, or a facade from a ``.wasm``/``.wat`` file's exports.

    Raises :class:`DolSyntaxError` (file:line:col) for bad DOL, :class:`VudoError` for a
    file that cannot be read or has another suffix.
    """
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    if is_spirit_package(name) and Path(name).is_dir():
        raise VudoError(
            f"{name} is a Spirit package (it holds {Path(name, 'Spirit.dol')}): it becomes a "
            "Python package, so generate it with write_package() (vudo codegen DIR -o OUT)"
        )
    if suffix == ".dol":
        try:
            dol = parse_dol_file(name)
        except OSError as exc:
            raise VudoError(f"cannot read DOL file {name}: {exc.strerror or exc}") from exc
        return generate_from_dol(dol, name)
    if suffix in (".wasm", ".wat"):
        return generate_from_wasm(name, name)
    raise VudoError(f"{name}: expected a .dol file (or a .wasm/.wat Spirit) to generate stubs from")


# The generators are imported on first use, not for speed (`import vudo_runtime` does not
# import codegen) but so `python -m vudo_runtime.codegen.generator` runs it as a script
# without a second copy already in sys.modules (runpy's RuntimeWarning).
def generate_from_dol(dol_file: DolFile, source_name: str | None = None) -> str:
    """The typed stub module for a parsed DOL file; ``source_name`` goes in its header."""
    from vudo_runtime.codegen import generator

    return generator.generate_from_dol(dol_file, source_name)


def generate_from_wasm(source: str | bytes | os.PathLike[str], source_name: str) -> str:
    """A facade from a compiled Spirit's export signatures alone."""
    from vudo_runtime.codegen import from_wasm

    return from_wasm.generate_from_wasm(source, source_name)


def codegen(
    source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None
) -> tuple[str | None, list[Path]]:
    """What ``vudo codegen SOURCE [-o OUTPUT]`` does: ``(text, files written)``.

    A Spirit package (a folder holding ``Spirit.dol``, or that file) becomes a Python
    package written to ``OUTPUT`` (default ``./<spirit name>``): no text, the files.
    A ``.dol``/``.wasm``/``.wat`` file becomes one module: written to ``OUTPUT`` when
    given (then ``(None, [OUTPUT])``), else returned as text to print.
    Raises :class:`DolSyntaxError` / :class:`VudoError` as :func:`generate_file` does.
    """
    if is_spirit_package(source):
        return None, write_package(source, output)
    text = generate_file(source)
    if output is None:
        return text, []
    out = Path(output)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise VudoError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return None, [out]


def inspect_package(source: str | os.PathLike[str], *, as_json: bool = False) -> str | None:
    """What ``vudo inspect DIR`` prints for a Spirit package, or None when ``source`` is
    not one (then inspect it as a compiled Spirit). ``as_json`` for ``--json``."""
    if not is_spirit_package(source):
        return None
    info = describe_package(source)
    if as_json:
        import json

        return json.dumps(info, indent=2) + "\n"
    return format_package(info)


__all__ = [
    "KEYWORDS",
    "Const",
    "DolFile",
    "Enum",
    "EnumVariant",
    "Function",
    "Gene",
    "GeneField",
    "GeneRule",
    "Item",
    "LayoutType",
    "ModDecl",
    "ModuleDecl",
    "PackageModule",
    "Param",
    "Rule",
    "SexVar",
    "SpiritManifest",
    "SpiritPackage",
    "System",
    "Token",
    "TokenKind",
    "Trait",
    "TypeAlias",
    "TypeContext",
    "TypeRef",
    "Use",
    "class_name",
    "codegen",
    "describe_package",
    "find_manifest",
    "format_package",
    "generate_file",
    "generate_from_dol",
    "generate_from_wasm",
    "generate_package",
    "inspect_package",
    "is_spirit_package",
    "is_void",
    "layout_type",
    "load_package",
    "parse_dol",
    "parse_dol_file",
    "python_type",
    "tokenize",
    "wasm_type",
    "wasm_types",
    "write_package",
]
