"""Typed Python stubs from DOL declarations: one module per DOL file (or package module).

``generate_from_dol`` turns a parsed DOL file into a module holding an ``enum.IntEnum`` per
enum, its consts as ``Final`` values, an ``attrs`` class and a
:class:`~vudo_runtime.layout.GeneLayout` per gene (field defaults as attrs defaults,
``where`` constraints and the gene's rules as validators where Python can check them, in
comments where not), a handle class per gene (its methods run in the Spirit), a facade
``<Stem>Spirit`` with one typed async method per export, and a ``typing.Protocol``
``<Stem>Host`` for the host functions the Spirit imports. Handles subclass
:class:`~vudo_runtime.facade.GeneHandle` and facades
:class:`~vudo_runtime.facade.SpiritFacade`, so the module imports what every stub shares.
Layouts are built with ``GeneLayout.from_fields`` when the stub is imported, so their
offsets are the runtime's own: an inherited gene has its parent's fields first, at the
parent's offsets, and its own from the parent's size on, as the DOL compiler lays it out.
The output is deterministic, and always valid Python whatever the docs hold.

The modules of a Spirit package are generated together (:func:`generate_modules`): a
module sees the genes, enums, aliases and consts of the modules generated before it and
imports what it uses from them.

``python -m vudo_runtime.codegen.generator --refresh`` rewrites the checked-in stubs
(``codegen/<stem>.py`` for every ``spirits/<stem>.dol``); ``--check`` only reports.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from vudo_runtime.codegen.ast import (
    INLINE_ENUM,
    TUPLE,
    Const,
    DolFile,
    Function,
    Gene,
    GeneField,
    TypeRef,
)
from vudo_runtime.codegen.emit import (
    FACADE_MODULE,
    GENERATED_MARK,
    INDENT,
    INT,
    LINE_LENGTH,
    MODULE_NAMES,
    NEVER,
    NONE,
    ModuleWriter,
    Names,
    PyType,
    article,
    comment,
    constructor_lines,
    docstring,
    facade_head,
    handle_doc,
    host_protocol,
    ident,
    lit,
    method_lines,
    one_line,
    pascal,
    raw_annotation,
    snake,
    string_lines,
    upper_snake,
    wrap,
)
from vudo_runtime.codegen.lexer import gc_paused
from vudo_runtime.codegen.parser import parse_dol_file
from vudo_runtime.codegen.pyexpr import Expr, Scope, Unsupported, translate
from vudo_runtime.codegen.types import (
    BOOL_TYPES,
    CHAR_TYPES,
    FLOAT_TYPES,
    INT_TYPES,
    STRING_TYPES,
    LayoutType,
    TypeContext,
    class_name,
    is_void,
    layout_type,
    python_type,
    wasm_types,
)
from vudo_runtime.errors import LayoutError, VudoError

__all__ = ["REFRESH_COMMAND", "ModuleSpec", "generate_from_dol", "generate_modules", "main"]

REFRESH_COMMAND = "python -m vudo_runtime.codegen.generator --refresh"

#: Ambiguous single letters (ruff E741) and names a method's parameters must not take.
_BAD_PARAMS = frozenset({"l", "O", "I", "self", "timeout"})
_PLAIN = frozenset({"int", "float", "bool", "str"})
_FIELD_PY = {
    "i32": "int",
    "u32": "int",
    "i64": "int",
    "u64": "int",
    "ptr": "int",
    "f32": "float",
    "f64": "float",
    "bool": "bool",
    "char": "str",
    "string": "str",
}
# What a DOL expression for a field of each layout type must be (None: no Python value).
_FIELD_KIND = {
    "i32": "int",
    "u32": "int",
    "i64": "int",
    "u64": "int",
    "f32": "float",
    "f64": "float",
    "bool": "bool",
    "char": "str",
    "string": "str",
}
_INT_LITERAL = re.compile(r"-?\d+")
_NOT_PLANNED, _PLANNING, _PLANNED = 0, 1, 2


# ---------------------------------------------------------------------------
# What a module declares


@attrs.define(eq=False)
class _EnumInfo:
    home: _Module
    cls: str
    doc: str | None
    variants: list[tuple[str, str, str | None]]  # (DOL name, Python member, doc)
    kind: str = ""

    def member(self, name: str) -> str | None:
        return next((py for dol, py, _ in self.variants if dol == name), None)


@attrs.define(eq=False)
class _FieldInfo:
    decl: GeneField
    py: str
    lt: LayoutType
    boundary: str = "int"  # the plain Python type a caller passes for a scalar field
    nested: _GeneInfo | None = None
    enum: _EnumInfo | None = None
    default: str | None = None  # Python source
    default_why: str | None = None
    kw_only: bool = False
    validator: str | None = None  # the check's Python condition on ``value``
    validator_why: str | None = None

    @property
    def positional_default(self) -> bool:
        return self.default is not None and not self.kw_only


@attrs.define(eq=False)
class _GeneInfo:
    home: _Module
    gene: Gene
    cls: str
    handle: str
    snake: str
    layout: str | None = None  # the LAYOUT constant, None when the gene cannot be laid out
    why: str | None = None  # why it has no layout
    fields: list[_FieldInfo] = attrs.field(factory=list)  # its own
    parent: _GeneInfo | None = None
    state: int = _NOT_PLANNED
    rules: list[tuple[str, str]] = attrs.field(factory=list)  # (condition, message)
    unchecked: list[str] = attrs.field(factory=list)  # rules Python cannot check
    post_init: bool = False  # it or an ancestor defines __attrs_post_init__
    _all: list[_FieldInfo] | None = None

    def all_fields(self) -> list[_FieldInfo]:
        """Every field in memory order: the ancestors' first."""
        if self._all is None:
            inherited = self.parent.all_fields() if self.parent is not None else []
            self._all = [*inherited, *self.fields]
        return self._all


