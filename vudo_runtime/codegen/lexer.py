"""Tokenizer for DOL source.

It knows what the parser must never misread: string and char literals, ``//`` and
nested ``/* */`` comments, ``///`` doc comments (attached to the token they sit directly
above) and the free prose of ``docs { ... }`` / ``exegesis { ... }`` blocks, which it
returns as one raw text token. Characters it has no use for become one-character
punctuation tokens rather than errors, so a function body full of unfamiliar syntax
still tokenizes; only unterminated literals, comments and docs blocks are errors.
"""

from __future__ import annotations

import enum
import re

import attrs

from vudo_runtime.errors import DolSyntaxError


class TokenKind(enum.Enum):
    """What a token is; keywords are NAMEs, the parser gives them meaning by context."""

    NAME = "name"
    NUMBER = "number"
    STRING = "string"
    CHAR = "char"
    PUNCT = "punct"
    DOCS_TEXT = "docs text"
    EOF = "end of file"


@attrs.frozen
class Token:
    """One token with its 1-based position, its source span and any ``///`` doc above it."""

    kind: TokenKind
    text: str
    line: int
    column: int
    offset: int
    end: int
    end_line: int
    doc: str | None = None

    def is_(self, text: str) -> bool:
        """True for a NAME or punctuation token spelled ``text``."""
        return self.text == text and self.kind in (TokenKind.NAME, TokenKind.PUNCT)

    def describe(self) -> str:
        """How error messages show this token: ``'}'``, ``end of file``, ``string "x"``."""
        if self.kind is TokenKind.EOF:
            return "end of file"
        if self.kind is TokenKind.DOCS_TEXT:
            return "docs text"
        text = self.text if len(self.text) <= 30 else self.text[:27] + "..."
        if self.kind is TokenKind.STRING:
            return f"string {text}"
        if self.kind is TokenKind.CHAR:
            return f"char {text}"
        return repr(text)


#: Keywords that open a docs block whose content is prose, not tokens.
DOCS_KEYWORDS = frozenset({"docs", "exegesis"})

# Longest first: the lexer takes the first that matches.
_MULTI_PUNCT = ("...", "..", "->", "=>", "::", "==", "!=", "&&", "||")

_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d\w*(?:\.\d\w*)*")
_CHAR = re.compile(r"'(?:\\u\{[0-9A-Fa-f]{1,6}\}|\\x[0-9A-Fa-f]{2}|\\.|[^'\\\n])'")
_WS = re.compile(r"[ \t\r\f\v]+")


