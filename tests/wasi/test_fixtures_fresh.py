"""The committed WASI preview 1 fixtures: fresh, well formed, and doing what they say.

Three layers:

* staleness without clang (CI): ``manifest.json`` matches the sources and modules;
* staleness with clang: a fresh build is byte-identical to the committed modules
  (skipped when clang or the wasi-libc sysroot is absent, or is another version);
* behaviour: each program run under plain wasmtime-py WASI (not vudo_runtime, which
  has no WASI support yet), including what the preopen sandbox lets through.

Facts of wasmtime-py 50 that these tests pin down:

* ``WasiConfig.preopen_dir(host, guest, fs_mutable=True)``: one bool, no DirPerms /
  FilePerms enums; ``fs_mutable=False`` makes every create/write fail with EPERM.
* A WasiConfig is consumed by ``Store.set_wasi``: touching it again is a ValueError.
* ``proc_exit(n)`` raises ``ExitTrap`` (a ``WasmtimeError``, not a ``Trap``) with
  ``.code == n`` for 0 <= n < 126; ``main`` returning 0 raises nothing at all;
  ``exit(126..)`` or a negative status is a plain ``WasmtimeError``.
* ``abort()`` is a ``wasmtime.Trap`` (``TrapCode.UNREACHABLE``), not an ExitTrap.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import wasmtime

HERE = Path(__file__).resolve().parent
WASI_MODULE = "wasi_snapshot_preview1"


def _load_build() -> ModuleType:
    # Not `import build`: that name is also the PyPA `build` package.
    name = "vudo_tests_wasi_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


build = _load_build()

SOURCES = sorted(p.stem for p in HERE.glob("*.c"))
COMMITTED = sorted(HERE.glob("*.wasm"))


# --------------------------------------------------------------------------- staleness


def test_every_source_has_a_committed_module() -> None:
    assert SOURCES, "no fixtures found"
    assert [p.stem for p in COMMITTED] == SOURCES


def test_manifest_matches_sources_and_modules() -> None:
    """Needs no clang: a .c edited without rebuilding its .wasm shows up here."""
    assert build.manifest_problems() == [], "run: python tests/wasi/build.py"


@pytest.fixture(scope="module")
def toolchain() -> Any:
    try:
        return build.find_toolchain()
    except build.ToolchainMissing as exc:
        pytest.skip(f"cannot rebuild WASI fixtures: {exc}")


def test_fresh_build_matches_committed(toolchain: Any, tmp_path: Path) -> None:
    recorded = json.loads(build.MANIFEST.read_text())["toolchain"]
    here = toolchain.describe()
    if recorded != here:
        pytest.skip(f"fixtures were built with {recorded}; this machine has {here}")
    fresh = build.build_all(toolchain, tmp_path)
    assert sorted(fresh) == [p.name for p in COMMITTED]
    stale = [name for name, data in fresh.items() if (HERE / name).read_bytes() != data]
    assert stale == [], "run: python tests/wasi/build.py"


def test_build_is_deterministic_even_with_wasm_opt_on_path(
    toolchain: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two builds are identical, and a ``wasm-opt`` on PATH is never run.

    A one-step ``clang -O2 -o x.wasm`` runs wasm-opt if it finds one; build.py links
    without -O so it does not. The decoy here would corrupt any module it touches.
    """
    first = build.build_all(toolchain, tmp_path / "first")
    decoy = tmp_path / "bin"
    decoy.mkdir()
    (decoy / "wasm-opt").write_text(f"#!/bin/sh\ntouch {tmp_path}/wasm-opt-ran\nexit 1\n")
    (decoy / "wasm-opt").chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoy}{os.pathsep}{os.environ['PATH']}")
    second = build.build_all(toolchain, tmp_path / "second")
    assert not (tmp_path / "wasm-opt-ran").exists()
    assert first == second


# --------------------------------------------------------------------------- shape

ENGINE = wasmtime.Engine()


@cache
def module(name: str) -> wasmtime.Module:
    return wasmtime.Module(ENGINE, (HERE / f"{name}.wasm").read_bytes())


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem)
def test_committed_module_is_a_wasi_command(path: Path) -> None:
    mod = wasmtime.Module(wasmtime.Engine(), path.read_bytes())
    imports = mod.imports
    assert imports, "a WASI command imports at least fd_write/proc_exit"
    assert {imp.module for imp in imports} == {WASI_MODULE}
    assert all(isinstance(imp.type, wasmtime.FuncType) for imp in imports)
    exports = {exp.name: exp.type for exp in mod.exports}
    assert isinstance(exports.get("_start"), wasmtime.FuncType)
    assert isinstance(exports.get("memory"), wasmtime.MemoryType)
    start = exports["_start"]
    assert isinstance(start, wasmtime.FuncType)
    assert (start.params, start.results) == ([], [])


