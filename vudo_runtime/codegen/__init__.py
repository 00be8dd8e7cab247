"""DOL declarations -> typed Python: the front end (lexer, parser, AST), the type mapping and
the stub generator (``generate_file``, ``generate_from_dol``, ``generate_from_wasm``)."""

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
    Item,
    Param,
    SexVar,
    TypeAlias,
    TypeRef,
)
from vudo_runtime.codegen.lexer import Token, TokenKind, tokenize
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


__all__ = [
    "KEYWORDS",
    "Const",
    "DolFile",
    "Enum",
    "EnumVariant",
    "Function",
    "Gene",
    "GeneField",
    "Item",
    "LayoutType",
    "Param",
    "SexVar",
    "Token",
    "TokenKind",
    "TypeAlias",
    "TypeContext",
    "TypeRef",
    "class_name",
    "generate_file",
    "generate_from_dol",
    "generate_from_wasm",
    "is_void",
    "layout_type",
    "parse_dol",
    "parse_dol_file",
    "python_type",
    "tokenize",
    "wasm_type",
    "wasm_types",
]
