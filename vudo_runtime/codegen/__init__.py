"""DOL declarations -> typed Python: the front end (lexer, parser, AST) and the type mapping."""

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
    "is_void",
    "layout_type",
    "parse_dol",
    "parse_dol_file",
    "python_type",
    "tokenize",
    "wasm_type",
    "wasm_types",
]
