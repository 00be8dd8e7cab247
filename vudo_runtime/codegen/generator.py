"""Typed Python stubs from DOL declarations: one module per Spirit.

``generate_from_dol`` turns a parsed DOL file into a module holding an ``enum.IntEnum`` per
enum, an ``attrs`` class and a :class:`~vudo_runtime.layout.GeneLayout` per gene, a handle
class per gene (its methods run in the Spirit), a facade ``<Stem>Spirit`` with one typed
async method per export, and a ``typing.Protocol`` ``<Stem>Host`` for the host functions
the Spirit imports. Handles subclass :class:`~vudo_runtime.facade.GeneHandle` and facades
:class:`~vudo_runtime.facade.SpiritFacade`, so the module imports what every stub shares.
Layouts are built with ``GeneLayout.from_fields`` when the stub is imported, so their
offsets are the runtime's own. The output is deterministic.

``python -m vudo_runtime.codegen.generator --refresh`` rewrites the checked-in stubs
(``codegen/<stem>.py`` for every ``spirits/<stem>.dol``); ``--check`` only reports.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from vudo_runtime.codegen.ast import INLINE_ENUM, TUPLE, DolFile, Function, Gene, TypeRef
from vudo_runtime.codegen.emit import (
    FACADE_MODULE,
    GENERATED_MARK,
    INDENT,
    INT,
    LINE_LENGTH,
    MODULE_NAMES,
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
    pascal,
    raw_annotation,
    snake,
    upper_snake,
    wrap,
)
from vudo_runtime.codegen.parser import parse_dol_file
from vudo_runtime.codegen.types import (
    LayoutType,
    TypeContext,
    class_name,
    is_void,
    layout_type,
    python_type,
    wasm_types,
)
from vudo_runtime.errors import LayoutError, VudoError

__all__ = ["REFRESH_COMMAND", "generate_from_dol", "main", "refresh"]

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


# ---------------------------------------------------------------------------
# DOL -> module


@attrs.define
class _GeneInfo:
    gene: Gene
    cls: str
    handle: str
    snake: str
    layout: str | None = None  # the LAYOUT constant, None when the gene cannot be laid out
    why: str | None = None  # why it has no layout
    fields: list[tuple[str, str, LayoutType]] = attrs.field(factory=list)  # own: py, ann, lt
    inline_enums: list[tuple[str, str, tuple[str, ...]]] = attrs.field(factory=list)
    parent: _GeneInfo | None = None


class _DolModule:
    def __init__(self, dol: DolFile, source_name: str) -> None:
        self.dol = dol
        self.ctx = TypeContext.from_file(dol)
        self.source_name = source_name
        stem = Path(source_name).stem or "spirit"
        self.stem = stem
        self.names = Names(MODULE_NAMES)
        self.facade = self.names.take(pascal(stem) + "Spirit")
        self.host = self.names.take(pascal(stem) + "Host")
        self.enums = {e.name: self.names.take(class_name(e.name)) for e in dol.enums}
        self.genes: dict[str, _GeneInfo] = {}
        for g in dol.genes:
            if g.name in self.genes:
                continue
            want = class_name(g.name)
            cls = self.names.take(want)
            self.genes[g.name] = _GeneInfo(g, cls, self.names.take(want + "Handle"), snake(g.name))
        self.order: list[_GeneInfo] = []
        self._state: dict[str, bool] = {}
        for info in self.genes.values():
            self._plan(info, [])
        doc = f"Typed stubs for the {stem} Spirit."
        self.w = ModuleWriter(source_name, f"{doc}\n\n{dol.doc}" if dol.doc else doc)

    # -- layouts ------------------------------------------------------------

    def _plan(self, info: _GeneInfo, stack: list[str]) -> bool:
        """Lay ``info`` out after its parent and nested genes; False when it cannot be."""
        name = info.gene.name
        if name in self._state:
            return self._state[name]
        if name in stack:
            info.why = f"it contains itself by value ({' -> '.join([*stack, name])})"
            return False
        stack = [*stack, name]
        ok = self._plan_fields(info, stack)
        self._state[name] = ok
        if ok:
            info.layout = self.names.take(upper_snake(class_name(name)) + "_LAYOUT")
            self.order.append(info)
        return ok

    def _plan_fields(self, info: _GeneInfo, stack: list[str]) -> bool:
        gene = info.gene
        if gene.type_params:
            info.why = f"it is generic over {', '.join(gene.type_params)}"
            return False
        taken = {"from_gene"}
        if gene.extends is not None:
            parent = self.genes.get(gene.extends)
            if parent is None:
                info.why = f"its parent gene {gene.extends} is not declared in this file"
                return False
            if not self._plan(parent, stack):
                info.why = info.why or f"its parent gene {gene.extends} has no layout"
                return False
            info.parent = parent
            p: _GeneInfo | None = parent
            while p is not None:
                taken |= {f[0] for f in p.fields}
                p = p.parent
        fields = Names(taken)
        for f in gene.fields:
            where = f"{self.dol.path}:{f.line}:{f.column}: field {f.name}"
            try:
                lt = layout_type(f.type, self.ctx)
            except LayoutError as exc:
                info.why = f"{where}: {exc}"
                return False
            py = fields.take(f.name.lstrip("_") or "field")
            if lt.kind == "gene":
                nested = self.genes.get(lt.name)
                if nested is None:
                    info.why = f"{where}: gene {lt.name} is not declared in this file"
                    return False
                if not self._plan(nested, stack):
                    info.why = info.why or f"{where}: gene {lt.name} has no layout"
                    return False
                ann = nested.cls
            elif lt.kind == "enum" and lt.name:
                ann = self.enums[lt.name]
            elif lt.kind == "enum":
                ann = self.names.take(info.cls + pascal(f.name))
                info.inline_enums.append((ann, f.name, lt.variants))
            else:
                ann = _FIELD_PY[lt.name]
            info.fields.append((py, ann, lt))
        return True

    def _all_fields(self, info: _GeneInfo) -> list[tuple[str, str, LayoutType]]:
        chain: list[_GeneInfo] = []
        p: _GeneInfo | None = info
        while p is not None:
            chain.append(p)
            p = p.parent
        return [f for g in reversed(chain) for f in g.fields]

    # -- types at the boundary ---------------------------------------------

    def py(self, t: TypeRef | None) -> PyType:
        if t is None:
            return NONE
        t = self.ctx.resolve(t)
        if is_void(t):
            return NONE
        if t.name == TUPLE:
            items = tuple(self.py(a) for a in t.args)
            return PyType("tuple", f"tuple[{', '.join(i.annotation for i in items)}]", items=items)
        if not t.args and t.name in self.enums:
            return PyType("enum", self.enums[t.name])
        if not t.args and t.name in self.genes:
            info = self.genes[t.name]
            if info.layout is not None:
                return PyType("gene", f"{info.cls} | {info.handle}", handle=info.handle)
            return PyType("handle", info.handle, handle=info.handle)
        if t.name == INLINE_ENUM:
            return INT
        text = python_type(t, self.ctx)
        return PyType(text, text) if text in _PLAIN else INT

    def result(self, t: TypeRef | None) -> PyType:
        """A result type: a gene comes back as its handle."""
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

    # -- emitting -----------------------------------------------------------

    def render(self) -> str:
        for e in self.dol.enums:
            self._enum(self.enums[e.name], e.doc, [(v.name, v.doc) for v in e.variants])
        for info in self.order:
            for cls, field, variants in info.inline_enums:
                doc = f"The values of {info.gene.name}.{field}."
                self._enum(cls, doc, [(v, None) for v in variants])
            self._gene(info)
        skipped = [i for i in self.genes.values() if i.layout is None]
        for info in [*self.order, *skipped]:
            self._handle(info)
        self._facade()
        if self.dol.host_imports:
            host_protocol(
                self.w,
                self.host,
                self.stem,
                [
                    (
                        f.name,
                        [(p.name, raw_annotation(wasm_types(p.type, self.ctx))) for p in f.params],
                        raw_annotation(wasm_types(f.returns, self.ctx)),
                        f.doc,
                    )
                    for f in self.dol.host_imports
                ],
            )
        return self.w.render()

    def _enum(self, cls: str, doc: str | None, variants: list[tuple[str, str | None]]) -> None:
        self.w.use("enum")
        body = [f"class {cls}(enum.IntEnum):", *docstring(doc, INDENT)]
        if len(body) > 1:
            body.append("")
        members = Names({"name", "value", "mro"})
        for i, (v, vdoc) in enumerate(variants):
            body += comment(vdoc, INDENT)
            body.append(f"{INDENT}{members.take(v)} = {i}")
        self.w.add(body)

    def _gene(self, info: _GeneInfo) -> None:
        w = self.w
        w.use("attrs")
        w.use("typing", "Any", "ClassVar", "Self")
        w.use("vudo_runtime.layout", "GeneLayout")
        assert info.layout is not None
        specs = []
        for py, ann, lt in info.fields:
            if lt.kind == "gene":
                nested = self.genes[lt.name]
                spec = nested.layout or ""
            elif lt.kind == "enum":
                spec = ann
            else:
                spec = lit(lt.name)
            specs.append(f"({lit(py)}, {spec})")
        args = [lit(info.gene.name)]
        extends = info.parent.layout if info.parent else None
        head = f"{info.layout} = "
        tail = f", extends={extends})" if extends else ")"
        one = f"GeneLayout.from_fields({args[0]}, [{', '.join(specs)}]{tail}"
        if len(head + one) <= LINE_LENGTH:
            layout_lines = [head + one]
        else:
            layout_lines = [f"{head}GeneLayout.from_fields(", f"{INDENT}{args[0]},"]
            layout_lines += wrap("[", specs, "],", INDENT) if specs else [f"{INDENT}[],"]
            if extends:
                layout_lines.append(f"{INDENT}extends={extends},")
            layout_lines.append(")")
        base = f"({info.parent.cls})" if info.parent else ""
        body = [*layout_lines, "", "", "@attrs.define", f"class {info.cls}{base}:"]
        body += docstring(info.gene.doc, INDENT)
        if len(body) > len(layout_lines) + 4:
            body.append("")
        docs = {f.name: f.doc for f in info.gene.fields}
        for (py, ann, _), f in zip(info.fields, info.gene.fields, strict=True):
            body += comment(docs.get(f.name), INDENT)
            body.append(f"{INDENT}{py}: {ann}")
        if info.fields:
            body.append("")
        body.append(f"{INDENT}__vudo_layout__: ClassVar[GeneLayout] = {info.layout}")
        body += ["", f"{INDENT}@classmethod"]
        body.append(f"{INDENT}def from_gene(cls, fields: dict[str, Any]) -> Self:")
        body += docstring(
            f"{article(info.cls)} from the dict ``MemoryManager.read_gene`` gives.", INDENT * 2
        )
        items = []
        for py, ann, lt in self._all_fields(info):
            value = f"fields[{lit(py)}]"
            if lt.kind == "gene":
                value = f"{ann}.from_gene({value})"
            items.append(f"{py}={value}")
        body += wrap("return cls(", items, ")", INDENT * 2)
        w.add(body)

    def _handle(self, info: _GeneInfo) -> None:
        gene = info.gene
        parent = info.parent.handle if info.parent else "GeneHandle"
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
            fields = self._all_fields(info) if info.layout is not None else []
            if fields:
                pnames = Names(_BAD_PARAMS | {"allocated"})  # the body calls allocated()
                ctor = []
                for (py, ann, lt), field in zip(fields, self._field_refs(info), strict=True):
                    ty = PyType("enum", ann) if lt.kind == "enum" else self.py(field)
                    ctor.append((pnames.take(py), ty))
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

    def _field_refs(self, info: _GeneInfo) -> list[TypeRef]:
        chain: list[_GeneInfo] = []
        p: _GeneInfo | None = info
        while p is not None:
            chain.append(p)
            p = p.parent
        return [f.type for g in reversed(chain) for f in g.gene.fields]


def generate_from_dol(dol_file: DolFile, source_name: str | None = None) -> str:
    """The typed stub module for a parsed DOL file; ``source_name`` goes in its header."""
    return _DolModule(dol_file, dol_file.path if source_name is None else source_name).render()


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
