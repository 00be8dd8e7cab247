"""`vudo run` of WASI programs (tests/wasi/*.c), manifests, and keygen / sign / verify.

Exit codes matter here, so the runs that check them are real processes; the others call
``main`` in-process and read the program's output from file descriptor 1 (``capfd``):
a WASI program's stdout is vudo's own, written by wasmtime, not through ``sys.stdout``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from conftest import CALCULATOR, HELLO, LOOPS

from vudo_runtime.cli import main
from vudo_runtime.signing import key_id

WASI = Path(__file__).parent / "wasi"


def wasi(name: str) -> str:
    return str(WASI / f"{name}.wasm")


def run(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def vudo(
    *argv: str, input: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vudo_runtime", *argv],
        capture_output=True,
        text=True,
        input=input,
        cwd=cwd,
        timeout=60,
        check=False,
    )


# ---- WASI programs ------------------------------------------------------------------------


def test_hello(capfd: pytest.CaptureFixture[str]) -> None:
    assert run(capfd, "run", wasi("hello")) == (0, "hello from wasi\n", "")


def test_args_and_env(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "from the host")  # never seen by the guest
    code, out, _ = run(capfd, "run", wasi("args_env"), "one", "two words", "-v", "-5", "--x")
    assert code == 6  # argc
    assert out.splitlines() == [
        "argv[0]=args_env",  # the file's stem
        "argv[1]=one",
        "argv[2]=two words",
        "argv[3]=-v",  # not vudo's options: the program's arguments
        "argv[4]=-5",
        "argv[5]=--x",
        "GREETING unset",
    ]
    code, out, _ = run(
        capfd, "run", wasi("args_env"), "--env", "GREETING=a=b", "--argv0", "prog", "--", "--json"
    )
    assert code == 2
    assert out.splitlines() == ["argv[0]=prog", "argv[1]=--json", "GREETING=a=b"]


def test_dir_read(capfd: pytest.CaptureFixture[str], sandbox: Path) -> None:
    argv = ["run", wasi("cat"), "--dir", f"{sandbox}::/data:ro", "/data/data.txt"]
    assert run(capfd, *argv) == (0, "inside the box\n", "")
    # HOST alone: the guest sees it under the same path
    assert run(capfd, "run", wasi("cat"), f"{sandbox}/data.txt", "--dir", str(sandbox))[0] == 0


def test_dir_read_only_refuses_writes(capfd: pytest.CaptureFixture[str], sandbox: Path) -> None:
    code, out, err = run(
        capfd, "run", wasi("write_file"), "--dir", f"{sandbox}::/data:ro", "/data/new.txt", "x"
    )
    assert (code, out) == (3, "")
    assert err.startswith("error:")
    assert not (sandbox / "new.txt").exists()
    argv = ["run", wasi("write_file"), "--dir", f"{sandbox}::/data", "/data/new.txt", "written"]
    assert run(capfd, *argv) == (0, "", "")
    assert (sandbox / "new.txt").read_text() == "written"


def test_escape_attempts_are_denied(capfd: pytest.CaptureFixture[str], sandbox: Path) -> None:
    probes = [
        "/data/data.txt",
        "/data/../secret.txt",
        "/data/abs_link",
        "/etc/passwd",
        "secret.txt",
    ]
    code, out, _ = run(capfd, "run", wasi("escape"), "--dir", f"{sandbox}::/data", *probes)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "/data/data.txt: ok"
    assert all(": denied (" in line for line in lines[1:5]), lines
    assert "secret" not in lines[-1]
    code, out, err = run(capfd, "run", wasi("cat"), "/etc/passwd")  # no --dir: nothing
    assert (code, out) == (2, "")
    assert err.startswith("error:")


@pytest.mark.parametrize("status", [0, 7, 125])
def test_the_exit_status_is_vudos(status: int) -> None:
    done = vudo("run", wasi("exit_code"), str(status))
    assert (done.returncode, done.stdout, done.stderr) == (status, "", "")


def test_a_trap_is_one_line_and_exit_1() -> None:
    done = vudo("run", wasi("exit_code"))  # abort(): a trap, not an exit
    assert done.returncode == 1
    assert done.stderr.startswith("vudo: Spirit call exit_code._start trapped: ")
    assert "unreachable" in done.stderr
    assert done.stderr.count("\n") == 1
    done = vudo("run", wasi("exit_code"), "--backtrace")
    assert done.returncode == 1
    assert "wasm backtrace:" in done.stderr and "abort" in done.stderr


def test_stdin_is_inherited() -> None:
    done = vudo("run", wasi("stdin_echo"), input="quiet words")
    assert (done.returncode, done.stdout, done.stderr) == (0, "QUIET WORDS", "read 11 bytes\n")


def test_json_exit_code_alone_on_stdout() -> None:
    done = vudo("run", "--json", wasi("exit_code"), "7")
    assert (done.returncode, json.loads(done.stdout)) == (7, {"exit_code": 7})
    done = vudo("run", wasi("hello"), "--json")
    assert (done.returncode, done.stdout) == (0, '{"exit_code": 0}\n')
    assert done.stderr == "hello from wasi\n"  # the program's stdout, moved aside


WASI_WAT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 4)))
  (func (export "twice") (param i64) (result i64) (i64.mul (local.get 0) (i64.const 2)))
  (func (export "quit") (param i32) (call $exit (local.get 0))))
"""