class _Lexer:
    """Single pass over the text; ``tokenize`` is the interface."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []
        self.file_doc: list[str] = []
        # The ``///`` run being collected, and the line of its last comment.
        self.pending_doc: list[str] = []
        self.pending_doc_line = 0

    # --- positions --------------------------------------------------------------------

    def column(self, pos: int) -> int:
        return pos - self.line_start + 1

    def error(self, message: str, line: int, column: int) -> DolSyntaxError:
        return DolSyntaxError(message, file=self.file, line=line, column=column)

    def advance_to(self, pos: int) -> None:
        """Move to ``pos``, counting the newlines passed."""
        chunk = self.text[self.pos : pos]
        newlines = chunk.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = self.pos + chunk.rindex("\n") + 1
        self.pos = pos

    # --- doc comments -------------------------------------------------------------------

    def note_doc(self, text: str, line: int) -> None:
        """Collect one ``///`` line; a run broken by a blank line starts over."""
        if self.pending_doc and line > self.pending_doc_line + 1:
            self.detach_doc()
        self.pending_doc.append(text)
        self.pending_doc_line = line

    def detach_doc(self) -> None:
        """A doc run not directly above a token: file docs if nothing came before it."""
        if self.pending_doc and not self.tokens:
            if self.file_doc:
                self.file_doc.append("")
            self.file_doc.extend(self.pending_doc)
        self.pending_doc = []

    def take_doc(self, line: int) -> str | None:
        """The doc run directly above a token on ``line``, if any."""
        if not self.pending_doc:
            return None
        if line > self.pending_doc_line + 1:
            self.detach_doc()
            return None
        doc = "\n".join(self.pending_doc).strip()
        self.pending_doc = []
        return doc or None

    # --- tokens -----------------------------------------------------------------------

    def emit(self, kind: TokenKind, start: int, end: int, text: str | None = None) -> None:
        line, column = self.line, self.column(start)
        self.advance_to(end)
        self.tokens.append(
            Token(
                kind=kind,
                text=self.text[start:end] if text is None else text,
                line=line,
                column=column,
                offset=start,
                end=end,
                end_line=self.line,
                doc=self.take_doc(line),
            )
        )

    def run(self) -> list[Token]:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c == "\n":
                self.advance_to(self.pos + 1)
            elif c in " \t\r\f\v":
                m = _WS.match(text, self.pos)
                assert m is not None
                self.pos = m.end()
            elif text.startswith("//", self.pos):
                self.line_comment()
            elif text.startswith("/*", self.pos):
                self.block_comment()
            elif c == '"':
                self.string()
            elif c == "'":
                m = _CHAR.match(text, self.pos)
                self.emit(
                    TokenKind.CHAR if m else TokenKind.PUNCT,
                    self.pos,
                    m.end() if m else self.pos + 1,
                )
            elif "0" <= c <= "9":
                m = _NUMBER.match(text, self.pos)
                assert m is not None
                self.emit(TokenKind.NUMBER, self.pos, m.end())
            else:
                m = _NAME.match(text, self.pos)
                if m is not None:
                    self.emit(TokenKind.NAME, self.pos, m.end())
                    if m.group() in DOCS_KEYWORDS:
                        self.maybe_docs_text()
                else:
                    self.punct()
        self.detach_doc()
        self.emit(TokenKind.EOF, n, n, "")
        return self.tokens

    def line_comment(self) -> None:
        start = self.pos
        end = self.text.find("\n", start)
        end = len(self.text) if end < 0 else end
        body = self.text[start:end]
        if body.startswith("///") and not body.startswith("////"):
            doc = body[3:]
            self.note_doc(doc[1:] if doc.startswith(" ") else doc, self.line)
        elif body.startswith("//!"):
            doc = body[3:]
            self.file_doc.append((doc[1:] if doc.startswith(" ") else doc).rstrip())
        elif self.pending_doc and self.line == self.pending_doc_line + 1:
            self.pending_doc_line = self.line  # a plain comment keeps the run attached
        self.pos = end

    def block_comment(self) -> None:
        start, line, column = self.pos, self.line, self.column(self.pos)
        depth, i, text = 0, start, self.text
        while True:
            opening, closing = text.find("/*", i), text.find("*/", i)
            if closing < 0:
                raise self.error(
                    "unterminated block comment: '/*' is never closed by '*/'", line, column
                )
            if 0 <= opening < closing:
                depth += 1
                i = opening + 2
            else:
                depth -= 1
                i = closing + 2
                if depth == 0:
                    break
        self.advance_to(i)

    def string(self) -> None:
        start, line, column = self.pos, self.line, self.column(self.pos)
        text, i, n = self.text, start + 1, len(self.text)
        while i < n:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == '"':
                self.emit(TokenKind.STRING, start, i + 1)
                return
            else:
                i += 1
        raise self.error("unterminated string literal: add the closing '\"'", line, column)

    def punct(self) -> None:
        for p in _MULTI_PUNCT:
            if self.text.startswith(p, self.pos):
                self.emit(TokenKind.PUNCT, self.pos, self.pos + len(p))
                return
        self.emit(TokenKind.PUNCT, self.pos, self.pos + 1)

    def maybe_docs_text(self) -> None:
        """After ``docs``/``exegesis``: a ``{`` opens prose, read raw up to the matching ``}``.

        Only braces count inside; quotes and apostrophes are plain prose.
        """
        text, n = self.text, len(self.text)
        i = self.pos
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] != "{":
            return
        self.advance_to(i)
        line, column = self.line, self.column(i)
        depth, j = 0, i
        while j < n:
            c = text[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        else:
            raise self.error(
                f"unclosed '{{' of docs block opened at line {line}, column {column}: "
                "reached end of file; docs text counts braces, so balance them or close "
                "the block with '}'",
                line,
                column,
            )
        self.emit(TokenKind.DOCS_TEXT, i, j + 1, text[i + 1 : j])


def tokenize(text: str, file: str = "<dol>") -> tuple[list[Token], str | None]:
    """Split DOL ``text`` into tokens (ending with EOF) and the file-level doc comments.

    File docs are ``//!`` lines and any ``///`` run at the top of the file that is
    separated from the first declaration by a blank line.
    Raises :class:`DolSyntaxError` for unterminated strings, comments and docs blocks.
    """
    lexer = _Lexer(text, file)
    tokens = lexer.run()
    doc = "\n".join(lexer.file_doc).strip()
    return tokens, doc or None