@attrs.define(eq=False)
class _ConstInfo:
    home: _Module
    const: Const
    py: str
    expr: Expr | None = None
    why: str | None = None


@attrs.frozen
class ModuleSpec:
    """One module of a package to generate: its parsed file and how to present it.

    ``pyname`` is the Python module name inside the package (imports between modules use
    it), ``stem`` names its facade, ``title`` opens its docstring.
    """

    dol: DolFile
    source_name: str
    pyname: str = ""
    stem: str | None = None
    title: str | None = None
    header: tuple[str, ...] = ()


class _Package:
    """State the modules generated together share."""

    def __init__(self, scope_word: str) -> None:
        self.scope_word = scope_word
        self.enum_kinds: dict[str, _EnumInfo] = {}
        self.modules: list[_Module] = []


# ---------------------------------------------------------------------------
# DOL -> module


class _Module:
    def __init__(self, spec: ModuleSpec, package: _Package) -> None:
        dol = spec.dol
        self.spec = spec
        self.dol = dol
        self.package = package
        self.pyname = spec.pyname
        self.visible = list(package.modules)
        self.source_name = spec.source_name
        stem = spec.stem or Path(spec.source_name).stem or "spirit"
        self.stem = stem
        self.names = Names(MODULE_NAMES)
        self.facade = self.names.take(pascal(stem) + "Spirit")
        self.host = self.names.take(pascal(stem) + "Host")
        self.enums: dict[str, _EnumInfo] = {}
        for e in dol.enums:
            if e.name not in self.enums:
                variants = [(v.name, v.doc) for v in e.variants]
                cls = self.names.take(class_name(e.name))
                self.enums[e.name] = self._enum_info(cls, e.doc, variants)
        self.genes: dict[str, _GeneInfo] = {}
        for g in dol.genes:
            if g.name in self.genes:
                continue
            want = class_name(g.name)
            cls = self.names.take(want)
            self.genes[g.name] = _GeneInfo(
                self, g, cls, self.names.take(want + "Handle"), snake(g.name)
            )
        self.aliases = {a.name: a.target for a in dol.type_aliases}
        self.consts: dict[str, _ConstInfo] = {}
        self.imported: dict[tuple[int, str], str] = {}
        doc = spec.title or f"Typed stubs for the {stem} Spirit."
        self.w = ModuleWriter(
            spec.source_name, f"{doc}\n\n{dol.doc}" if dol.doc else doc, spec.header
        )
        self.use_roots = {u.local_root for u in dol.uses} - {None}
        genes: set[str] = set(self.genes)
        enums: set[str] = set(self.enums)
        aliases: dict[str, TypeRef] = {}
        for m in reversed(self.visible):
            genes |= set(m.genes)
            enums |= set(m.enums)
            aliases.update(m.aliases)
        aliases.update(self.aliases)
        self.ctx = TypeContext(frozenset(genes), frozenset(enums), aliases)
        self.order: list[_GeneInfo] = []
        for info in self.genes.values():
            self._plan(info)
        for c in dol.consts:
            if c.name not in self.consts:
                self.consts[c.name] = _ConstInfo(self, c, self.names.take(c.name))
        for const in self.consts.values():
            self._const_value(const)
        for info in self.order:
            self._field_extras(info)

    def _enum_info(
        self, cls: str, doc: str | None, variants: Sequence[tuple[str, str | None]]
    ) -> _EnumInfo:
        members = Names({"name", "value", "mro"})
        info = _EnumInfo(self, cls, doc, [(v, members.take(v), d) for v, d in variants])
        info.kind = f"enum:{self.pyname + '.' if self.pyname else ''}{cls}"
        self.package.enum_kinds[info.kind] = info
        return info

    # -- names from this module and the ones before it ----------------------

    def _find(self, table: str, name: str) -> object | None:
        local: dict[str, object] = getattr(self, table)
        if name in local:
            return local[name]
        found = [m for m in reversed(self.visible) if name in getattr(m, table)]
        if not found:
            return None
        preferred = [m for m in found if m.stem in self.use_roots or m.pyname in self.use_roots]
        result: object = getattr((preferred or found)[0], table)[name]
        return result

    def gene_info(self, name: str) -> _GeneInfo | None:
        found = self._find("genes", name)
        return found if isinstance(found, _GeneInfo) else None

    def enum_info(self, name: str) -> _EnumInfo | None:
        found = self._find("enums", name)
        return found if isinstance(found, _EnumInfo) else None

    def const_info(self, name: str) -> _ConstInfo | None:
        found = self._find("consts", name)
        return found if isinstance(found, _ConstInfo) else None

    def local(self, obj: _GeneInfo | _EnumInfo | _ConstInfo, name: str, role: str) -> str:
        """``name`` (of ``obj``, in its home module) as this module calls it: imported
        (under another name if this module uses that one) when ``obj`` lives elsewhere."""
        if obj.home is self:
            return name
        key = (id(obj), role)
        if key not in self.imported:
            alias = self.names.take(name)
            self.w.use(f".{obj.home.pyname}", name if alias == name else f"{name} as {alias}")
            self.imported[key] = alias
        return self.imported[key]

    def cls_of(self, info: _GeneInfo) -> str:
        return self.local(info, info.cls, "cls")

    def handle_of(self, info: _GeneInfo) -> str:
        return self.local(info, info.handle, "handle")

    def layout_of(self, info: _GeneInfo) -> str:
        assert info.layout is not None
        return self.local(info, info.layout, "layout")

    def enum_cls(self, info: _EnumInfo) -> str:
        return self.local(info, info.cls, "cls")

    def resolve(self, t: TypeRef) -> TypeRef:
        return self.ctx.resolve(t)

    # -- layouts ------------------------------------------------------------

    def _steps(self, info: _GeneInfo) -> Iterator[tuple[_GeneInfo | None, str | None, str | None]]:
        """What laying ``info`` out takes, in order: (a gene that must be laid out first,
        the error if it cannot, or an immediate error)."""
        gene = info.gene
        scope = self.package.scope_word
        if gene.type_params:
            yield None, None, f"it is generic over {', '.join(gene.type_params)}"
            return
        taken = {"from_gene"}
        if gene.extends is not None:
            parent = self.gene_info(gene.extends)
            if parent is None:
                yield None, None, f"its parent gene {gene.extends} is not declared in this {scope}"
                return
            yield parent, f"its parent gene {gene.extends} has no layout", None
            info.parent = parent
            taken |= {f.py for f in parent.all_fields()}
        fields = Names(taken)
        path = self.source_name if self.pyname else self.dol.path
        for f in gene.fields:
            where = f"{path}:{f.line}:{f.column}: field {f.name}"
            try:
                lt = layout_type(f.type, self.ctx)
            except LayoutError as exc:
                yield None, None, f"{where}: {exc}"
                return
            fi = _FieldInfo(f, fields.take(f.name.lstrip("_") or "field"), lt)
            if lt.kind == "gene":
                nested = self.gene_info(lt.name)
                if nested is None:
                    yield None, None, f"{where}: gene {lt.name} is not declared in this {scope}"
                    return
                yield nested, f"{where}: gene {lt.name} has no layout", None
                fi.nested = nested
            elif lt.kind == "enum" and lt.name:
                fi.enum = self.enum_info(lt.name)
                assert fi.enum is not None
            elif lt.kind == "enum":
                fi.enum = self._enum_info(
                    self.names.take(info.cls + pascal(f.name)),
                    f"The values of {gene.name}.{f.name}.",
                    [(v, None) for v in lt.variants],
                )
            else:
                text = python_type(f.type, self.ctx)
                fi.boundary = text if text in _PLAIN else "int"
            info.fields.append(fi)

    def _plan(self, root: _GeneInfo) -> None:
        """Lay ``root`` out after its parent and nested genes (depth first, no recursion)."""
        if root.state != _NOT_PLANNED:
            return
        frames: list[tuple[_GeneInfo, Iterator[tuple[_GeneInfo | None, str | None, str | None]]]]
        frames = []

        def enter(info: _GeneInfo) -> None:
            info.state = _PLANNING
            frames.append((info, self._steps(info)))

        enter(root)
        while frames:
            info, steps = frames[-1]
            failed = False
            descended = False
            for dep, dep_error, error in steps:
                if error is not None:
                    info.why = error
                    failed = True
                    break
                assert dep is not None
                if dep.state == _PLANNED:
                    if dep.layout is None:
                        info.why = info.why or dep_error
                        failed = True
                        break
                    continue
                if dep.state == _PLANNING:
                    path = [f[0].gene.name for f in frames]
                    start = path.index(dep.gene.name) if dep.gene.name in path else 0
                    dep.why = (
                        "it contains itself by value "
                        f"({' -> '.join([*path[start:], dep.gene.name])})"
                    )
                    info.why = info.why or dep_error
                    failed = True
                    break
                # a gene of this module not planned yet: lay it out first, then resume
                frames[-1] = (info, _resume(dep, dep_error, steps))
                enter(dep)
                descended = True
                break
            if descended:
                continue
            frames.pop()
            info.state = _PLANNED
            if failed:
                info.fields.clear()
                continue
            info.layout = self.names.take(upper_snake(class_name(info.gene.name)) + "_LAYOUT")
            self.order.append(info)

    # -- defaults, constraints and rules ------------------------------------

    def _kind_of_field(self, fi: _FieldInfo) -> str | None:
        if fi.enum is not None:
            return fi.enum.kind
        return _FIELD_KIND.get(fi.lt.name) if fi.lt.kind == "scalar" else None

    def _kind_of_type(self, t: TypeRef) -> str | None:
        t = self.resolve(t)
        if t.args:
            return None
        if t.name in INT_TYPES:
            return "int"
        if t.name in FLOAT_TYPES:
            return "float"
        if t.name in BOOL_TYPES:
            return "bool"
        if t.name in STRING_TYPES or t.name in CHAR_TYPES:
            return "str"
        enum = self.enum_info(t.name)
        return enum.kind if enum is not None else None

    def _lookup(
        self, parts: tuple[str, ...], expected: str | None, fields: dict[str, Expr]
    ) -> Expr | None:
        if len(parts) == 2 and parts[0] in ("this", "self"):
            return fields.get(parts[1])
        if len(parts) == 1:
            name = parts[0]
            if name in fields:
                return fields[name]
            const = self.const_info(name)
            if const is not None and const.expr is not None:
                return Expr(self.local(const, const.py, "const"), const.expr.kind)
            enum = self.package.enum_kinds.get(expected or "")
            if enum is not None:
                member = enum.member(name)
                if member is not None:
                    return Expr(f"{self.enum_cls(enum)}.{member}", enum.kind)
            return None
        if len(parts) == 2:
            enum = self.enum_info(parts[0])
            if enum is not None:
                member = enum.member(parts[1])
                if member is not None:
                    return Expr(f"{self.enum_cls(enum)}.{member}", enum.kind)
        return None

    def value(
        self, text: str, want: str | None, fields: dict[str, Expr] | None = None
    ) -> Expr | Unsupported:
        """``text`` as a Python value of kind ``want`` (None: any), or why not."""
        known = fields or {}
        result = translate(text, Scope(lambda parts, exp: self._lookup(parts, exp, known), want))
        if isinstance(result, Unsupported) or want is None:
            return result
        if result.kind == want:
            return result
        if want == "float" and result.kind == "int":
            source = result.source
            if _INT_LITERAL.fullmatch(source):
                return Expr(source + ".0", "float")
            return Expr(f"float({source})", "float")
        shown = result.kind.removeprefix("enum:").rsplit(".", 1)[-1]
        return Unsupported(f"it is {article(shown).lower()} value, not {want.split('.')[-1]}")

    def _field_extras(self, info: _GeneInfo) -> None:
        """Defaults (and whether they are keyword-only), validators, rules."""
        gene = info.gene
        for fi in info.fields:
            decl = fi.decl
            kind = self._kind_of_field(fi)
            if decl.default is not None:
                if kind is None:
                    fi.default_why = "a field of this type has no Python default"
                else:
                    got = self.value(decl.default, kind)
                    if isinstance(got, Expr):
                        fi.default = got.source
                    else:
                        fi.default_why = got.reason
            if decl.constraint is not None:
                if kind is None:
                    fi.validator_why = "a field of this type cannot be checked here"
                else:
                    me = {decl.name: Expr("value", kind)}
                    got = self.value(decl.constraint, "bool", me)
                    if isinstance(got, Expr):
                        fi.validator = got.source
                    else:
                        fi.validator_why = got.reason
        # A defaulted field before a field without one is keyword-only, and so is a field
        # without a default after an inherited positional default (attrs' rule).
        inherited_default = info.parent is not None and any(
            f.positional_default for f in info.parent.all_fields()
        )
        for i, fi in enumerate(info.fields):
            if fi.default is not None:
                fi.kw_only = any(f.default is None for f in info.fields[i + 1 :])
                inherited_default = inherited_default or not fi.kw_only
            else:
                fi.kw_only = inherited_default
        if gene.rules:
            fields = {}
            for f in info.all_fields():
                kind = self._kind_of_field(f)
                if kind is not None:
                    fields[f.decl.name] = Expr(f"self.{f.py}", kind)
            for rule in gene.rules:
                got = self.value(rule.text, "bool", fields)
                label = f"rule {rule.name}" if rule.name else "a rule"
                if isinstance(got, Expr):
                    message = f"{gene.name} breaks {label}: {one_line(rule.text)}"
                    info.rules.append((got.source, message))
                else:
                    info.unchecked.append(f"{label}: {one_line(rule.text)} ({got.reason})")
        info.post_init = bool(info.rules) or (info.parent is not None and info.parent.post_init)

    # -- types at the boundary ---------------------------------------------

    def py(self, t: TypeRef | None) -> PyType:
        if t is None:
            return NONE
        t = self.resolve(t)
        if is_void(t):
            return NONE
        if t.name == TUPLE:
            items = tuple(self.py(a) for a in t.args)
            return PyType("tuple", f"tuple[{', '.join(i.annotation for i in items)}]", items=items)
        if not t.args:
            enum = self.enum_info(t.name)
            if enum is not None:
                return PyType("enum", self.enum_cls(enum))
            info = self.gene_info(t.name)
            if info is not None:
                return self.gene_type(info)
        if t.name == INLINE_ENUM:
            return INT
        text = python_type(t, self.ctx)
        return PyType(text, text) if text in _PLAIN else INT

    def gene_type(self, info: _GeneInfo) -> PyType:
        handle = self.handle_of(info)
        if info.layout is not None:
            return PyType("gene", f"{self.cls_of(info)} | {handle}", handle=handle)
        return PyType("handle", handle, handle=handle)

    def result(self, t: TypeRef | None) -> PyType:
        """A result type: a gene comes back as its handle; ``!`` never comes back."""
        if t is not None and self.resolve(t).name == "!":
            self.w.use("typing", "NoReturn")
            self.w.use("vudo_runtime.errors", "VudoError")
            return NEVER
        ty = self.py(t)
        if ty.kind == "gene":
            return PyType("gene", ty.handle, handle=ty.handle)
        if ty.kind == "tuple":
            items = tuple(
                PyType("gene", i.handle, handle=i.handle) if i.kind == "gene" else i
                for i in ty.items
            )
            return PyType("tuple", f"tuple[{', '.join(i.annotation for i in items)}]", items=items)
        return ty

    def params(self, fn: Function) -> list[tuple[str, PyType]]:
        names = Names(_BAD_PARAMS)
        return [(names.take(p.name), self.py(p.type)) for p in fn.params]

    def uses_genes(self, params: Sequence[tuple[str, PyType]]) -> None:
        if any(t.kind in ("gene", "handle") for _, t in params):
            self.w.pointer_helper()

    def field_annotation(self, fi: _FieldInfo) -> str:
        if fi.nested is not None:
            return self.cls_of(fi.nested)
        if fi.enum is not None:
            return self.enum_cls(fi.enum)
        return _FIELD_PY[fi.lt.name]

    def field_param(self, fi: _FieldInfo) -> PyType:
        if fi.nested is not None:
            return self.gene_type(fi.nested)
        if fi.enum is not None:
            return PyType("enum", self.enum_cls(fi.enum))
        return PyType(fi.boundary, fi.boundary) if fi.boundary in _PLAIN else INT

    # -- emitting -----------------------------------------------------------

    def render(self) -> str:
        for enum in self.enums.values():
            self._enum(enum)
        self._consts()
        for info in self.order:
            for fi in info.fields:
                if fi.enum is not None and fi.lt.kind == "enum" and not fi.lt.name:
                    self._enum(fi.enum)
            self._gene(info)
        skipped = [i for i in self.genes.values() if i.layout is None]
        for info in [*self.order, *skipped]:
            self._handle(info)
        self._facade()
        if self.dol.host_imports:
            imports = []
            for f in self.dol.host_imports:
                params = [(p.name, raw_annotation(wasm_types(p.type, self.ctx))) for p in f.params]
                doc = f.doc
                if f.variadic:
                    note = "Variadic in DOL (``...``): the extra arguments are not typed here."
                    doc = f"{doc}\n\n{note}" if doc else note
                result = raw_annotation(wasm_types(f.returns, self.ctx))
                imports.append((f.name, params, result, doc))
            host_protocol(self.w, self.host, self.stem, imports)
        return self.w.render()

    def _enum(self, info: _EnumInfo) -> None:
        self.w.use("enum")
        body = [f"class {info.cls}(enum.IntEnum):", *docstring(info.doc, INDENT)]
        if len(body) > 1:
            body.append("")
        for i, (_, member, vdoc) in enumerate(info.variants):
            body += comment(vdoc, INDENT)
            body.append(f"{INDENT}{member} = {i}")
        self.w.add(body)

    def _const_value(self, info: _ConstInfo) -> None:
        """Translate a const (the ones before it are done, later ones are unknown yet)."""
        c = info.const
        want = self._kind_of_type(c.type) if c.type is not None else None
        if c.type is not None and want is None:
            info.why = f"its type {c.type} has no Python value here"
            return
        got = self.value(c.value, want)
        if isinstance(got, Expr):
            info.expr = got
        else:
            info.why = got.reason

    def _consts(self) -> None:
        body: list[str] = []
        for info in self.consts.values():
            c = info.const
            text = comment(c.doc, "")
            if info.expr is not None:
                self.w.use("typing", "Final")
                line = f"{info.py}: Final = {info.expr.source}"
                body += [*text, line if len(line) <= LINE_LENGTH else line + "  # noqa: E501"]
            else:
                typed = f": {c.type}" if c.type is not None else ""
                source = f"const {c.name}{typed} = {c.value}"
                body += [
                    *text,
                    *comment(f"{source}  (no Python value: {info.why})", "", "#"),
                ]
        if body:
            self.w.add(body)

    def _gene(self, info: _GeneInfo) -> None:
        w = self.w
        w.use("attrs")
        w.use("typing", "Any", "ClassVar", "Self")
        w.use("vudo_runtime.layout", "GeneLayout")
        assert info.layout is not None
        specs = []
        for fi in info.fields:
            if fi.nested is not None:
                spec = self.layout_of(fi.nested)
            elif fi.enum is not None:
                spec = self.enum_cls(fi.enum)
            else:
                spec = lit(fi.lt.name)
            specs.append(f"({lit(fi.py)}, {spec})")
        name = lit(info.gene.name)
        extends = self.layout_of(info.parent) if info.parent else None
        head = f"{info.layout} = "
        tail = f", extends={extends})" if extends else ")"
        one = f"GeneLayout.from_fields({name}, [{', '.join(specs)}]{tail}"
        if len(head + one) <= LINE_LENGTH:
            layout_lines = [head + one]
        else:
            layout_lines = [f"{head}GeneLayout.from_fields(", f"{INDENT}{name},"]
            layout_lines += wrap("[", specs, "],", INDENT) if specs else [f"{INDENT}[],"]
            if extends:
                layout_lines.append(f"{INDENT}extends={extends},")
            layout_lines.append(")")
        w.add(layout_lines)
        checks: dict[int, str] = {}
        for i, fi in enumerate(info.fields):
            if fi.validator is None:
                continue
            fname = self.names.take(f"_check_{info.snake}_{fi.py}")
            checks[i] = fname
            ann = self.field_annotation(fi)
            where = one_line(fi.decl.constraint or "")
            message = f"{info.gene.name}.{fi.decl.name} must satisfy `{where}`, got "
            test = f"{INDENT}if not ({fi.validator}):"
            lines = [
                *wrap(
                    f"def {fname}(",
                    ["instance: object", "attribute: object", f"value: {ann}"],
                    ") -> None:",
                    "",
                ),
                *docstring(f"``where {where}``, as a validator.", INDENT),
                test if len(test) <= LINE_LENGTH else test + "  # noqa: E501",
            ]
            one = f"{INDENT * 2}raise ValueError({lit(message)} + repr(value))"
            if len(one) <= LINE_LENGTH:
                lines.append(one)
            else:
                lines.append(f"{INDENT * 2}raise ValueError(")
                lines += string_lines(message, INDENT * 3, " + repr(value)")
                lines.append(f"{INDENT * 2})")
            w.add(lines)
        base = f"({self.cls_of(info.parent)})" if info.parent else ""
        body = ["@attrs.define", f"class {info.cls}{base}:"]
        doc = info.gene.doc
        if info.unchecked:
            listed = "\n".join(f"- {u}" for u in info.unchecked)
            doc = f"{doc}\n\n" if doc else ""
            doc += f"Not checked by this class:\n\n{listed}"
        body += docstring(doc, INDENT)
        if len(body) > 2:
            body.append("")
        for i, fi in enumerate(info.fields):
            notes = [fi.decl.doc] if fi.decl.doc else []
            if fi.decl.default is not None and fi.default is None:
                notes.append(f"DOL default: {one_line(fi.decl.default)} ({fi.default_why})")
            if fi.decl.constraint is not None and fi.validator is None:
                notes.append(
                    f"where {one_line(fi.decl.constraint)} (not checked: {fi.validator_why})"
                )
            body += comment("\n".join(notes), INDENT)
            ann = self.field_annotation(fi)
            args = []
            if fi.default is not None:
                args.append(f"default={fi.default}")
            if fi.kw_only:
                args.append("kw_only=True")
            if i in checks:
                args.append(f"validator={checks[i]}")
            if not args:
                body.append(f"{INDENT}{fi.py}: {ann}")
            elif args == [f"default={fi.default}"]:
                line = f"{INDENT}{fi.py}: {ann} = {fi.default}"
                body.append(line if len(line) <= LINE_LENGTH else line + "  # noqa: E501")
            else:
                lines = wrap(f"{fi.py}: {ann} = attrs.field(", args, ")", INDENT)
                body += [ln if len(ln) <= LINE_LENGTH else ln + "  # noqa: E501" for ln in lines]
        if info.fields:
            body.append("")
        body.append(f"{INDENT}__vudo_layout__: ClassVar[GeneLayout] = {info.layout}")
        if info.rules:
            body += ["", f"{INDENT}def __attrs_post_init__(self) -> None:"]
            body += docstring(f"Checks the rules of {info.gene.name}.", INDENT * 2)
            if info.parent is not None and info.parent.post_init:
                body.append(f"{INDENT * 2}super().__attrs_post_init__()")
            for condition, message in info.rules:
                line = f"{INDENT * 2}if not ({condition}):"
                body.append(line if len(line) <= LINE_LENGTH else line + "  # noqa: E501")
                one = f"{INDENT * 3}raise ValueError({lit(message)})"
                if len(one) <= LINE_LENGTH:
                    body.append(one)
                else:
                    body.append(f"{INDENT * 3}raise ValueError(")
                    body += string_lines(message, INDENT * 4)
                    body.append(f"{INDENT * 3})")
        body += ["", f"{INDENT}@classmethod"]
        body.append(f"{INDENT}def from_gene(cls, fields: dict[str, Any]) -> Self:")
        body += docstring(
            f"{article(info.cls)} from the dict ``MemoryManager.read_gene`` gives.", INDENT * 2
        )
        items = []
        for fi in info.all_fields():
            value = f"fields[{lit(fi.py)}]"
            if fi.nested is not None:
                value = f"{self.cls_of(fi.nested)}.from_gene({value})"
            items.append(f"{fi.py}={value}")
        body += wrap("return cls(", items, ")", INDENT * 2)
        w.add(body)

    def _handle(self, info: _GeneInfo) -> None:
        gene = info.gene
        parent = self.handle_of(info.parent) if info.parent else "GeneHandle"
        if info.parent is None:
            self.w.use(FACADE_MODULE, "GeneHandle")
        body = [
            f"class {info.handle}({parent}):",
            *docstring(handle_doc(gene.name), INDENT),
        ]
        if info.why:
            body += comment(f"No layout, so no read(): {info.why}.", INDENT, "#")
        names = Names({"spirit", "ptr", "read"})
        p = info.parent
        while p is not None:
            names.used |= {ident(m.name) for m in p.gene.methods}
            p = p.parent
        for m in gene.methods:
            if not m.has_body or m.is_static:
                continue
            params = self.params(m)
            self.uses_genes(params)
            body.append("")
            body += method_lines(
                names.take(m.name),
                params,
                self.result(m.returns),
                m.export_name,
                m.doc,
                self_ptr=True,
            )
        if info.layout is not None:
            self.w.use(FACADE_MODULE, "gene_memory")
            inner = INDENT * 2
            read = "fields = gene_memory(self.spirit).read_gene("
            body += [
                "",
                *wrap("async def read(", ["self"], f") -> {info.cls}:", INDENT),
                f'{inner}"""The gene\'s fields as they are now in the Spirit\'s memory."""',
                *wrap(read, ["self.ptr", info.layout], ")", inner),
                f"{inner}return {info.cls}.from_gene(fields)",
            ]
        self.w.add(body)

    def _facade(self) -> None:
        body = facade_head(self.w, self.facade, self.stem)
        names = Names({"spirit", "load"})
        for f in self.dol.functions:
            if not f.has_body:
                continue
            params = self.params(f)
            self.uses_genes(params)
            body.append("")
            body += method_lines(names.take(f.name), params, self.result(f.returns), f.name, f.doc)
        for info in self.genes.values():
            fields = info.all_fields() if info.layout is not None else []
            if fields:
                pnames = Names(_BAD_PARAMS | {"allocated"})  # the body calls allocated()
                ctor = [(pnames.take(fi.py), self.field_param(fi)) for fi in fields]
                self.uses_genes(ctor)
                export = f"new_{info.gene.name}"
                body.append("")
                body += constructor_lines(
                    self.w,
                    names.take(f"new_{info.snake}"),
                    info.handle,
                    export,
                    ctor,
                    f"A new {info.gene.name}, allocated by the Spirit (export ``{export}``).",
                )
            for m in info.gene.methods:
                if m.has_body and m.is_static:
                    params = self.params(m)
                    self.uses_genes(params)
                    body.append("")
                    body += method_lines(
                        names.take(f"{info.snake}_{m.name}"),
                        params,
                        self.result(m.returns),
                        m.export_name,
                        m.doc,
                    )
        self.w.add(body)