def test_invoke_an_export_of_a_wasi_module(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "tool.wasm"
    path.write_bytes(wasmtime.wat2wasm(WASI_WAT))
    assert run(capfd, "run", str(path), "twice", "21") == (4, "", "")  # twice: argv[1]
    assert run(capfd, "run", str(path), "--invoke", "twice", "-21") == (0, "-42\n", "")
    assert run(capfd, "run", str(path), "--invoke", "quit", "9") == (9, "", "")
    code, out, _ = run(capfd, "run", str(path), "--invoke", "quit", "9", "--json")
    assert (code, json.loads(out)) == (9, {"exit_code": 9})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(CALCULATOR), "add", "1", "2", "--dir", "."], "--dir is for WASI programs"),
        ([str(CALCULATOR), "add", "1", "2", "--env", "A=1"], "--env is for WASI programs"),
        ([wasi("cat"), "--dir", "/no/such/dir", "x"], "/no/such/dir is not a directory"),
        ([wasi("cat"), "--dir", "::/data", "x"], "expected HOST, HOST::GUEST"),
        ([wasi("args_env"), "--env", "NOVALUE"], "--env 'NOVALUE': expected NAME=VALUE"),
        ([wasi("hello"), "--returns", "str"], "--returns applies to a function call"),
    ],
)
def test_wasi_usage_errors(
    capfd: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capfd, "run", *argv)
    assert (code, out) == (2, "")
    assert message in err


# ---- manifests ----------------------------------------------------------------------------


def write_manifest(path: Path, module: Path, extra: str = "", name: str = "app") -> Path:
    sha = hashlib.sha256(module.read_bytes()).hexdigest()
    path.write_text(
        f'[spirit]\nname = "{name}"\nversion = "1.2.3"\nsource = "{module}"\n'
        f'sha256 = "{sha}"\n{extra}'
    )
    return path


