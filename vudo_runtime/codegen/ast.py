"""The declaration-level syntax tree of a DOL file: what a host needs, nothing of the bodies.

Every node is a frozen ``attrs`` class holding tuples, so a parsed file is immutable and
hashable. Function bodies, rules, traits, systems and other constructs a host has no use
for are skipped by the parser and leave no node behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import attrs

#: Type names that stand for something other than a named type: ``&T``, ``(A, B)``,
#: ``[T]``, ``fun(A) -> R`` and an inline ``enum { A, B }``.
REF = "&"
TUPLE = "()"
ARRAY = "[]"
FUNCTION = "fn"
INLINE_ENUM = "enum"


@attrs.frozen
class TypeRef:
    """A type as written: ``name`` plus generic ``args``; ``variants`` for an inline enum.

    Special names: ``"&"`` (reference, one arg), ``"()"`` (tuple; no args is the unit
    type), ``"[]"`` (array, one arg), ``"fn"`` (function type: parameter types, then the
    result type last) and ``"enum"`` (an inline ``enum { A, B }``, see ``variants``).
    """

    name: str
    args: tuple[TypeRef, ...] = ()
    variants: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.name == REF:
            return f"&{self.args[0]}" if self.args else "&"
        if self.name == TUPLE:
            inner = ", ".join(str(a) for a in self.args)
            return f"({inner},)" if len(self.args) == 1 else f"({inner})"
        if self.name == ARRAY:
            return f"[{self.args[0]}]" if self.args else "[]"
        if self.name == FUNCTION:
            params = ", ".join(str(a) for a in self.args[:-1])
            return f"fun({params}) -> {self.args[-1]}" if self.args else "fun()"
        if self.name == INLINE_ENUM:
            return "enum { " + ", ".join(self.variants) + " }"
        if self.args:
            return f"{self.name}<{', '.join(str(a) for a in self.args)}>"
        return self.name

    def walk(self) -> Iterator[TypeRef]:
        """This type and every type nested in it, outermost first."""
        yield self
        for arg in self.args:
            yield from arg.walk()


@attrs.frozen
class Param:
    """One function parameter: ``name: Type``."""

    name: str
    type: TypeRef


@attrs.frozen
class GeneField:
    """A gene field: ``has name: Type [= default] [where constraint]`` or ``name: Type``.

    ``default`` and ``constraint`` keep the source text of their expressions.
    """

    name: str
    type: TypeRef
    default: str | None = None
    doc: str | None = None
    constraint: str | None = None
    line: int = 0
    column: int = 0


@attrs.frozen
class Function:
    """A ``fun``: top level, or a method inside a gene (then ``owner`` names the gene).

    ``is_sex`` marks ``sex fun``; a ``sex fun`` (or ``extern fun``) without a body is a
    host import (``is_host_import``), every function with a body is an export.
    ``is_static`` marks a gene's ``provides`` constructor (no implicit ``self``).
    """

    name: str
    params: tuple[Param, ...] = ()
    returns: TypeRef | None = None
    doc: str | None = None
    public: bool = False
    is_host_import: bool = False
    is_sex: bool = False
    has_body: bool = True
    owner: str | None = None
    is_static: bool = False
    type_params: tuple[str, ...] = ()
    line: int = 0
    column: int = 0

    @property
    def export_name(self) -> str:
        """The name the compiled Spirit exports it under: ``f`` or ``Gene.method``."""
        return f"{self.owner}.{self.name}" if self.owner else self.name


@attrs.frozen
class Gene:
    """A ``gen``/``gene`` (or ``type X { ... }``): fields in declaration order, methods.

    ``extends`` names the parent gene, whose fields come first in memory.
    """

    name: str
    fields: tuple[GeneField, ...] = ()
    methods: tuple[Function, ...] = ()
    extends: str | None = None
    doc: str | None = None
    public: bool = False
    type_params: tuple[str, ...] = ()
    line: int = 0
    column: int = 0

    def field(self, name: str) -> GeneField | None:
        """The field called ``name`` declared in this gene itself, or None."""
        return next((f for f in self.fields if f.name == name), None)

    def method(self, name: str) -> Function | None:
        """The method called ``name``, or None."""
        return next((m for m in self.methods if m.name == name), None)


@attrs.frozen
class EnumVariant:
    """One enum variant; ``value`` keeps an explicit ``= expr`` discriminant's source text."""

    name: str
    doc: str | None = None
    value: str | None = None
    line: int = 0
    column: int = 0


