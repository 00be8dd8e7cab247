"""A typed facade from a compiled Spirit's export signatures alone (no DOL source).

Parameters are named by position (``arg0``, ``arg1``, ...) and typed from the wasm value
types (``int`` for i32/i64, ``float`` for f32/f64). The DOL ABI's export names are
recognised: ``new_<Gene>`` (one i32 result) becomes a constructor returning a
``<Gene>Handle``, and ``<Gene>.<method>`` (first parameter an i32 ``self``) a method of
that handle. Without the DOL source there are no gene layouts, strings or enums: generate
from the ``.dol`` for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
import wasmtime

from vudo_runtime.cache import compile_module
from vudo_runtime.codegen.emit import (
    FACADE_MODULE,
    FLOAT,
    INDENT,
    INT,
    MODULE_NAMES,
    NONE,
    ModuleWriter,
    Names,
    PyType,
    comment,
    constructor_lines,
    docstring,
    facade_head,
    handle_doc,
    host_protocol,
    method_lines,
    pascal,
    raw_annotation,
    snake,
)
from vudo_runtime.engine import EngineSettings
from vudo_runtime.loa import LOA_MODULES
from vudo_runtime.module import Source, dol_role, module_info, read_source

__all__ = ["generate_from_wasm"]

_NUMBERS = {"i32": INT, "i64": INT, "f32": FLOAT, "f64": FLOAT}


@attrs.define
class _Handle:
    gene: str
    cls: str
    constructor: str | None = None
    ctor_params: tuple[str, ...] = ()
    methods: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = attrs.field(factory=list)


def _result(results: Sequence[str]) -> PyType:
    if not results:
        return NONE
    if len(results) == 1:
        return _NUMBERS[results[0]]
    items = tuple(_NUMBERS[r] for r in results)
    return PyType("tuple", f"tuple[{', '.join(i.annotation for i in items)}]", items=items)


def _params(types: Sequence[str]) -> list[tuple[str, PyType]]:
    return [(f"arg{i}", _NUMBERS[t]) for i, t in enumerate(types)]


def generate_from_wasm(source: Source, source_name: str) -> str:
    """The facade module for the Spirit at ``source`` (a path, or wasm/WAT bytes)."""
    wasm, _, label = read_source(source, None)
    module = compile_module(wasm, EngineSettings(), source=label)
    signatures = module_info(module).signatures
    stem = Path(source_name).stem or "spirit"
    names = Names(MODULE_NAMES)
    facade = names.take(pascal(stem) + "Spirit")
    host = names.take(pascal(stem) + "Host")
    writer = ModuleWriter(
        source_name,
        f"Typed calls into the {stem} Spirit, from its export signatures alone.\n\n"
        "Parameters are named by position (arg0, arg1, ...) and gene handles cannot read"
        " their fields: generate from the Spirit's .dol for names, genes and strings.",
    )

    handles: dict[str, _Handle] = {}

    def handle(gene: str) -> _Handle:
        if gene not in handles:
            handles[gene] = _Handle(gene, names.take(pascal(gene) + "Handle"))
        return handles[gene]

    functions: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
    skipped: list[str] = []
    for export, sig in signatures.items():
        if not set(sig.params) | set(sig.results) <= set(_NUMBERS):
            skipped.append(f"{export}{sig}")
            continue
        role, gene, _ = dol_role(export, sig)
        if role == "constructor":
            h = handle(gene)
            h.constructor, h.ctor_params = export, sig.params
        elif role == "method":
            handle(gene).methods.append((export, sig.params[1:], sig.results))
        else:
            functions.append((export, sig.params, sig.results))

    for h in handles.values():
        writer.use(FACADE_MODULE, "GeneHandle")
        body = [
            f"class {h.cls}(GeneHandle):",
            *docstring(handle_doc(h.gene), INDENT),
        ]
        mnames = Names({"spirit", "ptr", "read"})
        for export, params, results in h.methods:
            body.append("")
            body += method_lines(
                mnames.take(export.partition(".")[2]),
                _params(params),
                _result(results),
                export,
                None,
                self_ptr=True,
            )
        writer.add(body)

    body = facade_head(writer, facade, stem)
    fnames = Names({"spirit", "load"})
    for export, params, results in functions:
        body.append("")
        body += method_lines(fnames.take(export), _params(params), _result(results), export, None)
    for h in handles.values():
        if h.constructor is None:
            continue
        body.append("")
        body += constructor_lines(
            writer,
            fnames.take(f"new_{snake(h.gene)}"),
            h.cls,
            h.constructor,
            _params(h.ctor_params),
            f"A new {h.gene}, allocated by the Spirit (export ``{h.constructor}``).",
        )
    if skipped:
        body.append("")
        for s in skipped:
            body += comment(f"Not callable from Python (non-numeric values): {s}", INDENT, "#")
    writer.add(body)

    imports: list[tuple[str, Sequence[tuple[str, str]], str, str | None]] = []
    seen: set[str] = set()
    for imp in module.imports:
        ty, name = imp.type, imp.name or ""
        if imp.module in LOA_MODULES and isinstance(ty, wasmtime.FuncType) and name not in seen:
            seen.add(name)
            wparams = [str(p) for p in ty.params]
            wresults = [str(r) for r in ty.results]
            if set(wparams) | set(wresults) <= set(_NUMBERS):
                imports.append(
                    (
                        name,
                        [(f"arg{i}", raw_annotation([p])) for i, p in enumerate(wparams)],
                        raw_annotation(wresults),
                        f"Imported from {imp.module!r}.",
                    )
                )
    if imports:
        host_protocol(writer, host, stem, imports)
    return writer.render()