# --------------------------------------------------------------------------- running

_run_ids = itertools.count()


@dataclass(frozen=True)
class Run:
    code: int | None  # exit status; None when the guest trapped
    stdout: bytes
    stderr: bytes
    trap: wasmtime.Trap | None = None

    @property
    def out(self) -> str:
        return self.stdout.decode()

    @property
    def err(self) -> str:
        return self.stderr.decode()


def run_wasi(
    name: str,
    args: Sequence[str] = (),
    *,
    io_dir: Path,
    env: Iterable[tuple[str, str]] = (),
    preopens: Iterable[tuple[Path, str, bool]] = (),
    stdin: Path | None = None,
) -> Run:
    """Run fixture ``name`` as a WASI command; stdout/stderr go to files in ``io_dir``."""
    n = next(_run_ids)
    out, err = io_dir / f"run{n}.stdout", io_dir / f"run{n}.stderr"
    config = wasmtime.WasiConfig()
    config.argv = [name, *args]
    config.env = list(env)
    config.stdout_file = str(out)
    config.stderr_file = str(err)
    if stdin is not None:
        config.stdin_file = stdin
    for host, guest, mutable in preopens:
        config.preopen_dir(str(host), guest, mutable)
    store = wasmtime.Store(ENGINE)
    store.set_wasi(config)
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    instance = linker.instantiate(store, module(name))
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    code: int | None = 0  # wasi-libc's _start returns normally when main returns 0
    trap = None
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        code = exc.code
    except wasmtime.Trap as exc:
        code, trap = None, exc
    return Run(code, out.read_bytes(), err.read_bytes(), trap)


@pytest.fixture
def io_dir(tmp_path: Path) -> Path:
    path = tmp_path / "io"
    path.mkdir()
    return path


SECRET = "top secret, outside the sandbox\n"


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """``tmp/secret`` outside, ``tmp/pre`` to preopen, with symlinks in and out.

    pre/data.txt, pre/sub/, pre/link_in -> data.txt, pre/sub/link_up -> ../data.txt,
    pre/link_out -> ../secret, pre/link_abs -> /abs/tmp/secret,
    pre/sub/link_out_and_back -> ../../pre/data.txt (leaves, then re-enters).
    """
    (tmp_path / "secret").write_text(SECRET)
    pre = tmp_path / "pre"
    (pre / "sub").mkdir(parents=True)
    (pre / "data.txt").write_text("inside the sandbox\n")
    (pre / "link_in").symlink_to("data.txt")
    (pre / "sub" / "link_up").symlink_to("../data.txt")
    (pre / "link_out").symlink_to("../secret")
    (pre / "link_abs").symlink_to(tmp_path / "secret")
    (pre / "sub" / "link_out_and_back").symlink_to("../../pre/data.txt")
    return pre


def test_hello(io_dir: Path) -> None:
    run = run_wasi("hello", io_dir=io_dir)
    assert (run.code, run.out, run.err) == (0, "hello from wasi\n", "")


def test_args_env(io_dir: Path) -> None:
    run = run_wasi(
        "args_env",
        ["one", "two words", ""],
        io_dir=io_dir,
        env=[("GREETING", "bonjour"), ("OTHER", "x")],
    )
    assert run.code == 4  # argc
    assert run.out == (
        "argv[0]=args_env\nargv[1]=one\nargv[2]=two words\nargv[3]=\nGREETING=bonjour\n"
    )


def test_args_env_sees_no_host_environment(io_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "from the host")
    run = run_wasi("args_env", io_dir=io_dir)
    assert (run.code, run.out) == (1, "argv[0]=args_env\nGREETING unset\n")