def _resume(
    dep: _GeneInfo,
    dep_error: str | None,
    rest: Iterator[tuple[_GeneInfo | None, str | None, str | None]],
) -> Iterator[tuple[_GeneInfo | None, str | None, str | None]]:
    """The steps of a gene after ``dep`` is laid out: ``dep`` again (now planned), then
    the rest."""
    yield dep, dep_error, None
    yield from rest


def generate_modules(specs: Sequence[ModuleSpec], scope_word: str = "Spirit package") -> list[str]:
    """The stub modules for ``specs``, in order; each sees the ones before it."""
    package = _Package(scope_word)
    out: list[str] = []
    with gc_paused():
        for spec in specs:
            module = _Module(spec, package)
            package.modules.append(module)
            out.append(module.render())
    return out


def generate_from_dol(dol_file: DolFile, source_name: str | None = None) -> str:
    """The typed stub module for a parsed DOL file; ``source_name`` goes in its header."""
    name = dol_file.path if source_name is None else source_name
    return generate_modules([ModuleSpec(dol_file, name)], "file")[0]


# ---------------------------------------------------------------------------
# The checked-in stubs: codegen/<stem>.py for every spirits/<stem>.dol


def _default_root() -> Path:
    checkout = Path(__file__).resolve().parent.parent.parent
    return checkout if (checkout / "spirits").is_dir() else Path.cwd()


