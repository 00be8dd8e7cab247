"""Recursive-descent parser for the declaration level of DOL.

It reads what a host needs (genes and their fields, defaults, ``where`` constraints and
rules, functions and methods, host imports and ``extern`` declarations, ``sex var``
globals, enums, constants, type aliases, doc comments and docs blocks), keeps traits,
systems and top-level rules by name, the ``module``/``use``/``mod`` lines and a Spirit
manifest, and jumps over everything else: function bodies, ``impl``, ``evo``, ``law``,
``test``. Bodies are skipped by the lexer at character level, so parsing is linear in
the input. Every loop consumes a token per turn or raises, so no input makes it hang;
every failure is a :class:`DolSyntaxError` naming the file, line, column and what was
expected.

Docs blocks: the first one before any declaration documents the file; later ones
document the declaration that follows them (``docs { ... }`` then ``pub gen X``, as DOL
Spirits write it). One directly below a declaration's closing ``}``, an ``exegesis``
after it, or one that no declaration follows, documents the declaration above it (DOL
1.0's trailing exegesis). Inside a gene the same holds for its members.
"""

from __future__ import annotations

import difflib
import os
import re
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import attrs

from vudo_runtime.codegen.ast import (
    ARRAY,
    FUNCTION,
    INLINE_ENUM,
    REF,
    TUPLE,
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
from vudo_runtime.codegen.lexer import DOCS_KEYWORDS, Lexer, Token, TokenKind, gc_paused
from vudo_runtime.errors import DolSyntaxError

#: The reserved words of DOL's declaration level.
KEYWORDS = frozenset(
    {
        "gen", "gene", "has", "fun", "pub", "sex", "rule", "constraint", "docs", "exegesis",
        "trait", "system", "extends", "use", "mod", "const", "type", "enum", "var", "where",
    }
)  # fmt: skip

_NAME = TokenKind.NAME
_PUNCT = TokenKind.PUNCT
_EOF = TokenKind.EOF
_STRING = TokenKind.STRING
_DOCS = TokenKind.DOCS_TEXT

# Words that start a declaration or a gene member: an expression never runs past them.
_DECL_WORDS = KEYWORDS - {"extends", "where"} | {
    "module", "impl", "spirit", "evolves", "evo", "law", "provides", "extern",
}  # fmt: skip
# Constructs read only to be skipped: a header, then a braced block.
_SKIPPED_TOP = frozenset({"impl", "evolves", "evo", "law", "test"})
# Words after which a docs block documents what follows.
_LEADABLE = frozenset(
    {"gen", "gene", "fun", "pub", "sex", "extern", "const", "var", "type", "enum", "trait"}
    | {"system", "rule", "constraint", "spirit"}
    | _SKIPPED_TOP
)
_MEMBER_WORDS = frozenset({"has", "fun", "pub", "sex", "extern", "provides", "enum"})
# Old DOL 1.0 statements inside a gene: ``container has identity``, ``state is running``.
_PREDICATES = frozenset({"has", "is", "derives", "requires", "uses", "emits", "matches", "never"})
_NOT_TYPES = KEYWORDS | {"module", "impl", "spirit", "law", "provides", "extern"}
# Punctuation after which an expression goes on across a newline.
_NO_CONTINUE_AFTER = frozenset({")", "]", "}", "?"})
# Punctuation that cannot start a new member, so a line starting with it continues.
_NO_CONTINUE_BEFORE = frozenset({"@", "#", "}", ",", ";"})
_EXPR_END = frozenset({"}", ")", "]", ",", ";"})
_OPENERS = frozenset({"(", "[", "{"})
_CLOSERS = frozenset({")", "]", "}"})
_MAX_TYPE_DEPTH = 64

_TOP_EXPECTED = (
    "expected a declaration (gen, fun, sex fun, sex var, const, type, enum, rule, trait, "
    "system, docs, use, mod)"
)
_GENE_EXPECTED = "expected has, fun, rule, docs, a field 'name: Type' or '}' to close the gene"
_KIND_NAMES = {
    "Gene": "gene", "Enum": "enum", "TypeAlias": "type alias", "Function": "function",
    "Const": "const", "SexVar": "sex var",
}  # fmt: skip
_TOP_WORDS = sorted(KEYWORDS | _SKIPPED_TOP | {"module", "gene", "spirit", "config"})
_GENE_WORDS = ["has", "fun", "pub", "sex", "rule", "constraint", "docs", "exegesis", "provides"]
_STRINGS_IN = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_DEPENDENCY = re.compile(r'(@[\w./-]+)\s*:\s*("(?:[^"\\]|\\.)*")')


def _join(*parts: str | None) -> str | None:
    """Non-empty parts separated by a blank line, or None."""
    text = "\n\n".join(p for p in parts if p)
    return text or None


def _docs_text(raw: str) -> str:
    """The prose of a docs block, dedented and stripped."""
    first, _, rest = raw.partition("\n")
    return (first.strip() + "\n" + textwrap.dedent(rest)).strip()


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def string_value(literal: str) -> str:
    """The text of a DOL string literal (``"a\\nb"`` -> ``a`` newline ``b``).

    Knows ``\\n \\t \\r \\0 \\\\ \\" \\'`` and ``\\u{...}``/``\\xNN``; other escapes keep
    their character.
    """
    body = literal[1:-1] if len(literal) >= 2 and literal[0] == literal[-1] else literal
    out: list[str] = []
    i, n = 0, len(body)
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e == "u" and body.startswith("{", i + 2):
            close = body.find("}", i + 3)
            digits = body[i + 3 : close] if close > 0 else ""
            if (
                close > 0
                and digits
                and len(digits) <= 6
                and all(d in "0123456789abcdefABCDEF" for d in digits)
            ):
                code = int(digits, 16)
                out.append(chr(code) if code <= 0x10FFFF else "\ufffd")
                i = close + 1
                continue
        if e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
            continue
        out.append(simple.get(e, e))
        i += 2
    return "".join(out)


_N = TypeVar("_N", Trait, System, Rule)


@attrs.define
class _Docs:
    """Where a docs block right after the last declaration would go."""

    attach: Callable[[str], None]


class _Parser:
    """Cursor over the lexer's tokens; one method per construct."""

    def __init__(self, lexer: Lexer) -> None:
        self.lx = lexer
        self.file = lexer.file
        self.text = lexer.text
        self.toks: list[Token] = []
        lexer.fill(self.toks)
        self.pos = 0
        self.items: list[Item] = []
        self.traits: list[Trait] = []
        self.systems: list[System] = []
        self.rules: list[Rule] = []
        self.uses: list[Use] = []
        self.mods: list[ModDecl] = []
        self.module: ModuleDecl | None = None
        self.spirit: SpiritManifest | None = None
        self.config: dict[str, str | tuple[str, ...]] = {}
        self.dependencies: list[str] = []
        self.seen: dict[tuple[bool, str], Item] = {}

    # --- cursor -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        i = self.pos + k
        toks = self.toks
        while len(toks) <= i:
            last = toks[-1]
            if last.kind is _EOF:
                return last
            self.lx.fill(toks)
        return toks[i]

    def advance(self) -> Token:
        """The current token; moves past it (never past EOF)."""
        toks = self.toks
        pos = self.pos
        tok = toks[pos]
        if tok.kind is not _EOF:
            pos += 1
            self.pos = pos
            if pos == len(toks):
                self.lx.fill(toks)
        return tok

    @property
    def prev(self) -> Token:
        return self.toks[max(self.pos - 1, 0)]

    def at(self, text: str) -> bool:
        tok = self.toks[self.pos]
        return tok.text == text and (tok.kind is _NAME or tok.kind is _PUNCT)

    def at_eof(self) -> bool:
        return self.toks[self.pos].kind is _EOF

    def error(self, message: str, tok: Token | None = None) -> DolSyntaxError:
        where = self.tok if tok is None else tok
        return DolSyntaxError(message, file=self.file, line=where.line, column=where.column)

    def expect(self, text: str, context: str) -> Token:
        if self.at(text):
            return self.advance()
        raise self.error(f"expected '{text}' {context}, found {self.tok.describe()}")

    def expect_name(self, what: str, context: str) -> Token:
        if self.tok.kind is _NAME:
            return self.advance()
        raise self.error(f"expected {what} {context}, found {self.tok.describe()}")

    def qualified_name(self, first: Token) -> str:
        """``a.b.c`` or ``a::b`` after its first part ``first``."""
        name = first.text
        while (self.at(".") or self.at("::")) and self.peek().kind is _NAME:
            name += self.advance().text + self.advance().text
        return name

    def source(self, first: Token, last: Token) -> str:
        return self.text[first.offset : last.end]

    # --- skipping -----------------------------------------------------------------------

    def unclosed(self, opening: Token, what: str) -> DolSyntaxError:
        close = {"{": "}", "(": ")", "[": "]", "<": ">"}.get(opening.text, "}")
        return self.error(
            f"unclosed '{opening.text}' of {what} opened at line {opening.line}, column "
            f"{opening.column}: reached end of file; expected '{close}'",
            opening,
        )

    def skip_group(self, what: str) -> tuple[Token, Token]:
        """Jump from the current ``{``, ``(`` or ``[`` past its match; both tokens.

        Counts that pair only; the lexer skips what is inside without tokenizing it.
        """
        opening = self.tok
        del self.toks[self.pos + 1 :]
        closing = self.lx.skip_group(opening)
        if closing is None:
            raise self.unclosed(opening, what)
        self.toks.append(closing)
        self.lx.fill(self.toks)
        self.pos += 2
        return opening, closing

    def group_text(self, what: str) -> str:
        """Skip the current group; the source text inside it."""
        opening, closing = self.skip_group(what)
        return self.text[opening.end : closing.offset]

    def skip_statement_line(self, first: Token) -> Token:
        """Skip a one-line statement (``use``, ``mod``, a DOL 1.0 predicate) after ``first``.

        A braced group on the line is skipped whole and ends the statement. Returns the
        statement's last token.
        """
        last = first
        while True:
            tok = self.tok
            if tok.kind is _EOF or tok.line > last.end_line:
                return last
            if tok.kind is _PUNCT and tok.text in _EXPR_END:
                return last
            if tok.is_("{"):
                self.skip_group(f"the block of '{first.text}'")
                return self.prev
            if tok.is_("(") or tok.is_("["):
                self.skip_group(f"'{first.text}'")
            else:
                self.advance()
            last = self.prev

    def construct(self, label_word: str) -> tuple[Token, str, str | None, str]:
        """A ``rule x { }``, ``trait X<T> { }``, ``system X @ 1.0.0 { }`` and the like: the
        keyword, its name (or ''), the version after ``@`` and the body's source."""
        kw = self.advance()
        name = ""
        if self.tok.kind is _NAME and self.tok.text not in _DECL_WORDS:
            name = self.qualified_name(self.advance())
        label = f"{label_word} '{name}'" if name else label_word
        version: str | None = None
        first = not name
        while True:
            tok = self.tok
            if tok.is_("{"):
                return kw, name, version, self.group_text(label)
            if (
                tok.kind is _EOF
                or tok.is_("}")
                or (not first and tok.kind is _NAME and tok.text in _DECL_WORDS)
            ):
                raise self.error(
                    f"expected '{{' to open the body of {label}, found {tok.describe()}"
                )
            if tok.is_("@") and version is None:
                self.advance()
                version = self.version_text()
            elif tok.is_("(") or tok.is_("["):
                self.skip_group(label)
            else:
                self.advance()
            first = False

    def version_text(self) -> str | None:
        """The version after ``@`` (``0.9.0``, ``^1.0``, ``>=0.1.0``): tokens to the line end."""
        start = self.tok
        if start.kind is _EOF or start.is_("{") or start.is_("}"):
            return None
        line = self.prev.end_line
        last: Token | None = None
        while True:
            tok = self.tok
            if (
                tok.kind is _EOF
                or tok.line > line
                or tok.kind is _STRING
                or (tok.kind is _PUNCT and tok.text in ("{", "}", ",", ";", "(", ")"))
            ):
                break
            last = self.advance()
        if last is None:
            return None
        return "".join(self.source(start, last).split()) or None

    def annotations(self, docs: list[str | None]) -> None:
        """Skip ``@name(...)`` and ``#[...]`` attributes, keeping any doc comment on them."""
        while True:
            tok = self.tok
            if tok.is_("@") and self.peek().kind is _NAME:
                docs.append(tok.doc)
                self.advance()
                self.qualified_name(self.advance())
                if self.at("(") and self.tok.line == self.prev.end_line:
                    self.skip_group("an annotation")
            elif tok.is_("#") and (
                self.peek().is_("[") or (self.peek().is_("!") and self.peek(2).is_("["))
            ):
                docs.append(tok.doc)
                self.advance()
                if self.at("!"):
                    self.advance()
                self.skip_group("an attribute")
            else:
                return

    def expression(self, context: str) -> str:
        """Skip one expression and return its source text.

        It ends, outside brackets, at ``}`` ``)`` ``]`` ``,`` ``;``, at a declaration
        keyword or ``where``, at a ``name:`` that starts a field, or at a line break that
        no operator carries over.
        """
        start = self.tok
        last: Token | None = None
        depth = 0
        while True:
            tok = self.tok
            kind = tok.kind
            if kind is _EOF:
                break
            punct = kind is _PUNCT
            if depth == 0:
                if punct and tok.text in _EXPR_END:
                    break
                if kind is _NAME and (tok.text in _DECL_WORDS or tok.text == "where"):
                    break
                if last is not None:
                    if tok.line > last.end_line and not self.continues(last, tok):
                        break
                    if kind is _NAME and self.peek().is_(":") and not last.is_("?"):
                        break  # `name:` starts the next field, even on the same line
            if punct:
                if tok.text in _OPENERS:
                    depth += 1
                elif tok.text in _CLOSERS:
                    depth -= 1
            self.advance()
            last = tok
        if last is None:
            raise self.error(f"expected an expression {context}, found {start.describe()}")
        return self.text[start.offset : last.end]

    @staticmethod
    def continues(last: Token, nxt: Token) -> bool:
        if last.kind is _PUNCT and last.text not in _NO_CONTINUE_AFTER:
            return True
        return nxt.kind is _PUNCT and nxt.text not in _NO_CONTINUE_BEFORE

    def at_docs(self) -> bool:
        """At ``docs { ... }``, ``docs "text"`` (or ``exegesis``); not a field ``docs: T``."""
        tok = self.tok
        if tok.kind is not _NAME or tok.text not in DOCS_KEYWORDS:
            return False
        return not self.peek().is_(":")

    def docs_block(self) -> str:
        kw = self.advance()
        if self.tok.kind is _DOCS:
            return _docs_text(self.advance().text)
        if self.tok.kind is _STRING:
            return string_value(self.advance().text).strip()
        raise self.error(f"expected '{{' after '{kw.text}', found {self.tok.describe()}")

    def starts_declaration(self) -> bool:
        """Whether the current token opens a declaration a docs block above may document."""
        tok = self.tok
        if tok.kind is _NAME:
            return tok.text in _LEADABLE
        if tok.is_("@"):
            return self.peek().kind is _NAME
        return tok.is_("#") and (self.peek().is_("[") or self.peek().is_("!"))

    def starts_member(self) -> bool:
        tok = self.tok
        if tok.kind is _NAME:
            return tok.text in _MEMBER_WORDS or self.peek().is_(":")
        return tok.is_("@") or tok.is_("#")

    # --- types --------------------------------------------------------------------------

    def type_params(self) -> tuple[str, ...]:
        """``<T, U: Bound, V = Default>`` -> the parameter names."""
        opening = self.advance()
        names: list[str] = []
        depth, want_name = 1, True
        while True:
            tok = self.tok
            if tok.kind is _EOF or any(tok.is_(s) for s in ("{", "}", "(", ")")):
                raise self.error(
                    f"expected '>' to close the type parameters opened at line {opening.line}, "
                    f"column {opening.column}, found {tok.describe()}"
                )
            self.advance()
            if tok.is_("<"):
                depth += 1
            elif tok.is_(">"):
                depth -= 1
                if depth == 0:
                    return tuple(names)
            elif tok.is_(",") and depth == 1:
                want_name = True
            elif tok.kind is _NAME and depth == 1 and want_name:
                names.append(tok.text)
                want_name = False

    def where_clause(self, label: str) -> None:
        """Skip ``where T: Bound, ...`` up to the ``{`` that opens the body."""
        self.advance()
        while not (self.at("{") or self.at("}") or self.at_eof()):
            self.advance()
        if not self.at("{"):
            raise self.error(
                f"expected '{{' after the 'where' clause of {label}, found {self.tok.describe()}"
            )

    def parse_type(self, context: str, depth: int = 0) -> TypeRef:
        """One type: a name with optional ``<args>``, ``&T``, ``*T``, ``(A, B)``, ``[T]``,
        ``fun(A) -> R`` (also ``sex fun``), the never type ``!``, or an inline
        ``enum { A, B }``; a trailing ``?`` means ``Option<...>``."""
        if depth > _MAX_TYPE_DEPTH:
            raise self.error(f"type nested more than {_MAX_TYPE_DEPTH} levels deep {context}")
        tok = self.tok
        inner = f"in a type {context}"
        result: TypeRef
        if tok.is_("&") or tok.is_("&&") or tok.is_("*"):
            self.advance()
            if self.at("mut") or (tok.text == "*" and self.at("const")):
                self.advance()
            result = TypeRef(REF, (self.parse_type(inner, depth + 1),))
            if tok.text == "&&":
                result = TypeRef(REF, (result,))
        elif tok.is_("!"):
            self.advance()
            result = TypeRef("!")
        elif tok.is_("("):
            items, trailing_comma = self.type_list(")", "the tuple type", depth)
            if self.at("->"):
                self.advance()
                ret = self.parse_type(f"after '->' {inner}", depth + 1)
                result = TypeRef(FUNCTION, (*items, ret))
            elif len(items) == 1 and not trailing_comma:
                result = items[0]
            else:
                result = TypeRef(TUPLE, items)
        elif tok.is_("["):
            opening = self.advance()
            element = self.parse_type(inner, depth + 1)
            if self.at(";"):
                self.advance()
                self.expression("for the array length")
            self.expect(
                "]",
                f"to close the array type opened at line {opening.line}, column {opening.column}",
            )
            result = TypeRef(ARRAY, (element,))
        elif tok.is_("enum") and self.peek().is_("{"):
            self.advance()
            variants = self.enum_variants("an inline enum")
            result = TypeRef(INLINE_ENUM, variants=tuple(v.name for v in variants))
        elif (
            tok.kind is _NAME
            and tok.text in ("fun", "Fn", "sex")
            and (
                self.peek().is_("(")
                or (
                    tok.text == "sex"
                    and self.peek().text in ("fun", "Fn")
                    and self.peek(2).is_("(")
                )
            )
        ):
            if tok.text == "sex":
                self.advance()
            self.advance()
            params, _ = self.type_list(")", "the function type", depth)
            ret = TypeRef(TUPLE)
            if self.at("->"):
                self.advance()
                ret = self.parse_type(f"after '->' {inner}", depth + 1)
            result = TypeRef(FUNCTION, (*params, ret))
        elif tok.kind is _NAME and tok.text in ("impl", "dyn") and self.peek().kind is _NAME:
            self.advance()
            result = self.parse_type(context, depth + 1)
        elif tok.kind is _NAME and tok.text not in _NOT_TYPES:
            name = self.qualified_name(self.advance())
            args: tuple[TypeRef, ...] = ()
            if self.at("<"):
                args, _ = self.type_list(">", f"the type arguments of '{name}'", depth)
            result = TypeRef(name, args)
        else:
            raise self.error(f"expected a type {context}, found {tok.describe()}")
        if self.at("?") and self.tok.line == self.prev.end_line:
            self.advance()
            result = TypeRef("Option", (result,))
        return result

    def type_list(self, close: str, what: str, depth: int) -> tuple[tuple[TypeRef, ...], bool]:
        """Types separated by commas from the current opener up to ``close``."""
        opening = self.advance()
        where = f"in {what} opened at line {opening.line}, column {opening.column}"
        items: list[TypeRef] = []
        trailing_comma = False
        while not self.at(close):
            items.append(self.parse_type(where, depth + 1))
            trailing_comma = False
            if self.at(","):
                self.advance()
                trailing_comma = True
            elif not self.at(close):
                raise self.error(f"expected ',' or '{close}' {where}, found {self.tok.describe()}")
        self.advance()
        return tuple(items), trailing_comma

    # --- the file -----------------------------------------------------------------------

    def add(self, item: Item) -> None:
        self.check_unique(item)
        self.items.append(item)

    def item_docs(self, index: int) -> _Docs:
        def attach(text: str) -> None:
            item = self.items[index]
            self.items[index] = attrs.evolve(item, doc=_join(item.doc, text))

        return _Docs(attach)

    @staticmethod
    def node_docs(nodes: list[_N]) -> _Docs:
        index = len(nodes) - 1

        def attach(text: str) -> None:
            node = nodes[index]
            nodes[index] = attrs.evolve(node, doc=_join(node.doc, text))

        return _Docs(attach)

    def parse_file(self) -> list[str]:
        """Every declaration; returns the docs blocks that belong to the file itself."""
        file_docs: list[str] = []
        pending: list[str] = []  # docs blocks waiting for the next declaration
        trailing: _Docs | None = None  # what a docs block right below would document
        seen_decl = False
        dropped = _Docs(lambda text: None)
        while not self.at_eof():
            tok = self.tok
            if tok.kind is _PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            if tok.is_("}"):
                raise self.error("unmatched '}' at top level: there is no open '{' to close")
            if self.at_docs():
                before = self.toks[self.pos - 1] if self.pos else None
                adjacent = (
                    before is not None and before.is_("}") and tok.line <= before.end_line + 1
                )
                text = self.docs_block()
                if trailing is not None and (adjacent or tok.text == "exegesis"):
                    trailing.attach(text)
                elif not seen_decl and not file_docs and not self.lx.file_doc:
                    file_docs.append(text)  # the first, before any declaration: the file's
                elif self.starts_declaration():
                    pending.append(text)
                elif trailing is not None:
                    trailing.attach(text)
                else:
                    file_docs.append(text)
                continue
            docs: list[str | None] = [*pending]
            pending = []
            self.annotations(docs)
            public, sex, extern, abi = self.modifiers(docs)
            kw = self.tok
            docs.append(kw.doc)
            doc = _join(*docs)
            word = kw.text if kw.kind is _NAME else ""
            before_items = len(self.items)
            trailing = None
            if extern and self.at("{"):
                self.extern_block(public, sex, abi)
            elif sex or extern:
                if word == "fun":
                    self.add(self.function(doc, public, sex=sex, extern=extern, abi=abi))
                elif word == "var" and not extern:
                    self.add(self.sex_var(doc, public))
                else:
                    raise self.error(
                        f"expected 'fun' or 'var' after '{self.prev.text}', found {kw.describe()}"
                    )
            elif word in ("gen", "gene"):
                self.gene(doc, public)
                trailing = self.item_docs(len(self.items) - 1)
            elif word == "fun":
                self.add(self.function(doc, public))
            elif word == "var":
                self.add(self.sex_var(doc, public))
            elif word == "const":
                self.add(self.const(doc, public))
            elif word == "type":
                item = self.type_decl(doc, public)
                if item is None:  # a gene (or an enum gene), added with what it declares
                    trailing = self.item_docs(len(self.items) - 1)
                else:
                    self.add(item)
            elif word == "enum" and self.peek().kind is _NAME:
                self.add(self.enum_decl(doc, public))
            elif word == "trait":
                kw_tok, name, _, _ = self.construct("trait")
                self.traits.append(Trait(name, doc, public, (), kw_tok.line, kw_tok.column))
                trailing = self.node_docs(self.traits)
            elif word == "system":
                kw_tok, name, version, _ = self.construct("system")
                self.systems.append(System(name, version, doc, public, kw_tok.line, kw_tok.column))
                trailing = self.node_docs(self.systems)
            elif word in ("rule", "constraint"):
                kw_tok, name, _, body = self.construct(word)
                self.rules.append(Rule(name, body.strip(), doc, public, kw_tok.line, kw_tok.column))
                trailing = self.node_docs(self.rules)
            elif word in _SKIPPED_TOP:
                self.construct(word)
                trailing = dropped
            elif word == "spirit":
                self.spirit_decl(doc)
                continue
            elif word in ("config", "targets", "requires") and self.peek().is_("{"):
                self.manifest_section()
                continue
            elif word == "use":
                self.use_decl(public)
                continue
            elif word == "mod":
                self.mod_decl(public)
                continue
            elif word == "module":
                self.module_decl()
                continue
            elif kw is not tok:
                raise self.error(
                    f"expected a declaration after the modifiers, found {kw.describe()}"
                )
            else:
                hint = _hint(word, _TOP_WORDS) if word else ""
                raise self.error(f"unknown {kw.describe()} at top level: {_TOP_EXPECTED}{hint}")
            seen_decl = seen_decl or len(self.items) > before_items or trailing is not None
        return file_docs

    def check_unique(self, item: Item) -> None:
        """Types (genes, enums, aliases) and values (functions, consts, vars) have unique names."""
        key = (isinstance(item, Gene | Enum | TypeAlias), item.name)
        first = self.seen.get(key)
        if first is not None:
            kind = _KIND_NAMES[type(item).__name__]
            raise DolSyntaxError(
                f"duplicate declaration of {kind} '{item.name}': '{item.name}' is already "
                f"declared at line {first.line}",
                file=self.file,
                line=item.line,
                column=item.column,
            )
        self.seen[key] = item

    # --- module structure and manifests -------------------------------------------------

    def use_decl(self, public: bool) -> None:
        kw = self.advance()
        first = self.tok
        last = self.skip_statement_line(kw)
        if last is kw:
            return
        text = self.source(first, last)
        path, version = text, None
        m = re.search(r"\s@\s*([^\s{}]+)\s*$", text)
        if m is not None and not text.lstrip().startswith("@" + m.group(1)):
            path, version = text[: m.start()], m.group(1)
        path = "".join(path.split())
        if path:
            self.uses.append(Use(path, public, version, kw.line, kw.column))

    def mod_decl(self, public: bool) -> None:
        kw = self.advance()
        if self.tok.kind is not _NAME or self.tok.line != kw.line:
            self.skip_statement_line(kw)
            return
        name = self.qualified_name(self.advance())
        inline = self.at("{")
        if inline:
            self.skip_group(f"module '{name}'")
        else:
            self.skip_statement_line(self.prev)
        self.mods.append(ModDecl(name, public, inline, kw.line, kw.column))

    def module_decl(self) -> None:
        kw = self.advance()
        if self.tok.kind is not _NAME or self.tok.line != kw.line:
            self.skip_statement_line(kw)
            return
        name = self.qualified_name(self.advance())
        version = None
        if self.at("@") and self.tok.line == kw.line:
            self.advance()
            version = self.version_text()
        if self.at("{"):
            self.skip_group(f"module '{name}'")
        else:
            self.skip_statement_line(self.prev)
        if self.module is None:
            self.module = ModuleDecl(name, version, kw.line, kw.column)

    def spirit_decl(self, doc: str | None) -> None:
        """``spirit name @ 1.0.0`` (a manifest's first line) or ``spirit Name { ... }``."""
        kw = self.advance()
        name_tok = self.expect_name("a Spirit name", "after 'spirit'")
        name = self.qualified_name(name_tok)
        version = None
        if self.at("@"):
            self.advance()
            version = self.version_text()
        if not self.at("{"):
            self.skip_statement_line(self.prev)
            if self.spirit is None:
                self.spirit = SpiritManifest(name, version, doc=doc, line=kw.line, column=kw.column)
            return
        opening = self.advance()
        keys: dict[str, str | tuple[str, ...]] = {}
        docs: list[str | None] = [doc]
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, f"spirit '{name}'")
            if tok.is_("}"):
                self.advance()
                break
            if self.at_docs():
                docs.append(self.docs_block())
            elif tok.is_("has") and self.peek().kind is _NAME and self.peek(2).is_(":"):
                self.advance()
                key = self.advance().text
                self.advance()
                keys[key] = self.manifest_value(f"'{key}' of spirit '{name}'")
            elif tok.is_("requires") and self.peek().line == tok.line:
                last = self.skip_statement_line(self.advance())
                self.dependencies.append(" ".join(self.source(tok, last).split()[1:]))
            elif tok.kind is _PUNCT and tok.text in _OPENERS:
                self.skip_group(f"spirit '{name}'")
            else:
                self.advance()
        if not keys:  # an actor-style `spirit Counter { state and hooks }`: nothing for us
            return
        display = keys.get("name")
        version_key = keys.get("version")
        lib = keys.get("lib")
        if self.spirit is None:
            self.spirit = SpiritManifest(
                display if isinstance(display, str) and display else name,
                version_key if isinstance(version_key, str) else version,
                doc=_join(*docs),
                entry=lib if isinstance(lib, str) else None,
                line=kw.line,
                column=kw.column,
            )
        deps = keys.get("dependencies")
        if isinstance(deps, tuple):
            self.dependencies.extend(deps)

    def manifest_value(self, what: str) -> str | tuple[str, ...]:
        """A manifest value: a string, a ``[list]`` of strings, or an expression's text."""
        tok = self.tok
        if tok.kind is _STRING:
            self.advance()
            return string_value(tok.text)
        if tok.is_("["):
            inside = self.group_text(what)
            return tuple(string_value(m.group()) for m in _STRINGS_IN.finditer(inside))
        if tok.is_("{"):
            self.skip_group(what)
            return ""
        return self.expression(f"for {what}")

    def manifest_section(self) -> None:
        """``config { entry: "lib.dol" ... }``, ``targets { ... }``, ``requires { ... }``."""
        kw = self.advance()
        if kw.text != "config":
            inside = self.group_text(f"the '{kw.text}' block")
            if kw.text == "requires":
                for m in _DEPENDENCY.finditer(inside):
                    self.dependencies.append(f"{m.group(1)} {string_value(m.group(2))}")
            return
        opening = self.advance()
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, "the 'config' block")
            if tok.is_("}"):
                self.advance()
                return
            if tok.kind is _NAME and self.peek().is_(":"):
                self.advance()
                self.advance()
                self.config[tok.text] = self.manifest_value(f"'{tok.text}' in 'config'")
            elif tok.kind is _PUNCT and tok.text in _OPENERS:
                self.skip_group("the 'config' block")
            else:
                self.advance()

    def manifest(self, file_doc: str | None) -> SpiritManifest | None:
        spirit = self.spirit
        if spirit is None:
            return None
        entry = self.config.get("entry")
        target = self.config.get("target")
        features = self.config.get("features", ())
        deps = [u.path + (f" {u.version}" if u.version else "") for u in self.uses]
        return attrs.evolve(
            spirit,
            doc=_join(spirit.doc, file_doc),
            entry=entry if isinstance(entry, str) and entry else spirit.entry,
            target=target if isinstance(target, str) and target else None,
            features=features if isinstance(features, tuple) else (features,),
            modules=tuple(m for m in self.mods if not m.inline),
            dependencies=tuple(dict.fromkeys([*self.dependencies, *deps])),
        )

    # --- declarations -------------------------------------------------------------------

    def gene(self, doc: str | None, public: bool) -> None:
        kw = self.advance()
        name = self.qualified_name(self.expect_name("a gene name", f"after '{kw.text}'"))
        self.gene_rest(kw, name, doc, public, self.type_params() if self.at("<") else ())

    def gene_rest(
        self, kw: Token, name: str, doc: str | None, public: bool, type_params: tuple[str, ...]
    ) -> Gene | Enum:
        """A gene after its name and type parameters: ``[extends|is Parent] { members }``.

        Adds the gene (or, for a body that is an anonymous ``enum { ... }``, the enum it
        is), after the enums declared inside it, and returns it.
        """
        extends: str | None = None
        if self.at("extends") or self.at("is"):
            word = self.advance().text
            parent = self.parse_type(f"after '{word}' in gene '{name}'")
            extends = parent.name if parent.args else str(parent)
        if self.at("where"):
            self.where_clause(f"gene '{name}'")
        opening = self.expect("{", f"to open the body of gene '{name}'")
        fields: list[GeneField] = []
        methods: list[Function] = []
        rules: list[GeneRule] = []
        nested: list[Enum] = []
        docs: list[str] = []
        pending: list[str] = []
        anonymous: tuple[Token, tuple[EnumVariant, ...]] | None = None
        field_lines: dict[str, int] = {}
        members = False
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, f"gene '{name}'")
            if tok.is_("}"):
                self.advance()
                break
            if tok.kind is _PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            if self.at_docs():
                text = self.docs_block()
                if members and self.starts_member():
                    pending.append(text)
                else:
                    docs.append(text)
                continue
            member_docs: list[str | None] = [*pending]
            pending = []
            members = True
            self.annotations(member_docs)
            tok = self.tok
            nxt = self.peek()
            word = tok.text if tok.kind is _NAME else ""
            if word and nxt.is_(":"):
                self.advance()
                fields.append(self.field(tok, name, _join(*member_docs, tok.doc), field_lines))
            elif word == "has":
                self.advance()
                name_tok = self.expect_name("a field name", f"after 'has' in gene '{name}'")
                doc_text = _join(*member_docs, tok.doc, name_tok.doc)
                fields.append(self.field(name_tok, name, doc_text, field_lines))
            elif word in ("pub", "sex", "extern", "fun", "provides"):
                member = self.member(name, member_docs, field_lines)
                if isinstance(member, Function):
                    methods.append(member)
                else:
                    fields.append(member)
            elif word == "enum" and nxt.is_("{"):
                self.advance()
                variants = self.enum_variants(f"the enum of gene '{name}'")
                if anonymous is not None:
                    raise self.error(f"gene '{name}' declares a second anonymous enum", tok)
                anonymous = (tok, variants)
                docs.extend(d for d in member_docs if d)
                if tok.doc:
                    docs.append(tok.doc)
            elif word == "enum" and nxt.kind is _NAME:
                enum = self.enum_decl(_join(*member_docs, tok.doc), False)
                nested.append(attrs.evolve(enum, owner=name))
            elif word in ("rule", "constraint", "law"):
                kw_tok, rule_name, _, body = self.construct(word)
                if word != "law":
                    rule_doc = _join(*member_docs, tok.doc)
                    rules.append(
                        GeneRule(rule_name, body.strip(), rule_doc, kw_tok.line, kw_tok.column)
                    )
            elif word and (word == "uses" or (nxt.kind is _NAME and nxt.text in _PREDICATES)):
                self.skip_statement_line(self.advance())
            else:
                hint = _hint(word, _GENE_WORDS) if word else ""
                raise self.error(
                    f"unknown {tok.describe()} in gene '{name}': {_GENE_EXPECTED}{hint}"
                )
        docs.extend(pending)
        for enum in nested:
            self.add(enum)
        result: Gene | Enum
        if anonymous is not None:
            enum_tok, variants = anonymous
            if fields or methods:
                raise self.error(
                    f"gene '{name}' is an enum (its body holds an anonymous 'enum {{ ... }}'), "
                    "so it cannot also declare fields or methods; name the enum "
                    "('enum Kind { ... }') to declare it inside the gene",
                    enum_tok,
                )
            result = Enum(name, variants, _join(doc, *docs), public, kw.line, kw.column)
        else:
            result = Gene(
                name=name,
                fields=tuple(fields),
                methods=tuple(methods),
                extends=extends,
                doc=_join(doc, *docs),
                public=public,
                type_params=type_params,
                line=kw.line,
                column=kw.column,
                rules=tuple(rules),
            )
        self.add(result)
        return result

    def modifiers(self, docs: list[str | None]) -> tuple[bool, bool, bool, str | None]:
        """``pub`` (with an optional ``(...)`` scope), then ``sex``/``extern`` (with an
        optional ABI string, ``extern "C"``), in any number: whether each was there, and
        the ABI. Their doc comments are collected into ``docs``."""
        public = sex = extern = False
        abi: str | None = None
        if self.at("pub"):
            docs.append(self.advance().doc)
            public = True
            if self.at("(") and self.tok.line == self.prev.end_line:
                self.skip_group("a visibility")
        while self.at("sex") or self.at("extern"):
            modifier = self.advance()
            docs.append(modifier.doc)
            if modifier.text == "sex":
                sex = True
            else:
                extern = True
                if self.tok.kind is _STRING:
                    abi = string_value(self.advance().text)
        return public, sex, extern, abi

    def extern_block(self, public: bool, sex: bool, abi: str | None) -> None:
        """``extern "C" { fun a(x: i32)  sex fun b() -> i64 }``: host imports."""
        opening = self.advance()
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, "the extern block")
            if tok.is_("}"):
                self.advance()
                return
            if tok.kind is _PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            docs: list[str | None] = []
            self.annotations(docs)
            inner_public, inner_sex, _, inner_abi = self.modifiers(docs)
            docs.append(self.tok.doc)
            if not self.at("fun"):
                raise self.error(f"expected 'fun' in the extern block, found {self.tok.describe()}")
            self.add(
                self.function(
                    _join(*docs),
                    public or inner_public,
                    sex=sex or inner_sex,
                    extern=True,
                    abi=inner_abi or abi,
                )
            )

    def member(
        self, gene: str, docs: list[str | None], field_lines: dict[str, int]
    ) -> Function | GeneField:
        """A gene member that starts with ``pub``, ``sex``, ``fun`` or ``provides``."""
        public, sex, extern, abi = self.modifiers(docs)
        tok = self.tok
        docs.append(tok.doc)
        if self.at("fun") or self.at("provides"):
            return self.function(
                _join(*docs),
                public,
                sex=sex,
                extern=extern,
                owner=gene,
                static=self.at("provides"),
                abi=abi,
            )
        if self.at("has") and not (sex or extern):
            self.advance()
            name_tok = self.expect_name("a field name", f"after 'has' in gene '{gene}'")
            return self.field(name_tok, gene, _join(*docs, name_tok.doc), field_lines)
        if tok.kind is _NAME and self.peek().is_(":") and not (sex or extern):
            self.advance()
            return self.field(tok, gene, _join(*docs, tok.doc), field_lines)
        raise self.error(
            f"expected 'fun' after '{self.prev.text}' in gene '{gene}', found {tok.describe()}"
        )

    def field(
        self, name_tok: Token, gene: str, doc: str | None, field_lines: dict[str, int]
    ) -> GeneField:
        """A field after its name: ``: Type [= default] [where constraint]``."""
        name = name_tok.text
        self.expect(":", f"after field name '{name}'")
        ftype = self.parse_type(f"after ':' in field '{name}' of gene '{gene}'")
        default: str | None = None
        constraint: str | None = None
        while self.at("=") or self.at("where"):
            if self.advance().text == "=":
                default = self.expression(f"after '=' in field '{name}' of gene '{gene}'")
            else:
                constraint = self.expression(f"after 'where' in field '{name}' of gene '{gene}'")
        if name in field_lines:
            raise self.error(
                f"duplicate field '{name}' in gene '{gene}': already declared at line "
                f"{field_lines[name]}",
                name_tok,
            )
        field_lines[name] = name_tok.line
        return GeneField(
            name=name,
            type=ftype,
            default=default,
            doc=doc,
            constraint=constraint,
            line=name_tok.line,
            column=name_tok.column,
        )

    def function(
        self,
        doc: str | None,
        public: bool,
        *,
        sex: bool = False,
        extern: bool = False,
        owner: str | None = None,
        static: bool = False,
        abi: str | None = None,
    ) -> Function:
        """``fun name[<T>](params) [-> Type] [where ...] [{ body }]``; the body is skipped."""
        kw = self.advance()
        name_tok = self.expect_name("a function name", f"after '{kw.text}'")
        name = name_tok.text
        label = f"method '{owner}.{name}'" if owner else f"function '{name}'"
        type_params = self.type_params() if self.at("<") else ()
        opening = self.expect("(", f"after function name '{name}'")
        params: list[Param] = []
        names: set[str] = set()
        variadic = False
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, f"the parameters of {label}")
            if tok.is_(")"):
                self.advance()
                break
            if tok.kind is _PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            if tok.is_("..."):
                self.advance()
                variadic = True
                continue
            if self.skip_receiver():
                continue
            if tok.kind is not _NAME:
                raise self.error(
                    f"expected a parameter name or ')' in {label}, found {tok.describe()}"
                )
            self.advance()
            self.expect(":", f"after parameter '{tok.text}' of {label}")
            ptype = self.parse_type(f"for parameter '{tok.text}' of {label}")
            if self.at("="):
                self.advance()
                self.expression(f"after '=' for parameter '{tok.text}' of {label}")
            if tok.text in names:
                raise self.error(f"duplicate parameter '{tok.text}' in {label}", tok)
            names.add(tok.text)
            params.append(Param(tok.text, ptype))
        returns: TypeRef | None = None
        if self.at("->"):
            self.advance()
            returns = self.parse_type(f"after '->' in {label}")
        if self.at("where"):
            self.where_clause(label)
        has_body = self.at("{")
        if has_body:
            self.skip_group(f"the body of {label}")
        elif self.at(";"):
            self.advance()
        return Function(
            name=name,
            params=tuple(params),
            returns=returns,
            doc=doc,
            public=public,
            is_host_import=(sex or extern) and not has_body,
            is_sex=sex,
            has_body=has_body,
            owner=owner,
            is_static=static,
            type_params=type_params,
            line=kw.line,
            column=kw.column,
            abi=abi,
            variadic=variadic,
        )

    def skip_receiver(self) -> bool:
        """Skip an explicit ``self`` / ``&self`` / ``&mut self`` / ``mut x`` prefix."""
        tok, nxt = self.tok, self.peek()
        receivers = ("self", "this")
        if tok.kind is _NAME and tok.text in receivers and not nxt.is_(":"):
            self.advance()
            return True
        if tok.is_("&") and (
            (nxt.kind is _NAME and nxt.text in receivers)
            or (nxt.is_("mut") and self.peek(2).text in receivers)
        ):
            while not (self.tok.text in receivers and self.tok.kind is _NAME):
                self.advance()
            self.advance()
            return True
        if tok.is_("mut") and nxt.kind is _NAME:
            self.advance()  # `mut name: Type`: the name follows
            return True
        return False

    def sex_var(self, doc: str | None, public: bool) -> SexVar:
        kw = self.advance()
        name_tok = self.expect_name("a variable name", f"after '{kw.text}'")
        name = name_tok.text
        self.expect(":", f"after variable name '{name}'")
        vtype = self.parse_type(f"after ':' in variable '{name}'")
        default: str | None = None
        if self.at("="):
            self.advance()
            default = self.expression(f"after '=' in variable '{name}'")
        return SexVar(name, vtype, default, doc, public, kw.line, kw.column)

    def const(self, doc: str | None, public: bool) -> Const:
        kw = self.advance()
        name = self.expect_name("a constant name", "after 'const'").text
        ctype: TypeRef | None = None
        if self.at(":"):
            self.advance()
            ctype = self.parse_type(f"after ':' in const '{name}'")
        self.expect("=", f"after const '{name}'")
        value = self.expression(f"after '=' in const '{name}'")
        return Const(name, ctype, value, doc, public, kw.line, kw.column)

    def type_decl(self, doc: str | None, public: bool) -> Enum | TypeAlias | None:
        """``type X = Other``, ``type X = enum { ... }``, or ``type X { fields }`` (a gene,
        added by :meth:`gene_rest`: then None)."""
        kw = self.advance()
        name = self.qualified_name(self.expect_name("a type name", "after 'type'"))
        type_params = self.type_params() if self.at("<") else ()
        if self.at("{") or self.at("extends") or self.at("is"):
            self.gene_rest(kw, name, doc, public, type_params)
            return None
        self.expect("=", f"after type name '{name}' (type {name} = Other, or = enum {{ ... }})")
        if self.at("enum") and self.peek().is_("{"):
            self.advance()
            return Enum(name, self.enum_variants(f"enum '{name}'"), doc, public, kw.line, kw.column)
        target = self.parse_type(f"after '=' in type '{name}'")
        return TypeAlias(name, target, doc, public, type_params, kw.line, kw.column)

    def enum_decl(self, doc: str | None, public: bool) -> Enum:
        kw = self.advance()
        name = self.expect_name("an enum name", "after 'enum'").text
        if self.at("<"):
            self.type_params()
        return Enum(name, self.enum_variants(f"enum '{name}'"), doc, public, kw.line, kw.column)

    def enum_variants(self, what: str) -> tuple[EnumVariant, ...]:
        """``{ A, B(payload), C = 3 }``: separated by commas or newlines."""
        opening = self.expect("{", f"to open the variants of {what}")
        variants: list[EnumVariant] = []
        names: set[str] = set()
        while True:
            tok = self.tok
            if tok.kind is _EOF:
                raise self.unclosed(opening, what)
            if tok.is_("}"):
                self.advance()
                return tuple(variants)
            if tok.kind is _PUNCT and tok.text in (",", ";", "|"):
                self.advance()
                continue
            if self.at_docs():
                self.docs_block()
                continue
            docs: list[str | None] = []
            self.annotations(docs)
            tok = self.tok
            if tok.kind is not _NAME:
                raise self.error(
                    f"expected a variant name or '}}' in {what}, found {tok.describe()}"
                )
            self.advance()
            if self.at("(") or self.at("{"):
                self.skip_group(f"variant '{tok.text}' of {what}")
            value: str | None = None
            if self.at("="):
                self.advance()
                value = self.expression(f"after '=' for variant '{tok.text}' of {what}")
            if tok.text in names:
                raise self.error(f"duplicate variant '{tok.text}' in {what}", tok)
            names.add(tok.text)
            variants.append(
                EnumVariant(tok.text, _join(*docs, tok.doc), value, tok.line, tok.column)
            )


