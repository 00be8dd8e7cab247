"""DOL expressions as Python: for consts, field defaults, ``where`` constraints and rules.

Only what means the same in both languages is translated: number, string, char and
bool literals; the names a :class:`Scope` knows (fields, consts, enum variants);
``+ - *``, ``/`` on floats, comparisons, ``&& || !`` (also ``and or not``), unary minus,
parentheses, and ``len``/``abs``/``min``/``max`` (``s.len()`` too). Everything else
(``%`` and integer ``/``, which round differently, calls, ranges, struct literals, other
fields, mismatched types) is :class:`Unsupported` with the reason, so the stub says so
in a comment instead of guessing. Each operation is parenthesised in the output, so
Python's precedence (``not`` binds looser than ``==``, comparisons chain) never changes
the meaning. The output is always a valid Python expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from vudo_runtime.codegen.emit import lit
from vudo_runtime.codegen.parser import string_value

__all__ = ["Expr", "Scope", "Unsupported", "translate"]

#: Kinds of values: ``int``, ``float``, ``bool``, ``str``, or ``enum:<Class>``.
Kind = str
NUMERIC = frozenset({"int", "float"})


@attrs.frozen
class Expr:
    """A translated expression: Python ``source`` and the ``kind`` of its value."""

    source: str
    kind: Kind


@attrs.frozen
class Unsupported:
    """Why an expression has no Python translation."""

    reason: str


@attrs.frozen
class Scope:
    """What names mean: ``lookup(parts)`` resolves ``x``, ``this.x``, ``Color::Red`` (the
    parts of a path) to an :class:`Expr`, or None for an unknown name. ``expected`` is
    the kind wanted, so a bare enum variant (``Red``) can be found in its enum."""

    lookup: Callable[[tuple[str, ...], Kind | None], Expr | None]
    expected: Kind | None = None


_TOKEN = re.compile(
    r"""(?:\s|//[^\n]*+|--[^\n]*+|/\*(?:[^*]|\*(?!/))*+\*/)*+(?:
      (?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
              |(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][+-]?\d[\d_]*)?)(?P<suffix>[iuf](?:8|16|32|64|128|size))?
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<chr>'(?:\\u\{[0-9A-Fa-f]{1,6}\}|\\x[0-9A-Fa-f]{2}|\\.|[^'\\\n])')
    | (?P<name>[^\W\d]\w*)
    | (?P<op>&&|\|\||==|!=|<=|>=|::|=>|[-+*/%<>!().,])
    )""",
    re.X | re.S,
)
_REST = re.compile(r"(?:\s|//[^\n]*|--[^\n]*|/\*(?:[^*]|\*(?!/))*\*/)*\Z")
_INT = re.compile(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|\d+")
_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_WORD_OPS = {"and": "&&", "or": "||", "not": "!", "implies": "=>"}


class _Fail(Exception):
    pass


class _Reader:
    def __init__(self, text: str, scope: Scope) -> None:
        self.scope = scope
        self.toks: list[tuple[str, str]] = []
        pos, n = 0, len(text)
        while pos < n:
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                if _REST.match(text, pos):
                    break
                raise _Fail(f"cannot read {text[pos : pos + 12].strip()!r}")
            pos = m.end()
            group = m.lastgroup
            if group == "suffix":
                group = "num"
            assert group is not None
            value = m.group("num") if group == "num" else m.group(group)
            if group == "num" and m.group("suffix"):
                value += "|" + m.group("suffix")
            if group == "name" and value in _WORD_OPS:
                group, value = "op", _WORD_OPS[value]
            self.toks.append((group, value))
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.i += 1
        return tok

    def at(self, op: str) -> bool:
        kind, value = self.peek()
        return kind == "op" and value == op

    # precedence, lowest first
    def expr(self, expected: Kind | None) -> Expr:
        left = self.disj(expected)
        if self.at("=>"):  # `a implies b`, right-associative
            self.take()
            right = self.expr("bool")
            if left.kind != "bool" or right.kind != "bool":
                raise _Fail("'implies' needs bools")
            return Expr(f"((not {left.source}) or {right.source})", "bool")
        return left

    def disj(self, expected: Kind | None) -> Expr:
        left = self.conj(expected)
        while self.at("||"):
            self.take()
            right = self.conj("bool")
            left = _logic(left, right, "or")
        return left

    def conj(self, expected: Kind | None) -> Expr:
        left = self.compare(expected)
        while self.at("&&"):
            self.take()
            right = self.compare("bool")
            left = _logic(left, right, "and")
        return left

    def compare(self, expected: Kind | None) -> Expr:
        left = self.sum(None if expected == "bool" else expected)
        kind, op = self.peek()
        if kind == "op" and op in _COMPARE:
            self.take()
            right = self.sum(left.kind if left.kind.startswith("enum:") else None)
            _check_compare(left, right, op)
            if self.peek()[0] == "op" and self.peek()[1] in _COMPARE:
                raise _Fail("chained comparisons do not exist in DOL")
            return Expr(f"({left.source} {op} {right.source})", "bool")
        return left

    def sum(self, expected: Kind | None) -> Expr:
        left = self.product(expected)
        while self.at("+") or self.at("-"):
            op = self.take()[1]
            right = self.product(expected)
            left = _arith(left, right, op)
        return left

    def product(self, expected: Kind | None) -> Expr:
        left = self.unary(expected)
        while self.at("*") or self.at("/") or self.at("%"):
            op = self.take()[1]
            right = self.unary(expected)
            left = _arith(left, right, op)
        return left

    def unary(self, expected: Kind | None) -> Expr:
        if self.at("-"):
            self.take()
            inner = self.unary(expected)
            if inner.kind not in NUMERIC:
                raise _Fail(f"'-' needs a number, not {_show(inner.kind)}")
            return Expr(f"(-{inner.source})", inner.kind)
        if self.at("!"):
            self.take()
            inner = self.unary("bool")
            if inner.kind != "bool":
                raise _Fail(f"'!' needs a bool, not {_show(inner.kind)}")
            return Expr(f"(not {inner.source})", "bool")
        return self.postfix(self.primary(expected))

    def postfix(self, value: Expr) -> Expr:
        while self.at("."):
            self.take()
            kind, name = self.take()
            if kind != "name" or not (self.at("(")):
                raise _Fail("field access on a value is not supported")
            self.take()
            if not self.at(")"):
                raise _Fail(f"method {name}() with arguments is not supported")
            self.take()
            if name in ("len", "length") and value.kind == "str":
                value = Expr(f"len({value.source})", "int")
            elif name == "abs" and value.kind in NUMERIC:
                value = Expr(f"abs({value.source})", value.kind)
            else:
                raise _Fail(f"method {name}() is not supported")
        return value

    def primary(self, expected: Kind | None) -> Expr:
        kind, value = self.take()
        if kind == "num":
            return _number(value)
        if kind == "str":
            return Expr(lit(string_value(value)), "str")
        if kind == "chr":
            return Expr(lit(string_value(value)), "str")
        if kind == "op" and value == "(":
            inner = self.expr(expected)
            if not self.at(")"):
                raise _Fail("expected ')'")
            self.take()
            return inner
        if kind == "name":
            if value in ("true", "false"):
                return Expr("True" if value == "true" else "False", "bool")
            parts = [value]
            while (self.at("::") or self.at(".")) and self.i + 1 < len(self.toks):
                nxt = self.toks[self.i + 1]
                if nxt[0] != "name":
                    break
                if (
                    self.at(".")
                    and self.i + 2 < len(self.toks)
                    and self.toks[self.i + 2]
                    == (
                        "op",
                        "(",
                    )
                ):
                    break  # a method call: postfix reads it
                self.take()
                parts.append(self.take()[1])
            if self.at("("):
                return self.call(tuple(parts), expected)
            found = self.scope.lookup(tuple(parts), expected)
            if found is None:
                raise _Fail(f"'{'.'.join(parts)}' is not a const, field or enum variant here")
            return found
        raise _Fail(f"unexpected {value or 'end of expression'!r}")

    def call(self, parts: tuple[str, ...], expected: Kind | None) -> Expr:
        name = ".".join(parts)
        if name not in ("len", "abs", "min", "max"):
            raise _Fail(f"the call {name}(...) has no Python equivalent here")
        self.take()
        args: list[Expr] = []
        while not self.at(")"):
            args.append(self.expr(None))
            if self.at(","):
                self.take()
            elif not self.at(")"):
                raise _Fail(f"expected ',' or ')' in {name}(...)")
        self.take()
        if name == "len" and len(args) == 1 and args[0].kind == "str":
            return Expr(f"len({args[0].source})", "int")
        if name == "abs" and len(args) == 1 and args[0].kind in NUMERIC:
            return Expr(f"abs({args[0].source})", args[0].kind)
        if name in ("min", "max") and len(args) == 2 and {a.kind for a in args} <= NUMERIC:
            kind = "float" if "float" in {a.kind for a in args} else "int"
            return Expr(f"{name}({args[0].source}, {args[1].source})", kind)
        raise _Fail(f"{name}(...) with these arguments is not supported")


def _show(kind: Kind) -> str:
    return kind.removeprefix("enum:")


def _number(text: str) -> Expr:
    literal, _, suffix = text.partition("|")
    clean = literal.replace("_", "")
    if not clean or clean.startswith(".") or clean.endswith("."):
        raise _Fail(f"cannot read the number {literal!r}")
    if _INT.fullmatch(clean) and not suffix.startswith("f"):
        if len(clean) > 1 and clean[0] == "0" and clean[1].isdigit():
            clean = clean.lstrip("0") or "0"  # 007: a decimal in DOL, not octal
        return Expr(clean, "int")
    try:
        float(clean)
    except ValueError:
        raise _Fail(f"cannot read the number {literal!r}") from None
    if _INT.fullmatch(clean):
        clean += ".0"
    return Expr(clean, "float")


def _logic(left: Expr, right: Expr, op: str) -> Expr:
    if left.kind != "bool" or right.kind != "bool":
        raise _Fail(f"'{op}' needs bools, not {_show(left.kind)} and {_show(right.kind)}")
    return Expr(f"({left.source} {op} {right.source})", "bool")


def _arith(left: Expr, right: Expr, op: str) -> Expr:
    kinds = {left.kind, right.kind}
    if op == "%":
        raise _Fail("'%' rounds differently in DOL and Python")
    if op == "+" and kinds == {"str"}:
        return Expr(f"({left.source} + {right.source})", "str")
    if not kinds <= NUMERIC:
        raise _Fail(f"'{op}' needs numbers, not {_show(left.kind)} and {_show(right.kind)}")
    if op == "/" and kinds == {"int"}:
        raise _Fail("integer '/' truncates in DOL")
    kind = "float" if "float" in kinds or op == "/" else "int"
    return Expr(f"({left.source} {op} {right.source})", kind)


def _check_compare(left: Expr, right: Expr, op: str) -> None:
    kinds = {left.kind, right.kind}
    if kinds <= NUMERIC or kinds == {"str"}:
        return
    if op in ("==", "!=") and len(kinds) == 1:
        return  # bools, or members of one enum
    raise _Fail(f"cannot compare {_show(left.kind)} with {_show(right.kind)}")


def translate(text: str, scope: Scope) -> Expr | Unsupported:
    """``text`` (a DOL expression) as Python, or why it cannot be."""
    try:
        reader = _Reader(text, scope)
        if not reader.toks:
            return Unsupported("it is empty")
        result = reader.expr(scope.expected)
        if reader.i != len(reader.toks):
            return Unsupported(f"cannot read past {reader.toks[reader.i][1]!r}")
    except _Fail as exc:
        return Unsupported(str(exc))
    except RecursionError:
        return Unsupported("it is nested too deeply")
    source = result.source
    if source.startswith("(") and source.endswith(")") and _wraps(source):
        source = source[1:-1]
    return Expr(source, result.kind)


def _wraps(source: str) -> bool:
    """Whether the ``(`` that opens ``source`` is closed by its last ``)``."""
    depth = 0
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c == '"':  # a JSON string literal: skip it, escapes included
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != n - 1:
                return False
        i += 1
    return True
