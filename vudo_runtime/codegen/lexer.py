"""Tokenizer for DOL source.

It knows what the parser must never misread: string and char literals, ``//`` and ``--``
line comments (DOL's lexer takes both), nested ``/* */`` comments, ``///`` doc comments
(attached to the token they sit directly above) and the free prose of ``docs { ... }`` /
``exegesis { ... }`` blocks, which it returns as one raw text token. Characters it has no
use for become one-character punctuation tokens rather than errors, so a function body
full of unfamiliar syntax still tokenizes; only unterminated literals, comments and docs
blocks are errors.

The :class:`Lexer` hands tokens to the parser one at a time and can jump over a whole
bracketed group (a function body, a rule) at character level, without making a token of
what is inside: the regular expressions do the scanning, so a file's bodies cost next to
nothing and the whole front end stays linear in the input.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import re
from collections.abc import Iterator
from typing import NamedTuple

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


_NAME_KIND = TokenKind.NAME
_PUNCT_KIND = TokenKind.PUNCT


class Token(NamedTuple):
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
        return self.text == text and (self.kind is _NAME_KIND or self.kind is _PUNCT_KIND)

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


# NamedTuple's own __new__ without its Python-level wrapper: the lexer's hot path.
_new_token = tuple.__new__

#: Keywords that open a docs block whose content is prose, not tokens.
DOCS_KEYWORDS = frozenset({"docs", "exegesis"})

# Longest first: the lexer takes the first that matches.
_MULTI_PUNCT = ("...", "..", "->", "=>", "::", "==", "!=", "&&", "||")

_TOKEN = re.compile(
    r"""[ \t\r\f\v\n]*+(?:
      ([^\W\d]\w*)
    | (\d\w*(?:\.\d\w*)*)
    | (\.\.\.|\.\.|->|=>|::|==|!=|&&|\|\|)
    | (//|/\*|--)
    | ("[^"\\]*(?:\\.[^"\\]*)*")
    | ('(?:\\u\{[0-9A-Fa-f]{1,6}\}|\\x[0-9A-Fa-f]{2}|\\.|[^'\\\n])')
    | (")
    | (.)
    )""",
    re.X | re.S,
)
_NAME_GROUP, _STRING_GROUP, _BAD_QUOTE_GROUP = 1, 5, 7
_GROUP_KINDS: tuple[TokenKind | None, ...] = (
    None,
    TokenKind.NAME,
    TokenKind.NUMBER,
    TokenKind.PUNCT,
    None,
    TokenKind.STRING,
    TokenKind.CHAR,
    TokenKind.PUNCT,
    TokenKind.PUNCT,
)
_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d\w*(?:\.\d\w*)*")
_CHAR = re.compile(r"'(?:\\u\{[0-9A-Fa-f]{1,6}\}|\\x[0-9A-Fa-f]{2}|\\.|[^'\\\n])'")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_WS = re.compile(r"[ \t\r\f\v\n]+")
_BLOCK = re.compile(r"/\*|\*/")
_BRACES = re.compile(r"[{}]")
_DOCS_OPEN = re.compile(r"\s*\{")
_CLOSERS = {"{": "}", "(": ")", "[": "]"}
# What matters while jumping over a group opened by the key: that pair, anything that
# starts a literal or a comment, and a docs block (its prose may hold lone quotes).
_SKIP = {
    opening: re.compile(
        "[" + re.escape(opening + closing) + r"\"'/]|--|(?<!\w)(?:docs|exegesis)(?!\w)"
    )
    for opening, closing in _CLOSERS.items()
}


class Lexer:
    """A single pass over DOL text, one token per :meth:`next_token` call.

    ``file_doc`` collects the file-level doc comments (``//!`` lines, and a ``///`` run at
    the top that no declaration claims) as ``(offset, text)`` pairs.
    """

    def __init__(self, text: str, file: str = "<dol>") -> None:
        self.text = text
        self.file = file
        self.n = len(text)
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.count = 0  # tokens handed out
        self.file_doc: list[tuple[int, str]] = []
        # The ``///`` run being collected, and the line of its last comment.
        self.pending_doc: list[str] = []
        self.pending_doc_line = 0
        # The DOCS_TEXT token read with a ``docs`` keyword, handed out next.
        self.pending_docs_text: Token | None = None

    # --- positions --------------------------------------------------------------------

    def error(self, message: str, line: int, column: int) -> DolSyntaxError:
        return DolSyntaxError(message, file=self.file, line=line, column=column)

    def advance_to(self, pos: int) -> None:
        """Move to ``pos``, counting the newlines passed."""
        text = self.text
        newlines = text.count("\n", self.pos, pos)
        if newlines:
            self.line += newlines
            self.line_start = text.rindex("\n", self.pos, pos) + 1
        self.pos = pos

    def error_at(self, pos: int, message: str) -> DolSyntaxError:
        self.advance_to(pos)
        return self.error(message, self.line, pos - self.line_start + 1)

    def rewind(self, tok: Token) -> None:
        """Continue right after ``tok`` (a token this lexer handed out)."""
        if self.pos == tok.end:
            return
        self.pos = tok.end
        self.line = tok.end_line
        self.line_start = self.text.rfind("\n", 0, tok.end) + 1
        self.pending_doc = []
        while self.file_doc and self.file_doc[-1][0] >= tok.end:
            self.file_doc.pop()

    # --- doc comments -------------------------------------------------------------------

    def note_doc(self, text: str, line: int) -> None:
        """Collect one ``///`` line; a run broken by a blank line starts over."""
        if self.pending_doc and line > self.pending_doc_line + 1:
            self.detach_doc()
        self.pending_doc.append(text)
        self.pending_doc_line = line

    def detach_doc(self) -> None:
        """A doc run not directly above a token: file docs if nothing came before it."""
        if self.pending_doc and not self.count:
            if self.file_doc:
                self.file_doc.append((self.pos, ""))
            self.file_doc.extend((self.pos, line) for line in self.pending_doc)
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

    def file_docs(self) -> str | None:
        """The file-level doc comments seen so far, or None."""
        doc = "\n".join(text for _, text in self.file_doc).strip()
        return doc or None

    # --- tokens -----------------------------------------------------------------------

    def make(self, kind: TokenKind, start: int, end: int, text: str | None = None) -> Token:
        line, column = self.line, start - self.line_start + 1
        self.advance_to(end)
        self.count += 1
        return Token(
            kind,
            self.text[start:end] if text is None else text,
            line,
            column,
            start,
            end,
            self.line,
            self.take_doc(line) if self.pending_doc else None,
        )

    def next_token(self) -> Token:
        """The next token; EOF (forever) at the end."""
        if self.pending_docs_text is not None:
            docs, self.pending_docs_text = self.pending_docs_text, None
            return docs
        out: list[Token] = []
        self.fill(out, 1)
        if len(out) > 1:  # a docs keyword and its text
            self.pending_docs_text = out[1]
        return out[0]

    def fill(self, out: list[Token], limit: int = 256) -> None:
        """Append the next tokens to ``out``: up to ``limit`` of them, stopping after a
        ``{`` (the parser may jump over its group), a docs block, or EOF."""
        if self.pending_docs_text is not None:
            out.append(self.pending_docs_text)
            self.pending_docs_text = None
            return
        text = self.text
        match = _TOKEN.match
        count = text.count
        kinds = _GROUP_KINDS
        append = out.append
        line, line_start, pos = self.line, self.line_start, self.pos
        made = 0
        while True:
            m = match(text, pos)
            if m is None:  # only whitespace is left
                self.line, self.line_start, self.pos = line, line_start, pos
                self.advance_to(self.n)
                self.detach_doc()
                append(self.make(TokenKind.EOF, self.n, self.n, ""))
                return
            group: int = m.lastindex or 0
            start = m.start(group)
            if start != pos:
                newlines = count("\n", pos, start)
                if newlines:
                    line += newlines
                    line_start = text.rindex("\n", pos, start) + 1
            kind = kinds[group]
            if kind is None:  # a comment
                self.line, self.line_start, self.pos = line, line_start, start
                c = text[start + 1]
                if c == "*":
                    self.advance_to(self.block_comment_end(start))
                elif c == "/":
                    self.line_comment(start)
                else:
                    newline = text.find("\n", start)
                    self.plain_comment(self.n if newline < 0 else newline)
                line, line_start, pos = self.line, self.line_start, self.pos
                continue
            end = m.end()
            word = text[start:end]
            column = start - line_start + 1
            first = line
            if group == _STRING_GROUP:
                newlines = count("\n", start, end)
                if newlines:
                    line += newlines
                    line_start = text.rindex("\n", start, end) + 1
            elif group == _BAD_QUOTE_GROUP:
                self.line, self.line_start, self.pos = line, line_start, start
                raise self.error_at(start, "unterminated string literal: add the closing '\"'")
            pos = end
            doc = None
            if self.pending_doc:
                self.count += made
                made = 0
                doc = self.take_doc(first)
            append(_new_token(Token, (kind, word, first, column, start, end, line, doc)))
            made += 1
            if group == _NAME_GROUP and word in DOCS_KEYWORDS:
                self.count += made
                self.line, self.line_start, self.pos = line, line_start, pos
                docs = self.docs_text()
                if docs is not None:
                    append(docs)
                return
            if made >= limit or (kind is _PUNCT_KIND and word == "{"):
                self.count += made
                self.line, self.line_start, self.pos = line, line_start, pos
                return

    def column_of(self, pos: int, line: int) -> int:
        """The column of ``pos``, on ``line`` (for a token that ends on a later line)."""
        return pos - (self.text.rfind("\n", 0, pos) + 1) + 1

    def line_comment(self, start: int) -> None:
        text = self.text
        end = text.find("\n", start)
        end = self.n if end < 0 else end
        if text.startswith("///", start) and not text.startswith("////", start):
            doc = text[start + 3 : end]
            self.note_doc(doc[1:] if doc.startswith(" ") else doc, self.line)
            self.pos = end
        elif text.startswith("//!", start):
            doc = text[start + 3 : end]
            self.file_doc.append((start, (doc[1:] if doc.startswith(" ") else doc).rstrip()))
            self.pos = end
        else:
            self.plain_comment(end)

    def plain_comment(self, end: int) -> None:
        if self.pending_doc and self.line == self.pending_doc_line + 1:
            self.pending_doc_line = self.line  # a plain comment keeps the run attached
        self.pos = end

    def block_comment_end(self, start: int) -> int:
        """The offset just past the nested ``/* ... */`` comment starting at ``start``."""
        depth = 0
        for m in _BLOCK.finditer(self.text, start):
            if m.group() == "/*":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return m.end()
        raise self.error_at(start, "unterminated block comment: '/*' is never closed by '*/'")

    def docs_text(self) -> Token | None:
        """After ``docs``/``exegesis``: a ``{`` opens prose, read raw up to the matching ``}``.

        Only braces count inside; quotes and apostrophes are plain prose.
        """
        m = _DOCS_OPEN.match(self.text, self.pos)
        if m is None:
            return None
        i = m.end() - 1
        self.advance_to(i)
        line, column = self.line, i - self.line_start + 1
        j = self.prose_end(i)
        if j < 0:
            raise self.error(
                f"unclosed '{{' of docs block opened at line {line}, column {column}: "
                "reached end of file; docs text counts braces, so balance them or close "
                "the block with '}'",
                line,
                column,
            )
        return self.make(TokenKind.DOCS_TEXT, i, j + 1, self.text[i + 1 : j])

    def prose_end(self, i: int) -> int:
        """The offset of the ``}`` matching the ``{`` at ``i`` (braces only), or -1."""
        depth = 0
        for m in _BRACES.finditer(self.text, i):
            if m.group() == "{":
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    return m.start()
        return -1

    # --- jumping over a group -----------------------------------------------------------

    def skip_group(self, opening: Token) -> Token | None:
        """Jump from ``opening`` (``{``, ``(`` or ``[``) to its match; the closing token.

        Counts that pair only, and jumps over literals, comments and docs blocks inside.
        None when the end of the file comes first. Doc comments inside are dropped (they
        document nothing a host sees); ``//!`` lines still count as file docs.
        """
        self.rewind(opening)
        self.pending_docs_text = None
        text, n = self.text, self.n
        close = _CLOSERS[opening.text]
        pattern = _SKIP[opening.text]
        depth, pos = 1, opening.end
        while True:
            m = pattern.search(text, pos)
            if m is None:
                self.advance_to(n)
                return None
            s = m.start()
            c = text[s]
            if c == close:
                depth -= 1
                if depth == 0:
                    self.advance_to(s)
                    return self.make(TokenKind.PUNCT, s, s + 1)
                pos = s + 1
            elif c == opening.text:
                depth += 1
                pos = s + 1
            elif c == '"':
                sm = _STRING.match(text, s)
                if sm is None:
                    raise self.error_at(s, "unterminated string literal: add the closing '\"'")
                pos = sm.end()
            elif c == "'":
                cm = _CHAR.match(text, s)
                pos = s + 1 if cm is None else cm.end()
            elif c == "/":
                if text.startswith("//", s):
                    end = text.find("\n", s)
                    end = n if end < 0 else end
                    if text.startswith("//!", s):
                        doc = text[s + 3 : end]
                        self.file_doc.append(
                            (s, (doc[1:] if doc.startswith(" ") else doc).rstrip())
                        )
                    pos = end
                elif text.startswith("/*", s):
                    pos = self.block_comment_end(s)
                else:
                    pos = s + 1
            elif c == "-":
                end = text.find("\n", s)
                pos = n if end < 0 else end
            else:  # docs / exegesis
                om = _DOCS_OPEN.match(text, m.end())
                if om is None:
                    pos = m.end()
                    continue
                brace = om.end() - 1
                j = self.prose_end(brace)
                if j < 0:
                    self.advance_to(brace)
                    line, column = self.line, brace - self.line_start + 1
                    raise self.error(
                        f"unclosed '{{' of docs block opened at line {line}, column {column}:"
                        " reached end of file; docs text counts braces, so balance them or "
                        "close the block with '}'",
                        line,
                        column,
                    )
                pos = j + 1


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the front end builds its many small objects
    (none of them cyclic): about 15 % of its time on a large file otherwise."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def tokenize(text: str, file: str = "<dol>") -> tuple[list[Token], str | None]:
    """Split DOL ``text`` into tokens (ending with EOF) and the file-level doc comments.

    File docs are ``//!`` lines and any ``///`` run at the top of the file that is
    separated from the first declaration by a blank line.
    Raises :class:`DolSyntaxError` for unterminated strings, comments and docs blocks.
    """
    lexer = Lexer(text, file)
    tokens: list[Token] = []
    while True:
        tok = lexer.next_token()
        tokens.append(tok)
        if tok.kind is TokenKind.EOF:
            return tokens, lexer.file_docs()


__all__ = ["DOCS_KEYWORDS", "Lexer", "Token", "TokenKind", "gc_paused", "tokenize"]