def parse_dol(text: str, file: str = "<dol>") -> DolFile:
    """Parse DOL source ``text``; ``file`` names it in error messages and ``DolFile.path``.

    Raises :class:`DolSyntaxError` (with file, line and column) on malformed input.
    """
    lexer = Lexer(text, file)
    parser = _Parser(lexer)
    with gc_paused():
        docs = parser.parse_file()
    doc = _join(lexer.file_docs(), *docs)
    return DolFile(
        path=file,
        items=tuple(parser.items),
        doc=doc,
        traits=tuple(parser.traits),
        systems=tuple(parser.systems),
        rules=tuple(parser.rules),
        module=parser.module,
        uses=tuple(parser.uses),
        mods=tuple(parser.mods),
        spirit=parser.manifest(doc),
    )


def read_dol_text(path: str | os.PathLike[str]) -> str:
    """A ``.dol`` file's text: UTF-8 (a leading BOM is dropped), or a located error."""
    name = os.fspath(path)
    data = Path(name).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DolSyntaxError(
            f"file is not valid UTF-8 ({exc.reason}); save it as UTF-8",
            file=name,
            line=line,
            column=column,
        ) from None
    return text.removeprefix("\ufeff")


def parse_dol_file(path: str | os.PathLike[str]) -> DolFile:
    """Read and parse a UTF-8 ``.dol`` file (a leading BOM is ignored)."""
    name = os.fspath(path)
    return parse_dol(read_dol_text(name), file=name)


__all__ = ["KEYWORDS", "parse_dol", "parse_dol_file", "read_dol_text", "string_value"]
