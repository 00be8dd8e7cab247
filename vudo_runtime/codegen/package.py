"""Spirit packages: a folder with a ``Spirit.dol`` manifest and the DOL modules it names.

:func:`load_package` reads the manifest (either form: ``spirit physics @ 0.9.0`` with
``config``/``mod`` lines, or ``spirit Visual { has name: ... }``), finds the entry file
(``config { entry: ... }``, ``has lib: ...``, else ``lib.dol``) and the modules: those the
manifest and the entry declare (``pub mod particles``, ``mod constants``), the ones a
module declares in turn (``mod x`` in ``a.dol`` or ``a/mod.dol`` is ``a/x.dol``), and
the ones the entry only reaches through ``use`` (``pub use genes.cell.{...}``). A module
is public when it is declared ``pub mod`` (or ``pub use``d) all the way from the entry.

:func:`generate_package` turns it into one Python package: a module per DOL module
(private ones get a leading underscore and are not re-exported), the entry's module as
``lib`` (or its own stem) with the package facade, and an ``__init__.py`` that names the
Spirit and its version and imports the public modules. Modules are generated so that
each one comes after those it uses, and imports their genes, enums and consts.
:func:`write_package` writes it; :func:`describe_package` / :func:`format_package` are
what ``vudo inspect DIR`` shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from vudo_runtime.codegen.ast import DolFile, SpiritManifest, TypeRef
from vudo_runtime.codegen.emit import (
    GENERATED_MARK,
    LINE_LENGTH,
    Names,
    docstring,
    ident,
    lit,
    one_line,
    pascal,
    snake,
)
from vudo_runtime.codegen.parser import parse_dol_file
from vudo_runtime.errors import VudoError

__all__ = [
    "MANIFEST_NAME",
    "PackageModule",
    "SpiritPackage",
    "describe_package",
    "find_manifest",
    "format_package",
    "generate_package",
    "is_spirit_package",
    "load_package",
    "write_package",
]

#: The manifest's file name.
MANIFEST_NAME = "Spirit.dol"
_WORD = re.compile(r"[^\W\d]\w*")


@attrs.frozen
class PackageModule:
    """One DOL module of a package.

    ``name`` is its path in the package (``particles``, ``genes.cell``; the entry is
    named after its file), ``path`` its file (None when declared but not found),
    ``pyname`` the Python module it becomes, ``declared_by`` where it was declared.
    """

    name: str
    public: bool
    path: Path | None
    pyname: str
    declared_by: str
    entry: bool = False
    dol: DolFile | None = None

    @property
    def missing(self) -> bool:
        return self.path is None


@attrs.frozen
class SpiritPackage:
    """A loaded Spirit package: its manifest and its modules, entry first."""

    root: Path
    manifest_path: Path
    manifest: SpiritManifest
    entry_path: Path | None
    modules: tuple[PackageModule, ...]
    python_name: str

    @property
    def found(self) -> tuple[PackageModule, ...]:
        """The modules whose files exist."""
        return tuple(m for m in self.modules if m.dol is not None)

    @property
    def missing(self) -> tuple[PackageModule, ...]:
        """The modules declared but not found."""
        return tuple(m for m in self.modules if m.dol is None)

    def relative(self, path: Path) -> str:
        """``path`` relative to the package's parent folder (``physics/particles.dol``)."""
        try:
            return path.relative_to(self.root.parent).as_posix()
        except ValueError:
            return path.as_posix()


def find_manifest(path: str | os.PathLike[str]) -> Path | None:
    """The ``Spirit.dol`` of a package folder (or the manifest file itself), or None."""
    p = Path(path)
    if p.is_dir():
        manifest = p / MANIFEST_NAME
        return manifest if manifest.is_file() else None
    return p if p.name == MANIFEST_NAME and p.is_file() else None


