"""WASI as a grantable Loa: real C programs (tests/wasi/*.c, built for wasm32-wasi)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from vudo_runtime import (
    CapabilityError,
    Preopen,
    Seance,
    Spirit,
    SpiritExit,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
    WasiOptions,
)

WASI = Path(__file__).parent / "wasi"


class Output:
    """stdout and stderr of one run, collected through callables."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    @property
    def stdout(self) -> str:
        return b"".join(self.out).decode()

    @property
    def stderr(self) -> str:
        return b"".join(self.err).decode()


def run(program: str, *args: str, **wasi: Any) -> tuple[int, Output]:
    io = Output()
    options = WasiOptions(args=args, stdout=io.out.append, stderr=io.err.append, **wasi)
    spirit = Spirit.load_sync(WASI / f"{program}.wasm", loas=["wasi"], wasi=options)
    try:
        return spirit.run_sync(), io
    finally:
        spirit.close()


def test_wasi_is_not_granted_by_default() -> None:
    with pytest.raises(CapabilityError, match=r"WASI, and the Loa 'wasi' is not granted"):
        Spirit.load_sync(WASI / "hello.wasm")


def test_hello() -> None:
    status, io = run("hello")
    assert (status, io.stdout) == (0, "hello from wasi\n")


def test_args_and_env_are_only_what_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "from the host")  # never seen by the guest
    status, io = run("args_env", "one", "two words")
    assert status == 3  # argc: the program name and two arguments
    assert io.stdout.splitlines() == [
        "argv[0]=args_env",
        "argv[1]=one",
        "argv[2]=two words",
        "GREETING unset",
    ]
    _, io = run("args_env", env={"GREETING": "hi"})
    assert "GREETING=hi" in io.stdout.splitlines()
    _, io = run("args_env", env=["GREETING=a=b"])  # the CLI's NAME=VALUE form
    assert "GREETING=a=b" in io.stdout.splitlines()


def test_reads_a_file_in_a_preopened_dir(sandbox: Path) -> None:
    status, io = run("cat", "/data/data.txt", dirs=[Preopen(sandbox, "/data", readonly=True)])
    assert (status, io.stdout) == (0, "inside the box\n")


@pytest.mark.parametrize(
    "path",
    ["/data/../secret.txt", "/data/abs_link", "/data/rel_link", "/etc/passwd", "secret.txt"],
)
def test_nothing_outside_the_preopened_dir_is_reachable(sandbox: Path, path: str) -> None:
    status, io = run("cat", path, dirs=[f"{sandbox}::/data:ro"])
    assert status == 2
    assert io.stdout == "" and io.stderr.startswith("error:")


def test_the_escape_probe_sees_only_its_directory(sandbox: Path) -> None:
    _, io = run(
        "escape",
        "/data/data.txt",
        "/data/../secret.txt",
        "/data/abs_link",
        "/data/rel_link",
        "/etc/passwd",
        dirs=[Preopen(sandbox, "/data")],
    )
    lines = io.stdout.splitlines()
    assert lines[0] == "/data/data.txt: ok"
    assert all("denied" in line for line in lines[1:5]), lines
    assert "secret" not in io.stdout.split("ls /:")[-1]


def test_read_only_and_read_write_directories(sandbox: Path) -> None:
    status, _ = run("write_file", "/data/new.txt", "written", dirs=[f"{sandbox}::/data:ro"])
    assert status == 3 and not (sandbox / "new.txt").exists()
    status, _ = run("write_file", "/data/new.txt", "written", dirs=[f"{sandbox}::/data"])
    assert status == 0 and (sandbox / "new.txt").read_text() == "written"


@pytest.mark.parametrize("code", [0, 1, 7, 125])
def test_the_exit_status_is_the_result(code: int) -> None:
    assert run("exit_code", str(code))[0] == code


def test_exit_from_a_plain_call_raises_spirit_exit() -> None:
    spirit = Spirit.load_sync(
        WASI / "exit_code.wasm", loas=["wasi"], wasi=WasiOptions(args=["9"], stdout=None)
    )
    with pytest.raises(SpiritExit) as info:
        spirit.call_sync("_start")
    assert info.value.status == 9 and "exited with status 9" in str(info.value)