def test_cat_reads_a_file_in_a_preopened_dir(io_dir: Path, sandbox: Path) -> None:
    payload = bytes(range(256)) * 40  # binary, and more than one 4 KiB read
    (sandbox / "blob.bin").write_bytes(payload)
    run = run_wasi(
        "cat", ["/sandbox/blob.bin"], io_dir=io_dir, preopens=[(sandbox, "/sandbox", False)]
    )
    assert (run.code, run.stdout, run.err) == (0, payload, "")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/sandbox/../secret", "Operation not permitted"),
        ("/sandbox/sub/../../secret", "Operation not permitted"),
        ("/sandbox/link_out", "Operation not permitted"),  # relative symlink out
        ("/sandbox/link_abs", "Operation not permitted"),  # absolute symlink out
        ("/sandbox/sub/link_out_and_back", "Operation not permitted"),
        ("/sandbox/..", "Operation not permitted"),
        ("/etc/passwd", "Capabilities insufficient"),  # no preopen covers it
        ("../secret", "Capabilities insufficient"),  # no preopen is named "."
        ("secret", "Capabilities insufficient"),
        ("/sandboxx/data.txt", "Capabilities insufficient"),  # prefix match is per component
    ],
)
def test_cat_cannot_leave_the_preopened_dir(
    io_dir: Path, sandbox: Path, path: str, error: str
) -> None:
    run = run_wasi("cat", [path], io_dir=io_dir, preopens=[(sandbox, "/sandbox", True)])
    assert (run.code, run.out, run.err) == (2, "", f"error: {error}\n")


def test_escape_probe_inside_a_named_preopen(io_dir: Path, sandbox: Path) -> None:
    """``..`` that stays inside resolves; anything that lexically leaves is refused."""
    paths = [
        "/sandbox/data.txt",
        "/sandbox/./data.txt",
        "/sandbox//data.txt",
        "/sandbox/sub/../data.txt",  # `..` inside the preopen: fine
        "/sandbox/link_in",  # symlink inside: fine
        "/sandbox/sub/link_up",  # symlink with `..`, still inside: fine
        "/sandbox/sub/link_out_and_back",  # leaves then re-enters: refused
        "/sandbox/../pre/data.txt",  # same, spelled out
        "/sandbox/link_out",
        "/etc/passwd",
        "/",
    ]
    run = run_wasi("escape", paths, io_dir=io_dir, preopens=[(sandbox, "/sandbox", False)])
    assert run.code == 0
    assert run.out.splitlines() == [
        "/sandbox/data.txt: ok",
        "/sandbox/./data.txt: ok",
        "/sandbox//data.txt: ok",
        "/sandbox/sub/../data.txt: ok",
        "/sandbox/link_in: ok",
        "/sandbox/sub/link_up: ok",
        "/sandbox/sub/link_out_and_back: denied (Operation not permitted)",
        "/sandbox/../pre/data.txt: denied (Operation not permitted)",
        "/sandbox/link_out: denied (Operation not permitted)",
        "/etc/passwd: denied (Capabilities insufficient)",
        "/: denied (Capabilities insufficient)",
        "ls /: denied (Capabilities insufficient)",
    ]
    assert SECRET not in run.out


def test_escape_probe_with_preopen_dot(io_dir: Path, sandbox: Path) -> None:
    """A preopen named "." also serves absolute paths (wasi-libc maps "/x" into it).

    So ``/etc/passwd`` is looked up *inside* the preopen (ENOENT), and ``ls /`` lists
    the preopened dir, never the host's root.
    """
    run = run_wasi(
        "escape",
        ["data.txt", "./data.txt", "/data.txt", "/etc/passwd", "../secret", "/../secret"],
        io_dir=io_dir,
        preopens=[(sandbox, ".", False)],
    )
    lines = run.out.splitlines()
    assert lines[:-1] == [
        "data.txt: ok",
        "./data.txt: ok",
        "/data.txt: ok",
        "/etc/passwd: denied (No such file or directory)",
        "../secret: denied (Operation not permitted)",
        "/../secret: denied (Operation not permitted)",
    ]
    prefix = "ls /: "
    assert lines[-1].startswith(prefix)
    listed = set(lines[-1][len(prefix) :].split())
    assert listed == {".", "..", "data.txt", "sub", "link_in", "link_out", "link_abs"}


def test_escape_probe_without_preopens(io_dir: Path) -> None:
    run = run_wasi("escape", ["/etc/passwd", "."], io_dir=io_dir)
    assert run.out.splitlines() == [
        "/etc/passwd: denied (Capabilities insufficient)",
        ".: denied (Capabilities insufficient)",
        "ls /: denied (Capabilities insufficient)",
    ]