def test_manifest_wasi_command(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = write_manifest(
        tmp_path / "spirit.toml",
        WASI / "args_env.wasm",
        '[grants]\nloas = ["wasi"]\n[wasi]\nargs = ["from-manifest"]\n'
        'env = { GREETING = "manifest" }\n',
    )
    code, out, _ = run(capfd, "run", str(toml), "-x")
    assert code == 3
    assert out.splitlines() == [
        "argv[0]=app",  # the manifest's name
        "argv[1]=from-manifest",  # its args, then the command line's
        "argv[2]=-x",
        "GREETING=manifest",
    ]


def test_manifest_dirs_and_no_widening(capfd: pytest.CaptureFixture[str], sandbox: Path) -> None:
    toml = write_manifest(
        sandbox.parent / "cat.toml",
        WASI / "cat.wasm",
        '[grants]\nloas = ["wasi"]\n[wasi]\ndirs = [{ host = "box", guest = "/data" }]\n',
    )
    assert run(capfd, "run", str(toml), "/data/data.txt") == (0, "inside the box\n", "")
    code, _, err = run(capfd, "run", str(toml), "--dir", str(sandbox.parent), "/x")
    assert code == 2
    assert "--dir cannot add directories to a manifest's" in err


def test_manifest_functions_and_limits(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    calc = write_manifest(tmp_path / "calc.toml", CALCULATOR, '[grants]\nloas = ["core"]\n')
    assert run(capfd, "run", str(calc), "add", "-2", "5") == (0, "3\n", "")
    loops = write_manifest(tmp_path / "loops.toml", LOOPS, "[limits]\ntimeout = 0.05\n")
    code, _, err = run(capfd, "run", str(loops), "spin")
    assert code == 1
    assert "timed out after 0.05s" in err and "raise --timeout" in err


def test_manifest_without_the_wasi_grant(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = write_manifest(tmp_path / "hello.toml", WASI / "hello.wasm")
    code, out, err = run(capfd, "run", str(toml))
    assert (code, out) == (2, "")
    assert "Grant the Loa(s) 'wasi': list them under [grants] loas in the manifest" in err
    assert "loas=" not in err


def test_manifest_errors_exit_2(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text('[spirit]\nname = "x"\nsource = "x.wasm"\nsha256 = "00"\n')
    code, _, err = run(capfd, "run", str(toml))
    assert code == 2
    assert "[spirit] sha256: must be 64 hex digits" in err
    code, _, err = run(capfd, "run", str(tmp_path / "missing.toml"))
    assert (code, "manifest not found" in err) == (2, True)


def test_inspect_manifest(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    toml = write_manifest(
        tmp_path / "spirit.toml",
        WASI / "cat.wasm",
        '[grants]\nloas = ["wasi"]\n[limits]\nfuel = 1000\nmax_memory = "16 MiB"\n'
        '[wasi]\ndirs = [{ host = ".", guest = "/data", mode = "rw" }]\nargs = ["/data/x"]\n'
        '[config]\ncolor = "blue"\n',
    )
    code, out, _ = run(capfd, "inspect", str(toml))
    assert code == 0
    assert f"manifest {toml}" in out
    assert "  name: app 1.2.3" in out
    assert "  grants: wasi" in out
    assert "  limits: fuel 1000, max_memory 16777216" in out
    assert f"  wasi dirs: {tmp_path} -> /data (rw)" in out
    assert "  config: color = 'blue'" in out
    assert "wasi_snapshot_preview1.fd_read" in out
    assert "WASI: preview 1, a command" in out
    assert "signature: none" in out
    code, out, _ = run(capfd, "inspect", "--json", str(toml))
    info = json.loads(out)
    assert info["manifest"]["name"] == "app"
    assert info["manifest"]["wasi"]["args"] == ["/data/x"]
    assert info["manifest"]["limits"] == {"timeout": None, "fuel": 1000, "max_memory": 16 << 20}
    assert info["wasi"] == {"imports": True, "command": True}
    assert "_start" in info["exports"]


# ---- keygen, sign, verify, run --trust ---------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Path:
    """alice.key/.pub and bob.key/.pub in tmp_path; returns tmp_path."""
    for name in ("alice", "bob"):
        assert main(["keygen", str(tmp_path / name)]) == 0
    capfd.readouterr()
    return tmp_path


def test_keygen(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    stem = tmp_path / "carol"
    code, out, _ = run(capfd, "keygen", str(stem))
    assert code == 0
    private, public = tmp_path / "carol.key", tmp_path / "carol.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert f"key id {key_id(public)}" in out
    before = private.read_bytes()
    code, _, err = run(capfd, "keygen", str(stem))
    assert code == 2
    assert "refusing to overwrite" in err and "--force" in err and "overwrite=" not in err
    assert private.read_bytes() == before
    assert run(capfd, "keygen", str(stem), "--force")[0] == 0
    assert private.read_bytes() != before


def test_sign_verify_run_round_trip(capfd: pytest.CaptureFixture[str], keys: Path) -> None:
    spirit = keys / "calc.wasm"
    spirit.write_bytes(CALCULATOR.read_bytes())
    spirit.chmod(0o640)
    alice = key_id(keys / "alice.pub")
    code, out, _ = run(capfd, "sign", str(spirit), "--key", str(keys / "alice.key"))
    assert (code, out) == (0, f"signed {spirit} with key {alice}\n")
    assert spirit.stat().st_mode & 0o777 == 0o640  # replaced in place, mode kept
    assert [p.name for p in keys.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert run(capfd, "verify", str(spirit), "--key", str(keys / "alice.pub")) == (
        0,
        f"ok: signed by {alice}\n",
        "",
    )
    both = ["--key", str(keys / "bob.pub"), "--key", str(keys / "alice.pub")]
    assert run(capfd, "verify", str(spirit), *both)[0] == 0
    trust = ["--trust", str(keys / "alice.pub")]
    assert run(capfd, "run", str(spirit), "add", "40", "2", *trust) == (0, "42\n", "")


def test_sign_to_another_file(capfd: pytest.CaptureFixture[str], keys: Path) -> None:
    out = keys / "signed.wasm"
    argv = ["sign", str(CALCULATOR), "--key", str(keys / "alice.key"), "-o", str(out)]
    assert run(capfd, *argv)[0] == 0
    assert CALCULATOR.read_bytes() in out.read_bytes()  # the section is appended
    assert run(capfd, "verify", str(out), "--key", str(keys / "alice.pub"))[0] == 0


def test_a_flipped_byte_does_not_verify(capfd: pytest.CaptureFixture[str], keys: Path) -> None:
    spirit = keys / "calc.wasm"
    original = CALCULATOR.read_bytes()
    spirit.write_bytes(original)
    assert run(capfd, "sign", str(spirit), "--key", str(keys / "alice.key"))[0] == 0
    data = bytearray(spirit.read_bytes())
    data[len(original) - 1] ^= 0x01  # inside the module, before the signature
    spirit.write_bytes(bytes(data))
    code, out, err = run(capfd, "verify", str(spirit), "--key", str(keys / "alice.pub"))
    assert (code, out) == (3, "")
    assert "does not verify: the module changed after signing" in err
    code, out, err = run(
        capfd, "run", str(spirit), "add", "1", "2", "--trust", str(keys / "alice.pub")
    )
    assert (code, out) == (3, "")
    assert "does not verify" in err


def test_a_wrong_key_does_not_verify(capfd: pytest.CaptureFixture[str], keys: Path) -> None:
    spirit = keys / "calc.wasm"
    spirit.write_bytes(CALCULATOR.read_bytes())
    assert run(capfd, "sign", str(spirit), "--key", str(keys / "alice.key"))[0] == 0
    code, out, err = run(capfd, "verify", str(spirit), "--key", str(keys / "bob.pub"))
    assert (code, out) == (3, "")
    assert f"signed by key {key_id(keys / 'alice.pub')}, which the trust policy does not" in err
    assert "with --key if you trust it" in err


def test_run_trust_refuses_an_unsigned_spirit(keys: Path) -> None:
    done = vudo("run", str(HELLO), "greet", "--trust", str(keys / "alice.pub"))
    assert (done.returncode, done.stdout) == (3, "")  # refused before it ran
    assert "is not signed" in done.stderr
    assert "vudo sign SPIRIT --key NAME.key" in done.stderr
    assert "require_signature" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", str(CALCULATOR), "--key", "alice.key"], "holds a private key"),
        (["verify", str(CALCULATOR), "--key", "nope.pub"], "--key: public key file not found"),
        (["run", str(CALCULATOR), "noop", "--trust", "nope.pub"], "--trust: public key file"),
        (["sign", str(CALCULATOR), "--key", "alice.pub"], "holds a public key"),
        (["sign", "nope.wasm", "--key", "alice.key"], "cannot read nope.wasm"),
    ],
)
def test_key_file_errors_exit_2(
    capfd: pytest.CaptureFixture[str],
    keys: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(keys)
    code, _, err = run(capfd, *argv)
    assert code == 2
    assert message in err


def test_signed_with_its_manifest(capfd: pytest.CaptureFixture[str], keys: Path) -> None:
    module = keys / "calc.wasm"
    module.write_bytes(CALCULATOR.read_bytes())
    toml = write_manifest(keys / "calc.toml", module, '[grants]\nloas = ["core"]\n')
    alice, pub = key_id(keys / "alice.pub"), str(keys / "alice.pub")
    code, out, _ = run(capfd, "sign", str(toml), "--key", str(keys / "alice.key"))
    assert (code, out) == (0, f"signed {module} with key {alice} (with its manifest {toml})\n")
    assert run(capfd, "verify", str(toml), "--key", pub) == (0, f"ok: signed by {alice}\n", "")
    argv = ["verify", str(module), "--manifest", str(toml), "--key", pub]
    assert run(capfd, *argv)[0] == 0
    assert run(capfd, "run", str(toml), "add", "1", "2", "--trust", pub) == (0, "3\n", "")
    code, _, err = run(capfd, "verify", str(module), "--key", pub)  # the manifest is missing
    assert code == 3
    assert "give it with --manifest" in err and "manifest=" not in err
    code, _, err = run(capfd, "run", str(module), "add", "1", "2", "--trust", pub)
    assert (code, "run its spirit.toml instead" in err) == (3, True)
    with toml.open("a") as f:
        f.write("[limits]\ntimeout = 100.0\n")  # the manifest changed after signing
    code, _, err = run(capfd, "verify", str(toml), "--key", pub)
    assert (code, "its manifest changed after signing" in err) == (3, True)
    code, out, err = run(capfd, "run", str(toml), "add", "1", "2", "--trust", pub)
    assert (code, out) == (3, "")


def test_sign_refuses_a_manifest_of_another_module(
    capfd: pytest.CaptureFixture[str], keys: Path
) -> None:
    toml = write_manifest(keys / "hello.toml", HELLO)
    argv = ["sign", str(CALCULATOR), "--manifest", str(toml), "--key", str(keys / "alice.key")]
    code, _, err = run(capfd, *argv)
    assert code == 2
    assert f"describes {HELLO}, not {CALCULATOR}" in err