@attrs.frozen
class Enum:
    """``type X = enum { A, B }`` or ``enum X { A, B }``; variant i is discriminant i."""

    name: str
    variants: tuple[EnumVariant, ...] = ()
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The variant names in declaration order."""
        return tuple(v.name for v in self.variants)


@attrs.frozen
class SexVar:
    """A mutable global: ``sex var name: Type [= expr]`` (``default`` is source text)."""

    name: str
    type: TypeRef
    default: str | None = None
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0


@attrs.frozen
class Const:
    """``const NAME[: Type] = expr``; ``value`` is the expression's source text."""

    name: str
    type: TypeRef | None
    value: str
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0


@attrs.frozen
class TypeAlias:
    """``type X = Other``: another name for ``target``."""

    name: str
    target: TypeRef
    doc: str | None = None
    public: bool = False
    type_params: tuple[str, ...] = ()
    line: int = 0
    column: int = 0


Item = Gene | Function | Enum | SexVar | Const | TypeAlias
_I = TypeVar("_I", Gene, Function, Enum, SexVar, Const, TypeAlias)


@attrs.frozen
class DolFile:
    """A parsed DOL file: its declarations in source order, and the file-level docs."""

    path: str
    items: tuple[Item, ...] = ()
    doc: str | None = None

    def _of(self, kind: type[_I]) -> tuple[_I, ...]:
        return tuple(i for i in self.items if isinstance(i, kind))

    @property
    def genes(self) -> tuple[Gene, ...]:
        """Every gene, in source order."""
        return self._of(Gene)

    @property
    def functions(self) -> tuple[Function, ...]:
        """Every top-level function (host imports included), in source order."""
        return self._of(Function)

    @property
    def exports(self) -> tuple[Function, ...]:
        """Functions with a body, top level then each gene's methods: what the Spirit exports."""
        top = tuple(f for f in self.functions if f.has_body)
        return top + tuple(m for g in self.genes for m in g.methods if m.has_body)

    @property
    def host_imports(self) -> tuple[Function, ...]:
        """Body-less ``sex fun`` declarations: what the Spirit imports from its host."""
        return tuple(f for f in self.functions if f.is_host_import)

    @property
    def enums(self) -> tuple[Enum, ...]:
        """Every enum, in source order."""
        return self._of(Enum)

    @property
    def sex_vars(self) -> tuple[SexVar, ...]:
        """Every ``sex var`` global, in source order."""
        return self._of(SexVar)

    @property
    def consts(self) -> tuple[Const, ...]:
        """Every ``const``, in source order."""
        return self._of(Const)

    @property
    def type_aliases(self) -> tuple[TypeAlias, ...]:
        """Every ``type X = Other`` alias, in source order."""
        return self._of(TypeAlias)

    def get(self, name: str) -> Item | None:
        """The first declaration called ``name``, or None."""
        return next((i for i in self.items if i.name == name), None)

    def gene(self, name: str) -> Gene | None:
        """The gene called ``name``, or None."""
        return next((g for g in self.genes if g.name == name), None)

    def ancestry(self, gene: Gene) -> tuple[Gene, ...]:
        """``gene``'s parents declared in this file, root first, ``gene`` itself last.

        Stops at a parent not declared here or at a cycle, so it always terminates.
        """
        chain = [gene]
        seen = {gene.name}
        parent = gene.extends
        while parent is not None and parent not in seen:
            found = self.gene(parent)
            if found is None:
                break
            chain.append(found)
            seen.add(found.name)
            parent = found.extends
        return tuple(reversed(chain))
