"""``vudo``: run, inspect, sign and generate stubs for Spirits from the command line.

Exit codes: 0 success (for a WASI program: its exit status), 1 the Spirit trapped, timed
out or ran out of fuel, 2 bad usage or input, 3 a signature check refused the Spirit,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import wasmtime

import vudo_runtime
from vudo_runtime._binary import STATE_PREFIX, read_interface
from vudo_runtime.engine import WASMTIME_VERSION
from vudo_runtime.errors import (
    SignatureError,
    SpiritExit,
    SpiritInterrupted,
    SpiritTrap,
    VudoError,
)
from vudo_runtime.loa import LOA_MODULES, Loa
from vudo_runtime.loas.wasi import WASI_MODULES, Preopen, WasiOptions
from vudo_runtime.registry import LoaRegistry

if TYPE_CHECKING:
    from vudo_runtime.manifest import Manifest
    from vudo_runtime.signing import TrustPolicy

EXIT_TRAP = 1
EXIT_USAGE = 2
EXIT_UNTRUSTED = 3  # a signature check refused the Spirit (vudo verify, vudo run --trust)
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by SIGINT

#: What ``--returns`` accepts: read the result back (str, bytes) or check its type.
RETURNS = ("str", "bytes", "i32", "i64", "f32", "f64")
#: An i32 argument with this prefix is always passed as a guest string (``str:42``).
STR_PREFIX = "str:"


class UsageError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


# ---- messages ------------------------------------------------------------------------------

#: The runtime's messages name Python keywords; on the command line they are flags.
_FLAG_WORDS: tuple[tuple[str, str], ...] = (
    ("timeout must be a positive number", "--timeout must be a positive number"),
    ("fuel must be a non-negative int,", "--fuel must be a non-negative integer,"),
    ("timeout=", "--timeout"),
    ("fuel=", "--fuel"),
    ("pass overwrite=True to replace", "pass --force to replace"),
    (
        "sign it (vudo_runtime.signing.sign) with a trusted key, or load it with "
        "require_signature=False",
        "sign it with a trusted key (vudo sign SPIRIT --key NAME.key)",
    ),
    ("vudo_runtime.signing.write_keypair", "vudo keygen NAME"),
    ("pass errors='replace' to decode lossily", "--returns bytes gives the raw bytes"),
)
_CAPABILITY = re.compile(r"Grant the Loa\(s\) (?P<names>.+?): loas=\[[^\]]*\]")
_MISSING = "Grant a Loa that provides them (loas=[...]) or register one in the LoaRegistry."
_MANIFEST_ASKED = "verify it with its manifest's bytes (manifest=...)"
_ADD_KEY = "add that key's public key to the policy if you trust it"


@attrs.frozen
class Context:
    """What a message is shown for: the flag that gives trusted keys, a manifest run."""

    key_flag: str = "--trust"
    manifest: bool = False


def display(text: str, context: Context | None = None) -> str:
    """A runtime message as the command line says it: flags, not Python keywords."""
    context = context or Context()
    for python, flag in _FLAG_WORDS:
        text = text.replace(python, flag)

    def grant(m: re.Match[str]) -> str:
        if context.manifest:
            return f"Grant the Loa(s) {m['names']}: list them under [grants] loas in the manifest"
        flags = " ".join(
            f"--loa {n}" if n in _BUILTIN_LOAS else "--loa MODULE:ATTR"
            for n in re.findall(r"'([^']*)'", m["names"])
        )
        return f"Grant the Loa(s) {m['names']}: {flags}"

    text = _CAPABILITY.sub(grant, text)
    text = text.replace(
        _MISSING,
        "Grant a Loa that provides them: list it under [grants] loas in the manifest, and "
        "give it with --loa MODULE:ATTR"
        if context.manifest
        else "Grant a Loa that provides them: --loa MODULE:ATTR (a Loa in an importable module).",
    )
    text = text.replace(
        _MANIFEST_ASKED,
        "run its spirit.toml instead"
        if context.key_flag == "--trust"
        else "give it with --manifest MANIFEST.toml (or verify the spirit.toml itself)",
    )
    return text.replace(
        _ADD_KEY, f"pass that key's public key with {context.key_flag} if you trust it"
    )


_BUILTIN_LOAS = frozenset(LoaRegistry().names())


def _one_line(exc: SpiritTrap, backtrace: bool) -> str:
    """A trap as one line (its wasm backtrace only when asked for)."""
    text = str(exc)
    if backtrace:
        return text
    head = text.split("\nwasm backtrace:")[0]
    line = "; ".join(part.strip() for part in head.splitlines() if part.strip())
    if exc.backtrace:
        line += " (--backtrace shows where)"
    return line


# ---- arguments -----------------------------------------------------------------------------


def parse_value(text: str, wasm_type: str, position: int, fn: str, *, strings: bool = False) -> Any:
    """A command-line argument as the wasm type of the parameter it feeds.

    With ``strings`` (the Spirit exports a memory), an i32 argument that is not an integer
    (or starts with ``str:``) is passed as a str: the runtime writes a guest string.
    """
    if wasm_type == "i32" and text.startswith(STR_PREFIX):
        if not strings:
            raise UsageError(
                f"argument {position} of {fn} cannot be a string: the Spirit exports no memory"
            )
        return text[len(STR_PREFIX) :]
    try:
        if wasm_type in ("i32", "i64"):
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            try:
                return int(text, 0)  # also 0x10, 0o17, 0b101, 1_000
            except ValueError:
                return int(text, 10)  # base 0 refuses leading zeros: 007, 010
        return float(text)  # also inf, -inf, nan, -1e5
    except ValueError:
        if wasm_type == "i32" and strings:
            return text
        hint = " (and cannot be a string: the Spirit exports no memory)" * (wasm_type == "i32")
        raise UsageError(
            f"argument {position} of {fn} must be {wasm_type}, got {text!r}{hint}"
        ) from None


def split_run_argv(tokens: Sequence[str], known: dict[str, argparse.Action]) -> tuple[
    list[str], list[str]
]:  # fmt: skip
    """``vudo run``'s tokens as (vudo's options, positionals).

    A token is an option only when it is one of ``known`` (``--flag``, ``--flag=value``,
    or ``--flag value`` for a flag that takes one); everything else, and everything after
    ``--``, is positional: ``-5``, ``-inf`` or a WASI program's own ``-v`` stay arguments.
    """
    options: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            positionals += tokens[i:]
            break
        flag, eq, _ = token.partition("=")
        action = known.get(flag) if token.startswith("-") else None
        if action is None:
            positionals.append(token)
        elif action.nargs == 0 or eq or i >= len(tokens):
            options.append(token)  # argparse reports a stray value or a missing one
        else:
            options.append(f"{flag}={tokens[i]}")  # its value, even when it looks like -1
            i += 1
    return options, positionals


def _size(text: str) -> int:
    """``--max-memory``: bytes, or a number with B, K/KiB, M/MiB or G/GiB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    units = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
             "g": 1 << 30, "gib": 1 << 30}  # fmt: skip
    if m is None or m[2].lower() not in units or not float(m[1]) > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive size like 65536, 16MiB or '16 MiB', got {text!r}"
        )
    return int(float(m[1]) * units[m[2].lower()])


