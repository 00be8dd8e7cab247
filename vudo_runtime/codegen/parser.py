"""Recursive-descent parser for the declaration level of DOL.

It reads what a host needs (genes and their fields, functions and methods, host imports,
``sex var`` globals, enums, constants, type aliases, doc comments and docs blocks) and
skips, by brace matching over real tokens, everything a host does not: function bodies,
``rule``/``constraint``, ``trait``, ``system``, ``impl``, ``use`` and ``mod``. Every loop
consumes a token per turn or raises, so no input makes it hang; every failure is a
:class:`DolSyntaxError` naming the file, line, column and what was expected.
"""

from __future__ import annotations

import difflib
import os
import textwrap
from collections.abc import Iterable
from pathlib import Path

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
    Item,
    Param,
    SexVar,
    TypeAlias,
    TypeRef,
)
from vudo_runtime.codegen.lexer import DOCS_KEYWORDS, Token, TokenKind, tokenize
from vudo_runtime.errors import DolSyntaxError

#: The reserved words of DOL's declaration level.
KEYWORDS = frozenset(
    {
        "gen", "gene", "has", "fun", "pub", "sex", "rule", "constraint", "docs", "exegesis",
        "trait", "system", "extends", "use", "mod", "const", "type", "enum", "var", "where",
    }
)  # fmt: skip

# Words that start a declaration or a gene member: an expression never runs past them.
_DECL_WORDS = KEYWORDS - {"extends", "where"} | {
    "module", "impl", "spirit", "evolves", "evo", "law", "provides", "extern",
}  # fmt: skip
# Constructs read only to be skipped: a header, then a braced block.
_SKIPPED_TOP = frozenset(
    {"rule", "constraint", "trait", "system", "impl", "spirit", "evolves", "evo", "law", "test"}
)
_SKIPPED_IN_GENE = frozenset({"rule", "constraint", "law"})
# Old DOL 1.0 statements inside a gene: ``container has identity``, ``state is running``.
_PREDICATES = frozenset({"has", "is", "derives", "requires", "uses", "emits", "matches", "never"})
_NOT_TYPES = KEYWORDS | {"module", "impl", "spirit", "law", "provides", "extern"}
# Punctuation after which an expression goes on across a newline.
_NO_CONTINUE_AFTER = frozenset({")", "]", "}", "?"})
# Punctuation that cannot start a new member, so a line starting with it continues.
_NO_CONTINUE_BEFORE = frozenset({"@", "#", "}", ",", ";"})
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
_TOP_WORDS = sorted(KEYWORDS | _SKIPPED_TOP | {"module", "gene"})
_GENE_WORDS = ["has", "fun", "pub", "sex", "rule", "constraint", "docs", "exegesis", "provides"]


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