def test_write_file_in_a_mutable_preopen(io_dir: Path, sandbox: Path) -> None:
    run = run_wasi(
        "write_file",
        ["/sandbox/sub/new.txt", "written by wasm"],
        io_dir=io_dir,
        preopens=[(sandbox, "/sandbox", True)],
    )
    assert (run.code, run.err) == (0, "")
    assert (sandbox / "sub" / "new.txt").read_text() == "written by wasm"


@pytest.mark.parametrize("target", ["new.txt", "data.txt"])
def test_write_file_fails_in_a_read_only_preopen(io_dir: Path, sandbox: Path, target: str) -> None:
    before = sorted(p.name for p in sandbox.iterdir())
    run = run_wasi(
        "write_file",
        [f"/sandbox/{target}", "overwritten"],
        io_dir=io_dir,
        preopens=[(sandbox, "/sandbox", False)],  # fs_mutable=False: the only read-only knob
    )
    assert (run.code, run.err) == (3, "error: Operation not permitted\n")
    assert sorted(p.name for p in sandbox.iterdir()) == before
    assert (sandbox / "data.txt").read_text() == "inside the sandbox\n"


def test_write_file_cannot_write_through_a_symlink_out(io_dir: Path, sandbox: Path) -> None:
    run = run_wasi(
        "write_file",
        ["/sandbox/link_out", "pwned"],
        io_dir=io_dir,
        preopens=[(sandbox, "/sandbox", True)],
    )
    assert (run.code, run.err) == (3, "error: Operation not permitted\n")
    assert (sandbox.parent / "secret").read_text() == SECRET


@pytest.mark.parametrize("code", [0, 1, 7, 125])
def test_exit_code(io_dir: Path, code: int) -> None:
    run = run_wasi("exit_code", [str(code)], io_dir=io_dir)
    assert (run.code, run.trap) == (code, None)


@pytest.mark.parametrize("status", ["126", "255", "-1"])
def test_exit_status_outside_0_to_125_is_not_an_exit_trap(io_dir: Path, status: str) -> None:
    with pytest.raises(wasmtime.WasmtimeError, match=r"invalid exit status") as info:
        run_wasi("exit_code", [status], io_dir=io_dir)
    assert not isinstance(info.value, wasmtime.ExitTrap)


def test_exit_code_without_args_aborts_with_a_trap(io_dir: Path) -> None:
    run = run_wasi("exit_code", io_dir=io_dir)
    assert run.code is None
    assert isinstance(run.trap, wasmtime.Trap)
    assert not isinstance(run.trap, wasmtime.WasmtimeError | wasmtime.ExitTrap)
    assert run.trap.trap_code == wasmtime.TrapCode.UNREACHABLE
    assert [f.func_name for f in run.trap.frames][:2] == ["abort", "main"]  # name section kept


def test_stdin_echo(io_dir: Path, tmp_path: Path) -> None:
    text = "Hello, WASI stdin!\n" * 500  # > 4 KiB: several reads
    (tmp_path / "in.txt").write_text(text)
    run = run_wasi("stdin_echo", io_dir=io_dir, stdin=tmp_path / "in.txt")
    assert run.code == 0
    assert run.out == text.upper()
    assert run.err == f"read {len(text)} bytes\n"


def test_stdin_defaults_to_empty_not_inherited(io_dir: Path) -> None:
    run = run_wasi("stdin_echo", io_dir=io_dir)
    assert (run.code, run.out, run.err) == (0, "", "read 0 bytes\n")


def test_custom_stdout_and_stderr_callables() -> None:
    """wasmtime-py 50 has ``stdout_custom`` / ``stderr_custom``: bytes per write."""
    out: list[bytes] = []
    err: list[bytes] = []
    config = wasmtime.WasiConfig()
    config.argv = ["cat", "/nowhere"]
    config.stdout_custom = out.append
    config.stderr_custom = err.append
    store = wasmtime.Store(ENGINE)
    store.set_wasi(config)
    linker = wasmtime.Linker(ENGINE)
    linker.define_wasi()
    start = linker.instantiate(store, module("cat")).exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    with pytest.raises(wasmtime.ExitTrap) as info:
        start(store)
    assert info.value.code == 2
    assert out == []
    assert b"".join(err) == b"error: Capabilities insufficient\n"


def test_wasi_config_is_consumed_by_set_wasi() -> None:
    config = wasmtime.WasiConfig()
    wasmtime.Store(ENGINE).set_wasi(config)
    with pytest.raises(ValueError, match="closed"):
        config.argv = ["again"]
