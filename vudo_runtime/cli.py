"""``vudo``: run, inspect and generate stubs for Spirits from the command line.

Exit codes: 0 success, 1 the Spirit trapped or timed out, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import wasmtime

from vudo_runtime.errors import SpiritTrap, VudoError
from vudo_runtime.loa import LOA_MODULES, Loa
from vudo_runtime.registry import LoaRegistry

EXIT_TRAP = 1
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


def parse_value(text: str, wasm_type: str, position: int, fn: str) -> Any:
    """A command-line argument as the wasm type of the parameter it feeds."""
    try:
        if wasm_type in ("i32", "i64"):
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            try:
                return int(text, 0)  # also 0x10, 0o17, 0b101, 1_000
            except ValueError:
                return int(text, 10)  # base 0 refuses leading zeros: 007, 010
        return float(text)
    except ValueError:
        raise UsageError(f"argument {position} of {fn} must be {wasm_type}, got {text!r}") from None


def _load_loa(spec: str) -> Loa:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--loa expects module:attribute, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--loa {spec}: {exc}") from None
    if not isinstance(obj, Loa):
        raise UsageError(f"--loa {spec} is a {type(obj).__name__}, not a Loa")
    return obj


def cmd_run(args: argparse.Namespace) -> int:
    from vudo_runtime.spirit import Spirit

    registry = LoaRegistry()
    extra = [registry.register(_load_loa(spec)) for spec in args.loa]
    ends_line = [True]  # whether the guest's output so far ends with a newline

    def output(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        if text:
            ends_line[0] = text.endswith("\n")

    spirit = Spirit.load_sync(
        args.spirit,
        loas=["core", "messaging", *(loa.name for loa in extra)],
        registry=registry,
        cache=not args.no_cache,
        timeout=args.timeout,
        fuel=args.fuel,
        stdout=output,
    )
    fn = args.function
    if fn is None:
        fn = next((f for f in ("main", "_start") if spirit.has_function(f)), None)
        if fn is None:
            print(
                f"{args.spirit}: no main or _start; name a function. Functions:",
                file=sys.stderr,
            )
            for name in spirit.list_functions():
                print(f"  {name}{spirit.signature(name)}", file=sys.stderr)
            return EXIT_USAGE
    if not spirit.has_function(fn):
        raise UsageError(
            f"{args.spirit} has no function {fn!r}; functions: "
            + ", ".join(spirit.list_functions())
        )
    sig = spirit.signature(fn)
    if len(args.args) != len(sig.params):
        raise UsageError(f"{fn}{sig} takes {len(sig.params)} argument(s), got {len(args.args)}")
    pairs = enumerate(zip(args.args, sig.params, strict=True))
    values = [parse_value(text, ty, i + 1, fn) for i, (text, ty) in pairs]
    try:
        result = spirit.call_sync(fn, *values)
    finally:
        if not ends_line[0]:  # end the guest's last line, so the shell prompt starts clean
            print()
    if isinstance(result, tuple):
        print(" ".join(map(str, result)))
    elif result is not None:
        print(result)
    return 0


def describe(path: str) -> dict[str, Any]:
    """Imports, exports and what is recognised of the DOL ABI, as plain data."""
    from vudo_runtime.cache import compile_module
    from vudo_runtime.engine import EngineSettings
    from vudo_runtime.module import dol_role, module_info, read_source

    wasm, name, label = read_source(path, None)
    module = compile_module(wasm, EngineSettings(), source=label)

    def kind(ty: Any) -> dict[str, Any]:
        if isinstance(ty, wasmtime.FuncType):
            return {
                "kind": "func",
                "params": [str(p) for p in ty.params],
                "results": [str(r) for r in ty.results],
            }
        if isinstance(ty, wasmtime.MemoryType):
            return {"kind": "memory", "min_pages": ty.limits.min, "max_pages": ty.limits.max}
        return {"kind": type(ty).__name__.removesuffix("Type").lower()}

    exports = {e.name: kind(e.type) for e in module.exports}
    imports = [{"module": i.module, "name": i.name, **kind(i.type)} for i in module.imports]
    genes: dict[str, dict[str, Any]] = {}
    functions = []
    for ename, sig in module_info(module).signatures.items():
        role, gene, method = dol_role(ename, sig)
        if role == "function":
            functions.append(ename)
            continue
        entry = genes.setdefault(gene, {"constructor": None, "methods": []})
        if role == "constructor":
            entry["constructor"] = ename
        else:
            entry["methods"].append(method)
    return {
        "spirit": name,
        "path": label,
        "size": len(wasm),
        "imports": imports,
        "exports": exports,
        "dol": {
            "genes": genes,
            "functions": functions,
            "host_imports": [
                f"{i['module']}.{i['name']}" for i in imports if i["module"] in LOA_MODULES
            ],
            "memory": exports.get("memory"),
        },
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    info = describe(args.spirit)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0

    def sig(d: dict[str, Any]) -> str:
        if d["kind"] == "func":
            return f"func ({', '.join(d['params'])}) -> ({', '.join(d['results'])})"
        if d["kind"] == "memory":
            return f"memory {d['min_pages']}..{d['max_pages'] or 'unbounded'} pages"
        return str(d["kind"])

    print(f"{info['spirit']} ({info['path']}, {info['size']} bytes)")
    print("imports:" if info["imports"] else "imports: none")
    for i in info["imports"]:
        print(f"  {i['module']}.{i['name']}: {sig(i)}")
    print("exports:")
    for ename, d in info["exports"].items():
        print(f"  {ename}: {sig(d)}")
    dol = info["dol"]
    print("DOL ABI:")
    for gene, g in dol["genes"].items():
        ctor = g["constructor"] or "no constructor"
        print(f"  gene {gene}: {ctor}; methods: {', '.join(g['methods']) or 'none'}")
    print(f"  functions: {', '.join(dol['functions']) or 'none'}")
    print(f"  host imports: {', '.join(dol['host_imports']) or 'none'}")
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from vudo_runtime.codegen import generate_file

    text = generate_file(args.source)
    if args.output:
        out = Path(args.output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0


def run_bench(argv: Sequence[str]) -> int:
    """``vudo bench ARGS``: the suite in ``benchmarks/`` of the checkout we run in."""
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        bench = importlib.import_module("benchmarks.__main__")
    except ImportError:
        print(
            "vudo: the benchmarks live in the source tree: run `vudo bench` from a checkout",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return int(bench.main(list(argv)) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vudo", description="Run and inspect DOL Spirits.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="call a function of a Spirit and print the result")
    run.add_argument("spirit", help="path to a .wasm (or .wat) file")
    run.add_argument("function", nargs="?", help="export to call (default: main or _start)")
    run.add_argument("args", nargs="*", help="arguments, parsed by the function's signature")
    run.add_argument("--timeout", type=float, default=None, help="seconds before the call stops")
    run.add_argument("--fuel", type=int, default=None, help="fuel budget for the call")
    run.add_argument("--no-cache", action="store_true", help="do not use the compiled cache")
    run.add_argument(
        "--loa", action="append", default=[], metavar="MODULE:ATTR", help="grant a user Loa"
    )
    run.set_defaults(handler=cmd_run)
    insp = sub.add_parser("inspect", help="show imports, exports and the DOL ABI of a Spirit")
    insp.add_argument("spirit")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(handler=cmd_inspect)
    gen = sub.add_parser("codegen", help="typed Python stubs from a .dol or .wasm file")
    gen.add_argument("source")
    gen.add_argument("-o", "--output", help="write the module here (default: stdout)")
    gen.set_defaults(handler=cmd_codegen)
    sub.add_parser("bench", help="run the benchmark suite (from a source checkout)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options belong to the suite
        return run_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"vudo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpiritTrap as exc:
        print(f"vudo: {exc}", file=sys.stderr)
        return EXIT_TRAP
    except (VudoError, ValueError) as exc:
        print(f"vudo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C stops the guest (see engine.watch_store)
        print("vudo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