def refresh(root: str | os.PathLike[str] | None = None, *, check: bool = False) -> list[str]:
    """Regenerate ``codegen/<stem>.py`` from every ``spirits/<stem>.dol`` under ``root``.

    Returns the stubs that changed (or, with ``check``, that would change, be created or be
    removed), as paths relative to ``root``. Stale generated stubs whose ``.dol`` is gone
    are removed; hand-written files in ``codegen/`` are left alone.
    """
    base = Path(root) if root is not None else _default_root()
    spirits, out = base / "spirits", base / "codegen"
    sources = sorted(spirits.glob("*.dol"))
    if not sources:
        raise VudoError(f"no spirits/*.dol under {base}; run this from the repository root")
    changed: list[str] = []
    wanted: set[str] = set()
    for src in sources:
        rel = src.relative_to(base).as_posix()
        text = generate_from_dol(parse_dol_file(src), rel)
        target = out / f"{src.stem}.py"
        wanted.add(target.name)
        old = target.read_text(encoding="utf-8") if target.exists() else None
        if old != text:
            changed.append(target.relative_to(base).as_posix())
            if not check:
                out.mkdir(exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for stale in sorted(out.glob("*.py")) if out.is_dir() else []:
        if stale.name in wanted:
            continue
        with stale.open(encoding="utf-8") as fh:
            generated = fh.readline().rstrip("\n") == GENERATED_MARK
        if generated:
            changed.append(stale.relative_to(base).as_posix())
            if not check:
                stale.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``--refresh`` rewrites the stubs in codegen/; ``--check`` exits 1 when they are stale."""
    parser = argparse.ArgumentParser(
        prog="python -m vudo_runtime.codegen.generator",
        description="Regenerate the typed stubs in codegen/ from spirits/*.dol.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--refresh", action="store_true", help="rewrite the stale stubs")
    mode.add_argument("--check", action="store_true", help="list stale stubs; exit 1 if any")
    parser.add_argument("--root", help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        changed = refresh(args.root, check=args.check)
    except VudoError as exc:
        print(f"vudo codegen: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    if args.check and changed:
        print(f"refresh them with: {REFRESH_COMMAND}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