def _load_loa(spec: str, registry: LoaRegistry) -> str:
    """``--loa``: a built-in Loa's name, or ``module:attr`` (a Loa, or a callable returning
    one, imported with the working directory on sys.path), registered in ``registry``."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        if spec in registry:
            return spec
        raise UsageError(
            f"--loa expects MODULE:ATTR (or a built-in Loa: {', '.join(registry.names())}), "
            f"got {spec!r}"
        )
    if not module_name or not attr:
        raise UsageError(f"--loa expects MODULE:ATTR, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import is found too
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--loa {spec}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:
        raise UsageError(
            f"--loa {spec}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--loa {spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, Loa) and callable(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(
                f"--loa {spec}: calling {attr}() raised {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(obj, Loa):
        kind = type(obj).__name__
        raise UsageError(
            f"--loa {spec}: {attr} is {'an' if kind[:1] in 'aeiouAEIOU' else 'a'} {kind}, "
            "not a Loa (nor a callable returning one)"
        )
    if obj.name in registry:
        if registry.get(obj.name) is obj:
            return obj.name
        raise UsageError(
            f"--loa {spec}: a Loa named {obj.name!r} is already registered (a built-in or "
            "another --loa); give yours another name"
        )
    registry.register(obj)
    return obj.name


def _trust(paths: Sequence[str], flag: str) -> TrustPolicy:
    from vudo_runtime.signing import TrustPolicy

    try:
        return TrustPolicy(keys=list(paths))
    except SignatureError as exc:
        raise UsageError(f"{flag}: {display(str(exc))}") from None


def _preopen(spec: str) -> Preopen:
    try:
        preopen = Preopen.parse(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not Path(preopen.host).is_dir():
        raise UsageError(f"--dir {spec}: {preopen.host} is not a directory")
    return preopen


# ---- run -----------------------------------------------------------------------------------


@attrs.frozen
class Peek:
    """What ``vudo run`` needs to know before loading: WASI or not, and the manifest."""

    wasi: bool  # imports wasi_snapshot_preview1
    command: bool  # ... and exports _start: a WASI command, run with its arguments
    manifest: Manifest | None


def peek(source: str) -> Peek:
    """Read (not compile) the module ``source`` names: its WASI imports and ``_start``."""
    from vudo_runtime.manifest import load_manifest
    from vudo_runtime.module import read_source
    from vudo_runtime.spirit import is_manifest

    manifest = None
    if is_manifest(source):
        manifest = load_manifest(source)
        wasm = manifest.read_source()
    else:
        wasm = read_source(source, None)[0]
    interface = read_interface(wasm)
    if interface is None:  # malformed: loading reports it
        return Peek(False, False, manifest)
    wasi = any(module in WASI_MODULES for module, *_ in interface.imports)
    start = any(name == "_start" and kind == "func" for name, kind, _ in interface.exports)
    return Peek(wasi, wasi and start, manifest)


def _exit_status(status: int) -> int:
    return status if 0 <= status <= 255 else 255


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no such numbers
    return value


def _writer(stream: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()

    return write


def cmd_run(args: argparse.Namespace) -> int:
    from vudo_runtime.spirit import Spirit

    source: str = args.spirit
    rest: list[str] = args.args
    info = peek(source)
    manifest_run = info.manifest is not None
    context = Context(manifest=manifest_run)
    wasi_command = info.command and args.invoke is None
    for flag, given in (("--dir", args.dir), ("--env", args.env), ("--argv0", args.argv0)):
        if given and not info.wasi:
            raise UsageError(f"{flag} is for WASI programs; {source} does not import WASI")
    if manifest_run and args.dir:
        raise UsageError(
            f"--dir cannot add directories to a manifest's; list them under [wasi] dirs in {source}"
        )
    if wasi_command and args.returns:
        raise UsageError(
            "--returns applies to a function call, not to a WASI program's run "
            "(call an export with --invoke FN)"
        )
    registry = LoaRegistry()
    granted = list(dict.fromkeys(_load_loa(spec, registry) for spec in args.loa))
    trust = _trust(args.trust, "--trust") if args.trust else None
    # With --json, stdout carries the JSON document only: the guest's output goes to stderr.
    guest_out = sys.stderr if args.json else sys.stdout
    ends_line = [True]  # whether the guest's vudo_print output so far ends with a newline

    def output(text: str) -> None:
        guest_out.write(text)
        guest_out.flush()
        if text:
            ends_line[0] = text.endswith("\n")

    wasi = None
    if info.wasi:
        wasi = WasiOptions(
            args=rest if wasi_command else (),
            env=args.env,
            dirs=[_preopen(spec) for spec in args.dir],
            stdin="inherit",
            stdout=_writer(sys.stderr) if args.json else "inherit",
            stderr="inherit",
        )
    base = ["core", "messaging", *(["wasi"] if info.wasi else [])]
    try:
        spirit = Spirit.load_sync(
            source,
            name=args.argv0,
            loas=None if manifest_run else list(dict.fromkeys([*base, *granted])),
            registry=registry,
            cache=not args.no_cache,
            timeout=args.timeout,
            fuel=args.fuel,
            max_memory=args.max_memory,
            stdout=output,
            wasi=wasi,
            trust=trust,
        )
    except VudoError as exc:
        _annotate(exc, context)
        raise
    try:
        code: int | None = None  # an export's exit code (None: a program's status)
        with ctrl_c_stops(spirit) as pressed:
            try:
                if wasi_command:
                    sys.stdout.flush()  # the program writes to the same file descriptor
                    status = spirit.run_sync()
                else:
                    code = _call(spirit, args, rest, output, ends_line, guest_out)
            except SpiritExit as exc:  # a WASI export that called proc_exit
                status, code = exc.status, None
            except SpiritInterrupted:
                if pressed:
                    raise KeyboardInterrupt from None
                raise
            if pressed:  # the call ended before it saw the stop: Ctrl-C still ends vudo
                raise KeyboardInterrupt
        if code is not None:
            return code
        if args.json:
            print(json.dumps({"exit_code": status}))
        return _exit_status(status)
    finally:
        spirit.close()


@contextlib.contextmanager
def ctrl_c_stops(spirit: Any) -> Iterator[list[bool]]:
    """Ctrl-C while ``spirit`` runs a call on the main thread stops the call (and vudo
    reports it as interrupted); elsewhere it raises KeyboardInterrupt as usual.

    The runtime installs a handler of its own at a guest's first epoch check, but a WASI
    program can block reading stdin before it reaches one; Python's default handler would
    then raise inside the epoch callback that runs once the read returns."""
    pressed: list[bool] = []
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield pressed
        return

    def on_sigint(signum: int, frame: object) -> None:
        if spirit.interrupt():  # a call is running: it stops at its next epoch check
            pressed.append(True)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _annotate(exc: VudoError, context: Context) -> None:
    """Remember how to word ``exc`` for the command line (see :func:`main`)."""
    exc.vudo_cli_context = context  # type: ignore[attr-defined]


def _call(
    spirit: Any,
    args: argparse.Namespace,
    rest: list[str],
    output: Callable[[str], None],
    ends_line: list[bool],
    guest_out: Any,
) -> int:
    if args.invoke is not None:
        fn: str | None = args.invoke
        texts = rest
    else:
        fn, texts = (rest[0], rest[1:]) if rest else (None, [])
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
    flags = [t for t in texts if t.startswith("--")]
    hint = (
        f" ({', '.join(flags)}: not an option of vudo run; `vudo run --help` lists them)"
        if flags
        else ""
    )
    if len(texts) != len(sig.params):
        raise UsageError(f"{fn}{sig} takes {len(sig.params)} argument(s), got {len(texts)}{hint}")
    returns = {"str": str, "bytes": bytes}.get(args.returns)
    if args.returns is not None:
        expected = "i32" if returns is not None else args.returns
        if sig.results != (expected,):
            what = "a pointer (one i32)" if returns is not None else f"one {expected}"
            raise UsageError(f"--returns {args.returns} needs {fn} to return {what}; it is {sig}")
    strings = "memory" in spirit.exports.values()
    pairs = enumerate(zip(texts, sig.params, strict=True))
    try:
        values = [parse_value(text, ty, i + 1, fn, strings=strings) for i, (text, ty) in pairs]
    except UsageError as exc:
        raise UsageError(f"{exc}{hint}") from None
    try:
        result = spirit.call_sync(fn, *values, returns=returns)
    finally:
        if not ends_line[0]:  # end the guest's last line, so the shell prompt starts clean
            print(file=guest_out)
    if args.json:
        print(json.dumps({"result": _jsonable(result)}))
    elif isinstance(result, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(result)  # as is: the bytes may be anything
        sys.stdout.buffer.flush()
    elif isinstance(result, tuple):
        print(" ".join(map(str, result)))
    elif result is not None:
        print(result)
    return 0


# ---- inspect -------------------------------------------------------------------------------


def _manifest_data(manifest: Manifest) -> dict[str, Any]:
    limits = manifest.limits
    return {
        "path": str(manifest.path),
        "name": manifest.name,
        "version": manifest.version,
        "source": str(manifest.source),
        "sha256": manifest.sha256,
        "grants": list(manifest.loas),
        "limits": {
            "timeout": limits.timeout,
            "fuel": limits.fuel,
            "max_memory": limits.max_memory,
        },
        "wasi": {
            "args": list(manifest.wasi.args),
            "env": dict(manifest.wasi.env),
            "dirs": [
                {"host": str(d.host), "guest": d.guest, "mode": d.mode} for d in manifest.wasi.dirs
            ],
        },
        "config": dict(manifest.config),
    }


def describe(path: str) -> dict[str, Any]:
    """Imports, exports and what is recognised of the DOL ABI, as plain data; for a
    spirit.toml also the manifest (``"manifest"``)."""
    from vudo_runtime.cache import compile_module
    from vudo_runtime.engine import EngineSettings
    from vudo_runtime.manifest import load_manifest
    from vudo_runtime.module import dol_role, module_info, read_source
    from vudo_runtime.signing import read_signature
    from vudo_runtime.spirit import is_manifest

    manifest = None
    if is_manifest(path):
        manifest = load_manifest(path)
        wasm, name, label = manifest.read_source(), manifest.name, str(manifest.source)
    else:
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

    # The runtime's own state exports (added at compile time for resets) are not the
    # module's.
    exports = {e.name: kind(e.type) for e in module.exports if not e.name.startswith(STATE_PREFIX)}
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
    try:
        record = read_signature(wasm, source=label)
        signature: dict[str, Any] | None = (
            None
            if record is None
            else {
                "key_id": record.key_id,
                "manifest_sha256": record.manifest_sha256.hex() or None,
            }
        )
    except SignatureError as exc:
        signature = {"error": str(exc)}
    wasi = any(i["module"] in WASI_MODULES for i in imports)
    info: dict[str, Any] = {
        "spirit": name,
        "path": label,
        "size": len(wasm),
        "imports": imports,
        "exports": exports,
        "wasi": {
            "imports": wasi,
            "command": wasi and exports.get("_start", {}).get("kind") == "func",
        },
        "signature": signature,
        "dol": {
            "genes": genes,
            "functions": functions,
            "host_imports": [
                f"{i['module']}.{i['name']}" for i in imports if i["module"] in LOA_MODULES
            ],
            "memory": exports.get("memory"),
        },
    }
    if manifest is not None:
        info["manifest"] = _manifest_data(manifest)
    return info


def _print_manifest(m: dict[str, Any]) -> None:
    print(f"manifest {m['path']}")
    print(f"  name: {m['name']}" + (f" {m['version']}" if m["version"] else ""))
    print(f"  source: {m['source']} (sha256 {m['sha256']})")
    print(f"  grants: {', '.join(m['grants']) or 'none'}")
    limits = [f"{k} {v}" for k, v in m["limits"].items() if v is not None]
    print(f"  limits: {', '.join(limits) or 'none'}")
    wasi = m["wasi"]
    dirs = [f"{d['host']} -> {d['guest']} ({d['mode']})" for d in wasi["dirs"]]
    print(f"  wasi args: {' '.join(wasi['args']) or 'none'}")
    print(f"  wasi env: {' '.join(f'{k}={v}' for k, v in wasi['env'].items()) or 'none'}")
    print(f"  wasi dirs: {', '.join(dirs) or 'none'}")
    config = ", ".join(f"{k} = {v!r}" for k, v in m["config"].items())
    print(f"  config: {config or 'none'}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from vudo_runtime.codegen import inspect_package

    package = inspect_package(args.spirit, as_json=args.json)
    if package is not None:  # a Spirit package (a folder with Spirit.dol)
        sys.stdout.write(package)
        return 0
    info = describe(args.spirit)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0

    def sig(d: dict[str, Any]) -> str:
        if d["kind"] == "func":
            return f"func ({', '.join(d['params'])}) -> ({', '.join(d['results'])})"
        if d["kind"] == "memory":
            return f"memory {d['min_pages']}..{d['max_pages'] or 'unbounded'} pages"
        return str(d["kind"])

    if "manifest" in info:
        _print_manifest(info["manifest"])
    print(f"{info['spirit']} ({info['path']}, {info['size']} bytes)")
    print("imports:" if info["imports"] else "imports: none")
    for i in info["imports"]:
        print(f"  {i['module']}.{i['name']}: {sig(i)}")
    print("exports:")
    for ename, d in info["exports"].items():
        print(f"  {ename}: {sig(d)}")
    if info["wasi"]["imports"]:
        what = "a command (vudo run runs _start)" if info["wasi"]["command"] else "no _start"
        print(f"WASI: preview 1, {what}")
    signature = info["signature"]
    if signature is None:
        print("signature: none")
    elif "error" in signature:
        print(f"signature: unreadable: {signature['error']}")
    else:
        covers = " and its manifest" if signature["manifest_sha256"] else ""
        print(f"signature: key {signature['key_id']} (unverified; covers the module{covers})")
    dol = info["dol"]
    print("DOL ABI:")
    for gene, g in dol["genes"].items():
        ctor = g["constructor"] or "no constructor"
        print(f"  gene {gene}: {ctor}; methods: {', '.join(g['methods']) or 'none'}")
    print(f"  functions: {', '.join(dol['functions']) or 'none'}")
    print(f"  host imports: {', '.join(dol['host_imports']) or 'none'}")
    return 0


# ---- codegen, bench ------------------------------------------------------------------------


def cmd_codegen(args: argparse.Namespace) -> int:
    from vudo_runtime.codegen import codegen

    text, files = codegen(args.source, args.output)
    if text is not None:
        sys.stdout.write(text)
    elif len(files) > 1 or not args.output:  # a Spirit package: say what was written
        print(f"wrote {len(files)} files: {', '.join(str(f) for f in files)}")
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


# ---- signing -------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from vudo_runtime.signing import key_id, write_keypair

    try:
        private, public = write_keypair(args.name, overwrite=args.force)
    except SignatureError as exc:
        raise UsageError(display(str(exc))) from None
    print(f"wrote {private} (private key, mode 0600: keep it secret) and {public}")
    print(f"key id {key_id(public)}")
    return 0


def _target(spirit: str, manifest_path: str | None) -> tuple[Path, bytes | None, str | None]:
    """The module file to sign or verify, the manifest's bytes, and the manifest's path:
    ``spirit`` is the module (with ``--manifest``, its manifest) or a spirit.toml."""
    from vudo_runtime.manifest import load_manifest
    from vudo_runtime.spirit import is_manifest

    if is_manifest(spirit):
        if manifest_path is not None:
            raise UsageError(f"{spirit} is a manifest already; --manifest names one for a module")
        manifest_path = spirit
        module = None
    else:
        module = Path(spirit)
    if manifest_path is None:
        return Path(spirit), None, None
    manifest = load_manifest(manifest_path)
    if module is not None and module.resolve() != manifest.source:
        raise UsageError(
            f"{manifest_path} describes {manifest.source}, not {spirit}; give that module "
            "(or the manifest alone)"
        )
    manifest.read_source()  # its sha256 must match: a manifest signed for other bytes is wrong
    return manifest.source, manifest.raw, manifest_path


def _shown(path: Path) -> str:
    """``path`` as messages show it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` in one step: a reader sees the old file or the new one."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o644 & ~umask
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_sign(args: argparse.Namespace) -> int:
    from vudo_runtime.signing import read_signature, sign

    module, manifest, manifest_path = _target(args.spirit, args.manifest)
    data = _read(module)
    try:
        signed = sign(data, args.key, manifest, source=str(module))
    except SignatureError as exc:
        raise UsageError(display(str(exc), Context(key_flag="--key"))) from None
    out = Path(args.output) if args.output else module
    _write_atomically(out, signed)
    record = read_signature(signed, source=str(out))
    assert record is not None
    covers = f" (with its manifest {manifest_path})" if manifest_path else ""
    print(f"signed {_shown(out)} with key {record.key_id}{covers}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from vudo_runtime.signing import read_signature, verify

    policy = _trust(args.key, "--key")
    module, manifest, _ = _target(args.spirit, args.manifest)
    data = _read(module)
    try:
        verify(data, policy, manifest, source=str(module))
    except SignatureError as exc:
        _annotate(exc, Context(key_flag="--key"))
        raise
    record = read_signature(data, source=str(module))
    assert record is not None  # verify passed: the policy requires a signature
    print(f"ok: signed by {record.key_id}")
    return 0


# ---- the parser ----------------------------------------------------------------------------

RUN_USAGE = "vudo run [options] SPIRIT [FUNCTION] [ARG ...]"
RUN_DESCRIPTION = """\
Run a Spirit. A WASI program (a module importing wasi_snapshot_preview1 and exporting
_start) runs with ARGs as its arguments (argv[0] is the file's stem, or the manifest's
name), this process's stdin, stdout and stderr, and only the directories and variables
given by --dir and --env; vudo exits with the program's exit status. Any other module:
FUNCTION (default: main or _start) is called with ARGs parsed by its wasm signature and
the result is printed.

vudo's options are recognised anywhere on the line; anything else (-5, -inf, a program's
own -v) is an argument; after `--` everything is.
"""
RUN_EPILOG = """\
exit codes: 0 success (WASI: the program's exit status), 1 trap, timeout or fuel ran out,
2 bad usage or input, 3 refused by --trust, 130 Ctrl-C.

examples:
  vudo run spirits/calculator.wasm add -5 3
  vudo run spirits/strings.wasm upper hello --returns str
  vudo run tests/wasi/cat.wasm --dir tests/wasi::/data:ro /data/hello.c
  vudo run spirit.toml --trust alice.pub
"""


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``vudo`` parser and its ``run`` subparser."""
    parser = argparse.ArgumentParser(
        prog="vudo",
        description="Run, inspect and sign DOL Spirits (WebAssembly modules).",
        epilog="exit codes: 0 success (vudo run of a WASI program: its exit status), 1 the "
        "Spirit trapped, timed out or ran out of fuel, 2 bad usage or input, 3 a signature "
        "check refused the Spirit, 130 Ctrl-C. `vudo COMMAND --help` for each command.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"vudo-runtime {vudo_runtime.__version__} (wasmtime {WASMTIME_VERSION}, "
        f"Python {sys.version.split()[0]})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a WASI program, or call a function of a Spirit and print the result",
        usage=RUN_USAGE,
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    run.add_argument("spirit", nargs="?", metavar="SPIRIT", help="a .wasm, .wat or spirit.toml")
    run.add_argument(
        "args",
        nargs="*",
        metavar="ARG",
        help="a WASI program's arguments; else FUNCTION and its arguments (an i32 "
        "argument that is not an integer, or starts with 'str:', is passed as a string)",
    )
    limits = run.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, metavar="SECONDS", help="stop a call after this")
    limits.add_argument("--fuel", type=int, metavar="N", help="fuel budget per call")
    limits.add_argument(
        "--max-memory", type=_size, metavar="SIZE", help="largest linear memory (e.g. 16MiB)"
    )
    limits.add_argument("--no-cache", action="store_true", help="do not use the compiled cache")
    wasi = run.add_argument_group("WASI")
    wasi.add_argument(
        "--dir",
        action="append",
        default=[],
        metavar="HOST[::GUEST][:ro]",
        help="preopen a host directory (at GUEST; read-only with :ro); repeatable",
    )
    wasi.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an environment variable; repeatable",
    )
    wasi.add_argument("--argv0", metavar="NAME", help="the program name (default: file stem)")
    wasi.add_argument(
        "--invoke", metavar="FN", help="call export FN with the ARGs instead of running _start"
    )
    grants = run.add_argument_group("grants and trust")
    grants.add_argument(
        "--loa",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="grant a user Loa (a Loa or a callable returning one; the working directory "
        "is on sys.path), or a built-in one by name (e.g. state); repeatable",
    )
    grants.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KEY.pub",
        help="run only if signed by one of these keys; repeatable",
    )
    output = run.add_argument_group("output")
    output.add_argument(
        "--returns",
        choices=RETURNS,
        help="str/bytes: read the returned pointer back as a DOL string/bytes; a number "
        "type: check the result is one",
    )
    output.add_argument(
        "--json",
        action="store_true",
        help='print {"result": ...} or {"exit_code": N} (the guest\'s output goes to stderr)',
    )
    output.add_argument(
        "--backtrace", action="store_true", help="print the wasm backtrace of a trap"
    )
    run.set_defaults(handler=cmd_run)

    insp = sub.add_parser("inspect", help="show imports, exports and the DOL ABI of a Spirit")
    insp.add_argument("spirit", metavar="SPIRIT", help="a .wasm, .wat or spirit.toml")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    insp.set_defaults(handler=cmd_inspect)

    gen = sub.add_parser("codegen", help="typed Python stubs from a .dol or .wasm file")
    gen.add_argument("source")
    gen.add_argument("-o", "--output", help="write the module here (default: stdout)")
    gen.set_defaults(handler=cmd_codegen)

    keygen = sub.add_parser("keygen", help="write an Ed25519 key pair NAME.key and NAME.pub")
    keygen.add_argument("name", metavar="NAME", help="path stem of the two files")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    keygen.set_defaults(handler=cmd_keygen)

    sign = sub.add_parser("sign", help="sign a Spirit (and its manifest) with a private key")
    sign.add_argument(
        "spirit", metavar="SPIRIT", help="a .wasm, or a spirit.toml (signs its module)"
    )
    sign.add_argument("--key", required=True, metavar="NAME.key", help="the private key")
    sign.add_argument("--manifest", metavar="TOML", help="sign together with this manifest")
    sign.add_argument("-o", "--output", metavar="OUT", help="write here (default: in place)")
    sign.set_defaults(handler=cmd_sign)

    ver = sub.add_parser("verify", help="check a Spirit's signature against public keys")
    ver.add_argument("spirit", metavar="SPIRIT", help="a .wasm, or a spirit.toml")
    ver.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="NAME.pub",
        help="a trusted key; repeatable",
    )
    ver.add_argument("--manifest", metavar="TOML", help="the manifest it was signed with")
    ver.set_defaults(handler=cmd_verify)

    sub.add_parser("bench", help="run the benchmark suite (from a source checkout)", add_help=False)
    return parser, run


def _parse(argv: list[str]) -> argparse.Namespace:
    parser, run = _build()
    if argv[:1] != ["run"]:
        return parser.parse_args(argv)
    options, positionals = split_run_argv(argv[1:], run._option_string_actions)
    args = parser.parse_args(["run", *options])
    if not positionals:
        run.error("the following arguments are required: SPIRIT")
    args.spirit, args.args = positionals[0], positionals[1:]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options belong to the suite
        return run_bench(argv[1:])
    args = _parse(argv)

    def say(exc: BaseException) -> None:
        context = getattr(exc, "vudo_cli_context", Context())
        print(f"vudo: {display(str(exc), context)}", file=sys.stderr)

    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"vudo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpiritTrap as exc:
        trap = _one_line(exc, getattr(args, "backtrace", False))
        print(f"vudo: {display(trap)}", file=sys.stderr)
        return EXIT_TRAP
    except SignatureError as exc:
        say(exc)
        return EXIT_UNTRUSTED
    except (VudoError, ValueError) as exc:
        say(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C stops the guest (see engine.watch_store)
        print("vudo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