def is_spirit_package(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Spirit package folder (holding ``Spirit.dol``) or its manifest."""
    return find_manifest(path) is not None


def _python_package_name(name: str) -> str:
    return ident(snake(name.replace("-", "_")) or "spirit")


def _module_file(base: Path, leaf: str) -> Path | None:
    for candidate in (base / f"{leaf}.dol", base / leaf / "mod.dol"):
        if candidate.is_file():
            return candidate
    return None


def _child_base(path: Path, is_entry: bool) -> Path:
    """Where the modules a file declares live: beside the entry or a ``mod.dol``, else in
    a folder named after the file."""
    if is_entry or path.name == "mod.dol":
        return path.parent
    return path.parent / path.stem


def _self_names(path: Path, name: str) -> set[str]:
    leaf = name.rsplit(".", 1)[-1]
    own = {leaf, path.stem}
    if path.name == "mod.dol":
        own.add(path.parent.name)
    return own


def load_package(path: str | os.PathLike[str]) -> SpiritPackage:
    """Read the Spirit package at ``path`` (its folder or its ``Spirit.dol``) and every
    module file it has; missing module files are recorded, not errors.

    Raises :class:`VudoError` when there is no manifest, :class:`DolSyntaxError` for a
    file that does not parse.
    """
    manifest_path = find_manifest(path)
    if manifest_path is None:
        raise VudoError(f"{os.fspath(path)}: no {MANIFEST_NAME} here: not a Spirit package")
    root = manifest_path.parent
    manifest_file = parse_dol_file(manifest_path)
    manifest = manifest_file.spirit
    if manifest is None:
        raise VudoError(
            f"{manifest_path}: no Spirit manifest in it: expected 'spirit NAME @ VERSION' "
            "(or 'spirit Name { has name: ... }')"
        )
    entry_path: Path | None = None
    candidates = [manifest.entry] if manifest.entry else ["lib.dol", "src/lib.dol"]
    for candidate in candidates:
        p = root / candidate
        if candidate and p.is_file() and p.resolve() != manifest_path.resolve():
            entry_path = p
            break
    source_dir = entry_path.parent if entry_path is not None else root
    python_names = Names({"__init__"})
    modules: list[PackageModule] = []
    seen: set[Path] = {manifest_path.resolve()}
    seen_names: set[str] = set()
    queue: list[tuple[PackageModule, bool]] = []

    def add(name: str, public: bool, file: Path | None, by: str, entry: bool = False) -> None:
        if name in seen_names:
            return
        if file is not None and file.resolve() in seen:
            return
        seen_names.add(name)
        dol = None
        if file is not None:
            seen.add(file.resolve())
            dol = parse_dol_file(file)
        base = "lib" if entry and name == "lib" else name.replace(".", "_")
        want = snake(base) or "module"
        pyname = python_names.take(want if public or entry else "_" + want.lstrip("_"))
        module = PackageModule(name, public, file, pyname, by, entry, dol)
        modules.append(module)
        if dol is not None:
            queue.append((module, entry))

    if entry_path is not None:
        add(entry_path.stem, True, entry_path, MANIFEST_NAME, entry=True)
    for decl in manifest.modules:
        add(decl.name, decl.public, _module_file(source_dir, decl.name), MANIFEST_NAME)
    while queue:
        module, is_entry = queue.pop(0)
        assert module.path is not None and module.dol is not None
        base = _child_base(module.path, is_entry)
        own = _self_names(module.path, module.name)
        prefix = "" if is_entry else module.name + "."
        for decl in module.dol.mods:
            leaf = decl.name.replace("::", ".").split(".")[-1]
            if decl.inline or leaf in own or decl.name == module.name:
                continue  # `mod cell` in cell.dol names the file itself
            file = _module_file(base, leaf) or (
                _module_file(source_dir, leaf) if is_entry else None
            )
            add(prefix + leaf, decl.public and module.public, file, module.path.name)
        if is_entry:  # modules the entry only reaches through `use`
            public_roots = {u.local_root for u in module.dol.uses if u.public}
            for use in module.dol.uses:
                root_name = use.local_root
                if root_name is None or root_name in own or root_name in seen_names:
                    continue
                file = _module_file(source_dir, root_name)
                if file is not None:
                    add(root_name, root_name in public_roots, file, f"use in {module.path.name}")
    return SpiritPackage(
        root=root,
        manifest_path=manifest_path,
        manifest=manifest,
        entry_path=entry_path,
        modules=tuple(modules),
        python_name=_python_package_name(manifest.name),
    )


# ---------------------------------------------------------------------------
# Generation order: a module after the ones it uses


def _type_names(t: TypeRef | None, out: set[str]) -> None:
    if t is None:
        return
    for part in t.walk():
        out.add(part.name)


def _references(dol: DolFile) -> set[str]:
    """The names ``dol`` uses that another module may declare."""
    out: set[str] = set()
    texts: list[str] = []
    for gene in dol.genes:
        if gene.extends:
            out.add(gene.extends)
        for f in gene.fields:
            _type_names(f.type, out)
            texts += [f.default or "", f.constraint or ""]
        for m in gene.methods:
            for p in m.params:
                _type_names(p.type, out)
            _type_names(m.returns, out)
        texts += [r.text for r in gene.rules]
    for fn in dol.functions:
        for p in fn.params:
            _type_names(p.type, out)
        _type_names(fn.returns, out)
    for alias in dol.type_aliases:
        _type_names(alias.target, out)
    for const in dol.consts:
        _type_names(const.type, out)
        texts.append(const.value)
    for use in dol.uses:
        texts.append(use.path)
    for text in texts:
        out.update(_WORD.findall(text))
    return out


def _declared(dol: DolFile) -> set[str]:
    return {i.name for i in dol.items}


def _generation_order(modules: Sequence[PackageModule]) -> list[PackageModule]:
    found = [m for m in modules if m.dol is not None]
    owners: dict[str, list[PackageModule]] = {}
    for m in found:
        assert m.dol is not None
        for name in _declared(m.dol):
            owners.setdefault(name, []).append(m)
    deps: dict[str, list[PackageModule]] = {}
    for m in found:
        assert m.dol is not None
        roots = {u.local_root for u in m.dol.uses} - {None}
        mine: list[PackageModule] = []
        for name in sorted(_references(m.dol) - _declared(m.dol)):
            candidates = [o for o in owners.get(name, []) if o is not m]
            if not candidates:
                continue
            preferred = [
                o for o in candidates if o.name.split(".")[-1] in roots or o.pyname in roots
            ]
            target = (preferred or candidates)[0]
            if target not in mine:
                mine.append(target)
        deps[m.name] = mine
    order: list[PackageModule] = []
    state: dict[str, int] = {}
    for start in found:
        if start.name in state:
            continue
        stack: list[tuple[PackageModule, int]] = [(start, 0)]
        state[start.name] = 1
        while stack:
            m, i = stack[-1]
            nexts = deps[m.name]
            if i < len(nexts):
                stack[-1] = (m, i + 1)
                dep = nexts[i]
                if dep.name not in state:  # a module in progress is a cycle: skip that edge
                    state[dep.name] = 1
                    stack.append((dep, 0))
                continue
            stack.pop()
            state[m.name] = 2
            order.append(m)
    return order


# ---------------------------------------------------------------------------
# The Python package


def _all_sort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def _init_module(package: SpiritPackage, facade: str | None, entry: str | None) -> str:
    manifest = package.manifest
    public = [m for m in package.found if m.public]
    private = [m for m in package.found if not m.public]
    lines = [
        GENERATED_MARK,
        f"# Source: {one_line(package.relative(package.manifest_path))}",
        f"# Spirit: {one_line(manifest.qualified_name)}",
    ]
    title = f"Typed stubs for the {manifest.name} Spirit package"
    title += f", version {manifest.version}." if manifest.version else "."
    parts = [title]
    if manifest.doc:
        parts.append(manifest.doc)
    listing = ", ".join(
        f"{m.pyname} ({m.name})" if m.pyname != m.name else m.pyname for m in public
    )
    parts.append(f"Public modules: {listing or 'none'}.")
    if private:
        names = ", ".join(m.pyname for m in private)
        parts.append(f"Private modules (declared 'mod', not re-exported): {names}.")
    if package.missing:
        names = ", ".join(m.name for m in package.missing)
        parts.append(f"Declared but not found, so not generated: {names}.")
    lines += docstring("\n\n".join(parts), "")
    lines += ["", "from __future__ import annotations", "", "from typing import Final"]
    imported = sorted(m.pyname for m in public)
    local: list[str] = []
    if imported:
        line = f"from . import {', '.join(imported)}"
        if len(line) > LINE_LENGTH:
            local += ["from . import (", *(f"    {n}," for n in imported), ")"]
        else:
            local.append(line)
    if facade and entry:
        local.append(f"from .{entry} import {facade}")
    if local:
        lines += ["", *local]
    lines += ["", f"SPIRIT_NAME: Final = {lit(manifest.name)}"]
    exported = ["SPIRIT_NAME", *imported]
    if manifest.version:
        lines.append(f"SPIRIT_VERSION: Final = {lit(manifest.version)}")
        lines.append(f"__version__: Final = {lit(manifest.version)}")
        exported.append("SPIRIT_VERSION")
    if facade and entry:
        exported.append(facade)
    listed = sorted(set(exported), key=_all_sort_key)
    one = f"__all__ = [{', '.join(lit(n) for n in listed)}]"
    if len(one) <= LINE_LENGTH:
        lines += ["", one]
    else:
        lines += ["", "__all__ = [", *(f"    {lit(n)}," for n in listed), "]"]
    return "\n".join(lines) + "\n"


def generate_package(path: str | os.PathLike[str] | SpiritPackage) -> dict[str, str]:
    """The stub package for the Spirit package at ``path``: file name -> text.

    ``__init__.py`` plus one module per DOL module found. Raises :class:`VudoError`
    (no manifest) or :class:`DolSyntaxError` (a file that does not parse).
    """
    # imported here, so `python -m vudo_runtime.codegen.generator` finds it not yet loaded
    from vudo_runtime.codegen.generator import ModuleSpec, generate_modules

    package = path if isinstance(path, SpiritPackage) else load_package(path)
    manifest = package.manifest
    order = _generation_order(package.modules)
    specs = []
    for m in order:
        assert m.dol is not None and m.path is not None
        visibility = "public" if m.public else "private"
        if m.entry:
            title = f"Typed stubs for the {manifest.name} Spirit: its entry module, {m.path.name}."
            stem = manifest.name
            role = f"entry module {m.name}"
        else:
            title = f"Typed stubs for the {m.name} module of the {manifest.name} Spirit."
            stem = m.name.replace(".", "_")
            role = f"{visibility} module {m.name}"
        specs.append(
            ModuleSpec(
                m.dol,
                package.relative(m.path),
                pyname=m.pyname,
                stem=stem,
                title=title,
                header=(f"Spirit: {manifest.qualified_name} ({role})",),
            )
        )
    texts = generate_modules(specs)
    files = {f"{m.pyname}.py": text for m, text in zip(order, texts, strict=True)}
    entry = next((m for m in order if m.entry), None)
    facade = None
    if entry is not None:
        facade = ident(pascal(manifest.name) + "Spirit")
        if f"class {facade}(SpiritFacade):" not in files[f"{entry.pyname}.py"]:
            facade = None
    init = _init_module(package, facade, entry.pyname if entry else None)
    return {"__init__.py": init, **dict(sorted(files.items()))}


def write_package(
    path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write the stub package for the Spirit package at ``path`` into the folder ``out``
    (default: ``./<spirit name>``); returns the files written.

    Generated files there that the package no longer has are removed; other files are
    left alone. Raises :class:`VudoError` when ``out`` cannot be written.
    """
    package = load_package(path)
    files = generate_package(package)
    target = Path(out) if out is not None else Path.cwd() / package.python_name
    written: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            file = target / name
            if not file.exists() or file.read_text(encoding="utf-8") != text:
                file.write_text(text, encoding="utf-8")
            written.append(file)
        for stale in sorted(target.glob("*.py")):
            if stale.name in files:
                continue
            with stale.open(encoding="utf-8") as fh:
                if fh.readline().rstrip("\n") == GENERATED_MARK:
                    stale.unlink()
    except OSError as exc:
        why = exc.strerror or exc
        raise VudoError(f"cannot write the stub package to {target}: {why}") from exc
    return written


# ---------------------------------------------------------------------------
# vudo inspect DIR


def _names(items: Iterable[Any]) -> list[str]:
    return [str(i.name) for i in items]


def describe_package(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``vudo inspect DIR`` shows, as plain data (JSON-ready)."""
    package = load_package(path)
    manifest = package.manifest
    modules = []
    for m in package.modules:
        entry: dict[str, Any] = {
            "name": m.name,
            "public": m.public,
            "entry": m.entry,
            "path": package.relative(m.path) if m.path is not None else None,
            "python_module": f"{package.python_name}.{m.pyname}" if m.dol is not None else None,
            "declared_by": m.declared_by,
        }
        if m.dol is not None:
            dol = m.dol
            entry.update(
                genes=_names(dol.genes),
                enums=_names(dol.enums),
                functions=[f.name for f in dol.functions if f.has_body],
                host_imports=_names(dol.host_imports),
                consts=_names(dol.consts),
                traits=_names(dol.traits),
                systems=_names(dol.systems),
            )
        modules.append(entry)
    return {
        "spirit": manifest.name,
        "version": manifest.version,
        "manifest": package.relative(package.manifest_path),
        "doc": (manifest.doc or "").split("\n\n")[0] or None,
        "entry": package.relative(package.entry_path) if package.entry_path else None,
        "target": manifest.target,
        "features": list(manifest.features),
        "dependencies": list(manifest.dependencies),
        "python_package": package.python_name,
        "modules": modules,
    }


def format_package(info: dict[str, Any]) -> str:
    """:func:`describe_package`'s data as the text ``vudo inspect DIR`` prints."""
    version = f" @ {info['version']}" if info.get("version") else ""
    lines = [f"Spirit {info['spirit']}{version} ({info['manifest']})"]
    if info.get("doc"):
        lines += [f"  {one_line(line)}" for line in str(info["doc"]).splitlines()]
    lines.append(f"entry: {info['entry'] or 'none found'}")
    lines.append(f"python package: {info['python_package']}")
    if info.get("target"):
        features = ", ".join(info.get("features") or [])
        lines.append(f"target: {info['target']}" + (f" (features: {features})" if features else ""))
    deps = info.get("dependencies") or []
    lines.append("dependencies: " + (", ".join(deps) if deps else "none"))
    lines.append("modules:")
    width = max((len(m["name"]) for m in info["modules"]), default=0)
    for m in info["modules"]:
        kind = "entry" if m["entry"] else "pub" if m["public"] else "mod"
        if m["path"] is None:
            where = m["declared_by"]
            lines.append(f"  {kind:5} {m['name']:{width}}  missing (declared in {where})")
            continue
        counts = []
        for key, label in (
            ("genes", "gene"),
            ("enums", "enum"),
            ("functions", "function"),
            ("host_imports", "host import"),
            ("consts", "const"),
            ("traits", "trait"),
            ("systems", "system"),
        ):
            n = len(m.get(key) or [])
            if n:
                counts.append(f"{n} {label}{'s' if n != 1 else ''}")
        lines.append(
            f"  {kind:5} {m['name']:{width}}  {m['path']} -> {m['python_module']}"
            + (f": {', '.join(counts)}" if counts else "")
        )
    return "\n".join(lines) + "\n"
