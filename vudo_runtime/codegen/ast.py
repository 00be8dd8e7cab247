"""The declaration-level syntax tree of a DOL file: what a host needs, nothing of the bodies.

Every node is a frozen ``attrs`` class holding tuples, so a parsed file is immutable and
hashable. Function bodies are skipped by the parser; traits, systems and rules keep
only their names and docs, a gene's own rules their source text. A ``Spirit.dol``
manifest becomes a :class:`SpiritManifest`; ``module``, ``use`` and ``mod`` lines are
kept so a Spirit package can be put together from its files.
"""

from __future__ import annotations

import re
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
    ``abi`` is the string of ``extern "C"``; ``variadic`` marks a trailing ``...``.
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
    abi: str | None = None
    variadic: bool = False

    @property
    def export_name(self) -> str:
        """The name the compiled Spirit exports it under: ``f`` or ``Gene.method``."""
        return f"{self.owner}.{self.name}" if self.owner else self.name


@attrs.frozen
class GeneRule:
    """A ``rule``/``constraint``/``law`` inside a gene; ``text`` is its body's source."""

    name: str
    text: str
    doc: str | None = None
    line: int = 0
    column: int = 0


@attrs.frozen
class Gene:
    """A ``gen``/``gene`` (or ``type X { ... }``): fields in declaration order, methods.

    ``extends`` names the parent gene (``gen X extends P`` or ``gen X is P``), whose fields
    come first in memory. ``rules`` are the invariants declared inside the gene.
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
    rules: tuple[GeneRule, ...] = ()

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
    """``type X = enum { A, B }`` or ``enum X { A, B }``; variant i is discriminant i.

    An ``enum`` declared inside a gene has that gene as ``owner``; a gene whose body is
    an anonymous ``enum { ... }`` is itself an enum (``owner`` is None).
    """

    name: str
    variants: tuple[EnumVariant, ...] = ()
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0
    owner: str | None = None

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


@attrs.frozen
class Trait:
    """``trait Name { ... }``: kept by name (its body is a contract, not host API)."""

    name: str
    doc: str | None = None
    public: bool = False
    type_params: tuple[str, ...] = ()
    line: int = 0
    column: int = 0


@attrs.frozen
class System:
    """``system Name @ 1.0.0 { ... }``: kept by name and version."""

    name: str
    version: str | None = None
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0


@attrs.frozen
class Rule:
    """A top-level ``rule``/``constraint``; ``text`` is its body's source."""

    name: str
    text: str = ""
    doc: str | None = None
    public: bool = False
    line: int = 0
    column: int = 0


@attrs.frozen
class Use:
    """``[pub] use path`` (``path`` as written, spaces removed); ``version`` after ``@``."""

    path: str
    public: bool = False
    version: str | None = None
    line: int = 0
    column: int = 0

    @property
    def local_root(self) -> str | None:
        """The first segment of a path into this package (``local::a::b`` -> ``a``), or None
        for a registry or remote import (``@org/pkg``, ``https://...``)."""
        path = self.path
        if path.startswith(("@", '"')) or "://" in path:
            return None
        parts = [p for p in re.split(r"::|\.", path) if p]
        while parts and parts[0] in ("local", "crate", "self", "super"):
            parts.pop(0)
        if not parts or not re.fullmatch(r"[^\W\d]\w*", parts[0]):
            return None
        return parts[0]


@attrs.frozen
class ModDecl:
    """``[pub] mod name``: a module of this package in its own file (``inline`` for
    ``mod name { ... }``, whose content is skipped)."""

    name: str
    public: bool = False
    inline: bool = False
    line: int = 0
    column: int = 0


@attrs.frozen
class ModuleDecl:
    """``module a.b @ 1.0.0``: the name (and version) a file gives itself."""

    name: str
    version: str | None = None
    line: int = 0
    column: int = 0


@attrs.frozen
class SpiritManifest:
    """A Spirit package manifest (``Spirit.dol``), either form.

    Line form: ``spirit physics @ 0.9.0``, then ``docs``, ``config { entry: "lib.dol" }``,
    ``use @org/dep @ ^1``, ``pub mod particles`` and ``mod constants`` lines. Block form:
    ``spirit Visual { has name: "visual"  has version: "0.1.0"  has lib: "lib.dol" ... }``.
    ``modules`` are the ``mod`` lines of the manifest; ``entry`` is None when not given.
    """

    name: str
    version: str | None = None
    doc: str | None = None
    entry: str | None = None
    target: str | None = None
    features: tuple[str, ...] = ()
    modules: tuple[ModDecl, ...] = ()
    dependencies: tuple[str, ...] = ()
    line: int = 0
    column: int = 0

    @property
    def qualified_name(self) -> str:
        """``physics @ 0.9.0`` (the name alone without a version)."""
        return f"{self.name} @ {self.version}" if self.version else self.name


Item = Gene | Function | Enum | SexVar | Const | TypeAlias
_I = TypeVar("_I", Gene, Function, Enum, SexVar, Const, TypeAlias)


@attrs.frozen
class DolFile:
    """A parsed DOL file: its declarations in source order, and the file-level docs.

    ``items`` are what a host uses (genes, functions, enums, consts, vars, aliases);
    traits, systems and top-level rules, the ``module``/``use``/``mod`` lines and a
    Spirit manifest are kept beside them.
    """

    path: str
    items: tuple[Item, ...] = ()
    doc: str | None = None
    traits: tuple[Trait, ...] = ()
    systems: tuple[System, ...] = ()
    rules: tuple[Rule, ...] = ()
    module: ModuleDecl | None = None
    uses: tuple[Use, ...] = ()
    mods: tuple[ModDecl, ...] = ()
    spirit: SpiritManifest | None = None
    _genes_by_name: dict[str, Gene] = attrs.field(
        init=False, repr=False, eq=False, hash=False, factory=dict
    )

    def __attrs_post_init__(self) -> None:
        index = self._genes_by_name
        for item in self.items:
            if isinstance(item, Gene) and item.name not in index:
                index[item.name] = item

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
        return self._genes_by_name.get(name)

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