class _Parser:
    """Cursor over the token list; one method per construct."""

    def __init__(self, tokens: list[Token], file: str, text: str) -> None:
        self.toks = tokens
        self.pos = 0
        self.file = file
        self.text = text

    # --- cursor -------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        """The current token; moves past it (never past EOF)."""
        tok = self.toks[self.pos]
        if tok.kind is not TokenKind.EOF:
            self.pos += 1
        return tok

    @property
    def prev(self) -> Token:
        return self.toks[max(self.pos - 1, 0)]

    def at(self, text: str) -> bool:
        return self.tok.is_(text)

    def at_eof(self) -> bool:
        return self.tok.kind is TokenKind.EOF

    def error(self, message: str, tok: Token | None = None) -> DolSyntaxError:
        where = self.tok if tok is None else tok
        return DolSyntaxError(message, file=self.file, line=where.line, column=where.column)

    def expect(self, text: str, context: str) -> Token:
        if self.at(text):
            return self.advance()
        raise self.error(f"expected '{text}' {context}, found {self.tok.describe()}")

    def expect_name(self, what: str, context: str) -> Token:
        if self.tok.kind is TokenKind.NAME:
            return self.advance()
        raise self.error(f"expected {what} {context}, found {self.tok.describe()}")

    def qualified_name(self, first: Token) -> str:
        """``a.b.c`` or ``a::b`` after its first part ``first``."""
        name = first.text
        while (self.at(".") or self.at("::")) and self.peek().kind is TokenKind.NAME:
            name += self.advance().text + self.advance().text
        return name

    # --- skipping -----------------------------------------------------------------------

    def unclosed(self, opening: Token, what: str) -> DolSyntaxError:
        close = {"{": "}", "(": ")", "[": "]", "<": ">"}.get(opening.text, "}")
        return self.error(
            f"unclosed '{opening.text}' of {what} opened at line {opening.line}, column "
            f"{opening.column}: reached end of file; expected '{close}'",
            opening,
        )

    def skip_group(self, what: str) -> None:
        """Skip from the current ``{``, ``(`` or ``[`` to its match; counts that pair only."""
        opening = self.advance()
        close = {"{": "}", "(": ")", "[": "]"}[opening.text]
        depth = 1
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF:
                raise self.unclosed(opening, what)
            self.advance()
            if tok.is_(opening.text):
                depth += 1
            elif tok.is_(close):
                depth -= 1
                if depth == 0:
                    return

    def skip_statement_line(self, first: Token) -> None:
        """Skip a one-line statement (``use``, ``mod``, a DOL 1.0 predicate) after ``first``.

        A braced group on the line is skipped whole and ends the statement.
        """
        last_line = first.end_line
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF or tok.line > last_line:
                return
            if tok.kind is TokenKind.PUNCT and tok.text in ("}", ")", "]", ",", ";"):
                return
            if tok.is_("{"):
                self.skip_group(f"the block of '{first.text}'")
                return
            if tok.is_("(") or tok.is_("["):
                self.skip_group(f"'{first.text}'")
            else:
                self.advance()
            last_line = self.prev.end_line

    def skip_construct(self) -> None:
        """Skip ``rule x { }``, ``trait X { }``, ``system X @ 1.0.0 { }`` and the like."""
        kw = self.advance()
        label = kw.text
        if self.tok.kind is TokenKind.NAME:
            label += f" '{self.tok.text}'"
        first = True
        while True:
            tok = self.tok
            if tok.is_("{"):
                self.skip_group(label)
                return
            if (
                tok.kind is TokenKind.EOF
                or tok.is_("}")
                or (not first and tok.kind is TokenKind.NAME and tok.text in _DECL_WORDS)
            ):
                raise self.error(
                    f"expected '{{' to open the body of {label}, found {tok.describe()}"
                )
            if tok.is_("(") or tok.is_("["):
                self.skip_group(label)
            else:
                self.advance()
            first = False

    def annotations(self, docs: list[str | None]) -> None:
        """Skip ``@name(...)`` and ``#[...]`` attributes, keeping any doc comment on them."""
        while True:
            tok = self.tok
            if tok.is_("@") and self.peek().kind is TokenKind.NAME:
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
            if tok.kind is TokenKind.EOF:
                break
            punct = tok.kind is TokenKind.PUNCT
            if depth == 0:
                if punct and tok.text in ("}", ")", "]", ",", ";"):
                    break
                if tok.kind is TokenKind.NAME and (tok.text in _DECL_WORDS or tok.text == "where"):
                    break
                if last is not None and tok.line > last.end_line and not self.continues(last, tok):
                    break
                if (
                    last is not None
                    and tok.kind is TokenKind.NAME
                    and self.peek().is_(":")
                    and not last.is_("?")
                ):
                    break  # `name:` starts the next field, even on the same line
            if punct and tok.text in ("(", "[", "{"):
                depth += 1
            elif punct and tok.text in (")", "]", "}"):
                depth -= 1
            self.advance()
            last = tok
        if last is None:
            raise self.error(f"expected an expression {context}, found {start.describe()}")
        return self.text[start.offset : last.end]

    @staticmethod
    def continues(last: Token, nxt: Token) -> bool:
        if last.kind is TokenKind.PUNCT and last.text not in _NO_CONTINUE_AFTER:
            return True
        return nxt.kind is TokenKind.PUNCT and nxt.text not in _NO_CONTINUE_BEFORE

    def docs_block(self) -> str:
        kw = self.advance()
        if self.tok.kind is TokenKind.DOCS_TEXT:
            return _docs_text(self.advance().text)
        raise self.error(f"expected '{{' after '{kw.text}', found {self.tok.describe()}")

    # --- types --------------------------------------------------------------------------

    def type_params(self) -> tuple[str, ...]:
        """``<T, U: Bound, V = Default>`` -> the parameter names."""
        opening = self.advance()
        names: list[str] = []
        depth, want_name = 1, True
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF or any(tok.is_(s) for s in ("{", "}", "(", ")")):
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
            elif tok.kind is TokenKind.NAME and depth == 1 and want_name:
                names.append(tok.text)
                want_name = False

    def parse_type(self, context: str, depth: int = 0) -> TypeRef:
        """One type: a name with optional ``<args>``, ``&T``, ``(A, B)``, ``[T]``, ``fun(A) -> R``,
        or an inline ``enum { A, B }``; a trailing ``?`` means ``Option<...>``."""
        if depth > _MAX_TYPE_DEPTH:
            raise self.error(f"type nested more than {_MAX_TYPE_DEPTH} levels deep {context}")
        tok = self.tok
        inner = f"in a type {context}"
        result: TypeRef
        if tok.is_("&") or tok.is_("&&"):
            self.advance()
            if self.at("mut"):
                self.advance()
            result = TypeRef(REF, (self.parse_type(inner, depth + 1),))
            if tok.text == "&&":
                result = TypeRef(REF, (result,))
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
        elif tok.kind is TokenKind.NAME and tok.text in ("fun", "Fn") and self.peek().is_("("):
            self.advance()
            params, _ = self.type_list(")", "the function type", depth)
            ret = TypeRef(TUPLE)
            if self.at("->"):
                self.advance()
                ret = self.parse_type(f"after '->' {inner}", depth + 1)
            result = TypeRef(FUNCTION, (*params, ret))
        elif tok.kind is TokenKind.NAME and tok.text not in _NOT_TYPES:
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

    def parse_file(self) -> tuple[list[Item], list[str]]:
        """All declarations, plus docs blocks that belong to the file itself."""
        items: list[Item] = []
        file_docs: list[str] = []
        seen: dict[tuple[bool, str], Item] = {}
        # What came last: "gene" (a DOL 1.0 trailing docs block documents it), "skipped"
        # (the docs belong to a rule/trait/system and are dropped) or "other" (file docs).
        last = "other"
        while not self.at_eof():
            tok = self.tok
            if tok.kind is TokenKind.PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            if tok.is_("}"):
                raise self.error("unmatched '}' at top level: there is no open '{' to close")
            docs: list[str | None] = []
            self.annotations(docs)
            public, sex, extern = self.modifiers(docs)
            kw = self.tok
            docs.append(kw.doc)
            doc = _join(*docs)
            word = kw.text if kw.kind is TokenKind.NAME else ""
            item: Item | None = None
            if sex or extern:
                if word == "fun":
                    item = self.function(doc, public, sex=sex, extern=extern)
                elif word == "var" and not extern:
                    item = self.sex_var(doc, public)
                else:
                    raise self.error(
                        f"expected 'fun' or 'var' after '{self.prev.text}', found {kw.describe()}"
                    )
            elif word in ("gen", "gene"):
                item = self.gene(doc, public)
            elif word == "fun":
                item = self.function(doc, public)
            elif word == "var":
                item = self.sex_var(doc, public)
            elif word == "const":
                item = self.const(doc, public)
            elif word == "type":
                item = self.type_decl(doc, public)
            elif word == "enum" and self.peek().kind is TokenKind.NAME:
                item = self.enum_decl(doc, public)
            elif word in DOCS_KEYWORDS:
                text = self.docs_block()
                if last == "gene":
                    items[-1] = attrs.evolve(items[-1], doc=_join(items[-1].doc, text))
                elif last == "other":
                    file_docs.append(text)
                last = "other"
                continue
            elif word in _SKIPPED_TOP:
                self.skip_construct()
                last = "skipped"
                continue
            elif word in ("use", "mod", "module"):
                self.skip_statement_line(self.advance())
            elif kw is not tok:
                raise self.error(
                    f"expected a declaration after the modifiers, found {kw.describe()}"
                )
            else:
                hint = _hint(word, _TOP_WORDS) if word else ""
                raise self.error(f"unknown {kw.describe()} at top level: {_TOP_EXPECTED}{hint}")
            last = "other"
            if item is not None:
                self.check_unique(seen, item)
                items.append(item)
                last = "gene" if isinstance(item, Gene) else "other"
        return items, file_docs

    def check_unique(self, seen: dict[tuple[bool, str], Item], item: Item) -> None:
        """Types (genes, enums, aliases) and values (functions, consts, vars) have unique names."""
        key = (isinstance(item, Gene | Enum | TypeAlias), item.name)
        first = seen.get(key)
        if first is not None:
            kind = _KIND_NAMES[type(item).__name__]
            raise DolSyntaxError(
                f"duplicate declaration of {kind} '{item.name}': '{item.name}' is already "
                f"declared at line {first.line}",
                file=self.file,
                line=item.line,
                column=item.column,
            )
        seen[key] = item

    # --- declarations -------------------------------------------------------------------

    def gene(self, doc: str | None, public: bool) -> Gene:
        kw = self.advance()
        name = self.qualified_name(self.expect_name("a gene name", f"after '{kw.text}'"))
        return self.gene_rest(kw, name, doc, public, self.type_params() if self.at("<") else ())

    def gene_rest(
        self, kw: Token, name: str, doc: str | None, public: bool, type_params: tuple[str, ...]
    ) -> Gene:
        """A gene after its name and type parameters: ``[extends Parent] { members }``."""
        extends: str | None = None
        if self.at("extends"):
            self.advance()
            parent = self.parse_type(f"after 'extends' in gene '{name}'")
            extends = parent.name if parent.args else str(parent)
        opening = self.expect("{", f"to open the body of gene '{name}'")
        fields: list[GeneField] = []
        methods: list[Function] = []
        docs: list[str] = []
        field_lines: dict[str, int] = {}
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF:
                raise self.unclosed(opening, f"gene '{name}'")
            if tok.is_("}"):
                self.advance()
                break
            if tok.kind is TokenKind.PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            member_docs: list[str | None] = []
            self.annotations(member_docs)
            tok = self.tok
            nxt = self.peek()
            word = tok.text if tok.kind is TokenKind.NAME else ""
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
            elif word in DOCS_KEYWORDS:
                docs.append(self.docs_block())
            elif word in _SKIPPED_IN_GENE:
                self.skip_construct()
            elif word and (
                word == "uses" or (nxt.kind is TokenKind.NAME and nxt.text in _PREDICATES)
            ):
                self.skip_statement_line(self.advance())
            else:
                hint = _hint(word, _GENE_WORDS) if word else ""
                raise self.error(
                    f"unknown {tok.describe()} in gene '{name}': {_GENE_EXPECTED}{hint}"
                )
        return Gene(
            name=name,
            fields=tuple(fields),
            methods=tuple(methods),
            extends=extends,
            doc=_join(doc, *docs),
            public=public,
            type_params=type_params,
            line=kw.line,
            column=kw.column,
        )

    def modifiers(self, docs: list[str | None]) -> tuple[bool, bool, bool]:
        """``pub`` (with an optional ``(...)`` scope), then ``sex``/``extern``, in any number:
        whether each was there. Their doc comments are collected into ``docs``."""
        public = sex = extern = False
        if self.at("pub"):
            docs.append(self.advance().doc)
            public = True
            if self.at("(") and self.tok.line == self.prev.end_line:
                self.skip_group("a visibility")
        while self.at("sex") or self.at("extern"):
            modifier = self.advance()
            docs.append(modifier.doc)
            sex = sex or modifier.text == "sex"
            extern = extern or modifier.text == "extern"
        return public, sex, extern

    def member(
        self, gene: str, docs: list[str | None], field_lines: dict[str, int]
    ) -> Function | GeneField:
        """A gene member that starts with ``pub``, ``sex``, ``fun`` or ``provides``."""
        public, sex, extern = self.modifiers(docs)
        tok = self.tok
        docs.append(tok.doc)
        if self.at("fun") or self.at("provides"):
            return self.function(
                _join(*docs), public, sex=sex, extern=extern, owner=gene, static=self.at("provides")
            )
        if self.at("has") and not (sex or extern):
            self.advance()
            name_tok = self.expect_name("a field name", f"after 'has' in gene '{gene}'")
            return self.field(name_tok, gene, _join(*docs, name_tok.doc), field_lines)
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
    ) -> Function:
        """``fun name[<T>](params) [-> Type] [{ body }]``; the body is skipped."""
        kw = self.advance()
        name_tok = self.expect_name("a function name", f"after '{kw.text}'")
        name = name_tok.text
        label = f"method '{owner}.{name}'" if owner else f"function '{name}'"
        type_params = self.type_params() if self.at("<") else ()
        opening = self.expect("(", f"after function name '{name}'")
        params: list[Param] = []
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF:
                raise self.unclosed(opening, f"the parameters of {label}")
            if tok.is_(")"):
                self.advance()
                break
            if tok.kind is TokenKind.PUNCT and tok.text in (",", ";"):
                self.advance()
                continue
            if self.skip_receiver():
                continue
            if tok.kind is not TokenKind.NAME:
                raise self.error(
                    f"expected a parameter name or ')' in {label}, found {tok.describe()}"
                )
            self.advance()
            self.expect(":", f"after parameter '{tok.text}' of {label}")
            ptype = self.parse_type(f"for parameter '{tok.text}' of {label}")
            if self.at("="):
                self.advance()
                self.expression(f"after '=' for parameter '{tok.text}' of {label}")
            if any(p.name == tok.text for p in params):
                raise self.error(f"duplicate parameter '{tok.text}' in {label}", tok)
            params.append(Param(tok.text, ptype))
        returns: TypeRef | None = None
        if self.at("->"):
            self.advance()
            returns = self.parse_type(f"after '->' in {label}")
        if self.at("where"):
            self.advance()
            while not (self.at("{") or self.at("}") or self.at_eof()):
                self.advance()
            if not self.at("{"):
                raise self.error(
                    f"expected '{{' after the 'where' clause of {label}, "
                    f"found {self.tok.describe()}"
                )
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
        )

    def skip_receiver(self) -> bool:
        """Skip an explicit ``self`` / ``&self`` / ``&mut self`` / ``mut x`` prefix."""
        tok, nxt = self.tok, self.peek()
        receivers = ("self", "this")
        if tok.kind is TokenKind.NAME and tok.text in receivers and not nxt.is_(":"):
            self.advance()
            return True
        if tok.is_("&") and (
            (nxt.kind is TokenKind.NAME and nxt.text in receivers)
            or (nxt.is_("mut") and self.peek(2).text in receivers)
        ):
            while not (self.tok.text in receivers and self.tok.kind is TokenKind.NAME):
                self.advance()
            self.advance()
            return True
        if tok.is_("mut") and nxt.kind is TokenKind.NAME:
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

    def type_decl(self, doc: str | None, public: bool) -> Gene | Enum | TypeAlias:
        """``type X = Other``, ``type X = enum { ... }``, or ``type X { fields }`` (a gene)."""
        kw = self.advance()
        name = self.qualified_name(self.expect_name("a type name", "after 'type'"))
        type_params = self.type_params() if self.at("<") else ()
        if self.at("{") or self.at("extends"):
            return self.gene_rest(kw, name, doc, public, type_params)
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
        while True:
            tok = self.tok
            if tok.kind is TokenKind.EOF:
                raise self.unclosed(opening, what)
            if tok.is_("}"):
                self.advance()
                return tuple(variants)
            if tok.kind is TokenKind.PUNCT and tok.text in (",", ";", "|"):
                self.advance()
                continue
            docs: list[str | None] = []
            self.annotations(docs)
            tok = self.tok
            if tok.kind is not TokenKind.NAME:
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
            if any(v.name == tok.text for v in variants):
                raise self.error(f"duplicate variant '{tok.text}' in {what}", tok)
            variants.append(
                EnumVariant(tok.text, _join(*docs, tok.doc), value, tok.line, tok.column)
            )


def parse_dol(text: str, file: str = "<dol>") -> DolFile:
    """Parse DOL source ``text``; ``file`` names it in error messages and ``DolFile.path``.

    Raises :class:`DolSyntaxError` (with file, line and column) on malformed input.
    """
    tokens, file_doc = tokenize(text, file)
    items, docs = _Parser(tokens, file, text).parse_file()
    return DolFile(path=file, items=tuple(items), doc=_join(file_doc, *docs))


def parse_dol_file(path: str | os.PathLike[str]) -> DolFile:
    """Read and parse a UTF-8 ``.dol`` file (a leading BOM is ignored)."""
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
    return parse_dol(text.removeprefix("\ufeff"), file=name)


__all__ = ["KEYWORDS", "parse_dol", "parse_dol_file"]