def test_abort_is_a_trap_not_an_exit() -> None:
    with pytest.raises(SpiritTrap, match="unreachable") as info:
        run("exit_code")
    assert not isinstance(info.value, SpiritExit)


def test_stdin_from_bytes_and_from_a_file(tmp_path: Path) -> None:
    status, io = run("stdin_echo", stdin=b"quiet words")
    assert (status, io.stdout, io.stderr) == (0, "QUIET WORDS", "read 11 bytes\n")
    source = tmp_path / "in.txt"
    source.write_bytes(b"from a file")
    assert run("stdin_echo", stdin=source)[1].stdout == "FROM A FILE"
    assert run("stdin_echo")[1].stderr == "read 0 bytes\n"  # default: empty, not inherited


def test_output_to_files(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    options = WasiOptions(stdin=b"abc", stdout=out, stderr=err)
    spirit = Spirit.load_sync(WASI / "stdin_echo.wasm", loas=["wasi"], wasi=options)
    assert spirit.run_sync() == 0
    spirit.close()
    assert (out.read_text(), err.read_text()) == ("ABC", "read 3 bytes\n")


def test_a_failing_output_callable_is_an_io_error_for_the_guest() -> None:
    def broken(data: bytes) -> None:
        raise RuntimeError("no space")

    spirit = Spirit.load_sync(
        WASI / "hello.wasm", loas=["wasi"], wasi=WasiOptions(stdout=broken, stderr=None)
    )
    assert spirit.run_sync() in (0, 1)  # the guest's printf fails; the host keeps running
    spirit.close()


def test_a_reused_instance_gets_a_fresh_wasi_state() -> None:
    first_io, second_io = Output(), Output()
    first = Spirit.load_sync(
        WASI / "stdin_echo.wasm",
        loas=["wasi"],
        wasi=WasiOptions(stdin=b"first user", stdout=first_io.out.append, stderr=None),
    )
    assert first.run_sync() == 0  # returned from main: nothing a reset cannot undo
    instance = first.instance
    first.close()
    second = Spirit.load_sync(
        WASI / "stdin_echo.wasm",
        loas=["wasi"],
        wasi=WasiOptions(stdout=second_io.out.append, stderr=second_io.err.append),
    )
    assert second.instance is instance  # reused...
    assert second.run_sync() == 0
    assert (second_io.stdout, second_io.stderr) == ("", "read 0 bytes\n")  # ...fresh stdin
    assert first_io.stdout == "FIRST USER"  # and the first user's output went only to it
    second.close()


def test_bad_wasi_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SpiritLoadError, match="does not exist"):
        run("hello", dirs=[Preopen(tmp_path / "missing", "/x")])
    with pytest.raises(ValueError, match="expected HOST"):
        WasiOptions(dirs=["::/guest"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        WasiOptions(env=["NOEQUALS"])
    with pytest.raises(TypeError, match="stdin must be"):
        WasiOptions(stdin=12)  # type: ignore[arg-type]


def test_async_run_and_a_seance_member() -> None:
    async def main() -> None:
        io = Output()
        options = WasiOptions(args=["x"], stdout=io.out.append)
        spirit = await Spirit.load(WASI / "args_env.wasm", loas=["wasi"], wasi=options)
        assert await spirit.run() == 2
        async with Seance() as seance:
            member = await seance.summon(
                "prog", WASI / "hello.wasm", loas=["wasi"], wasi=WasiOptions(stdout=io.out.append)
            )
            assert await member.run() == 0
        assert io.stdout.endswith("hello from wasi\n")

    asyncio.run(main())


SPIN_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (loop br 0) (call $exit (i32.const 0))))
"""


def test_a_spinning_wasi_program_still_times_out() -> None:
    # WASI does not weaken the runtime's limits: a call into it is bounded as any other.
    spirit = Spirit.load_sync(SPIN_WAT.encode(), loas=["wasi"], timeout=0.2)
    with pytest.raises(SpiritTimeout):
        spirit.run_sync()
    spirit.close()
