"""The `vudo` command line: run and inspect, exit codes 0 (ok), 1 (trap), 2 (usage)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CALCULATOR, COUNTER, HELLO, LOOPS, SPIRITS

from vudo_runtime.cache import clear_memory_cache
from vudo_runtime.cli import main

CALC = str(CALCULATOR)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- run: results -------------------------------------------------------------------------


def test_run_prints_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "run", CALC, "add", "40", "2") == (0, "42\n", "")


def test_run_hello_world(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", str(HELLO), "greet")
    assert code == 0
    assert "Hello, World!" in out
    assert err == ""


@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["divmod", "7", "2"], "3 1"),
        (["average", "1", "2.5"], "1.75"),
        (["average", "inf", "1"], "inf"),
        (["sub", "-5", "2"], "-7"),
        (["add", "0x10", "0b1"], "17"),
        (["add", "1_000", "1"], "1001"),
        (["add", "007", "010"], "17"),
        (["add", "18446744073709551615", "2"], "1"),
        (["is_even", "true"], "0"),
        (["is_even", "FALSE"], "1"),
        (["neg", "-9223372036854775808"], "-9223372036854775808"),
    ],
)
def test_run_parses_arguments_by_signature(
    capsys: pytest.CaptureFixture[str], argv: list[str], printed: str
) -> None:
    assert run(capsys, "run", CALC, *argv) == (0, printed + "\n", "")


def test_run_a_function_without_result_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "run", CALC, "noop") == (0, "", "")


def test_run_wat_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "run", str(SPIRITS / "calculator.wat"), "mul", "6", "7") == (0, "42\n", "")


def test_run_gene_method(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", str(COUNTER), "new_Counter", "5")
    assert code == 0
    assert int(out) >= 1024


@pytest.mark.parametrize("entry", ["main", "_start"])
def test_run_without_a_function_calls_main(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, entry: str
) -> None:
    path = tmp_path / "app.wat"
    path.write_text(f'(module (func (export "{entry}") (result i64) (i64.const 7)))')
    assert run(capsys, "run", str(path)) == (0, "7\n", "")


# ---- run: failures -------------------------------------------------------------------------


def test_run_trap_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", CALC, "div", "1", "0")
    assert code == 1
    assert out == ""
    assert "calculator.div" in err
    assert "divide by zero" in err


@pytest.mark.parametrize(
    ("fn", "text"), [("oob_read", "out of bounds"), ("unreachable", "unreachable")]
)
def test_run_other_traps_exit_1(capsys: pytest.CaptureFixture[str], fn: str, text: str) -> None:
    code, _, err = run(capsys, "run", str(LOOPS), fn)
    assert code == 1
    assert text in err


def test_run_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", "nope.wasm")
    assert code == 2
    assert out == ""
    assert "nope.wasm" in err
    assert "not found" in err


def test_run_not_a_module_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "junk.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\xff\xff")
    code, _, err = run(capsys, "run", str(path), "f")
    assert code == 2
    assert "not a valid WebAssembly module" in err


def test_run_unmet_imports_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "needy.wat"
    path.write_text('(module (import "foo" "bar" (func (param i32))) (func (export "f")))')
    code, _, err = run(capsys, "run", str(path), "f")
    assert code == 2
    assert "foo.bar: (i32) -> ()" in err


def test_run_without_function_or_main_lists_functions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", CALC)
    assert code == 2
    assert out == ""
    assert "no main or _start" in err
    assert "add(i64, i64) -> (i64)" in err
    assert "divmod(i64, i64) -> (i64, i64)" in err
    assert "noop() -> ()" in err


def test_run_unknown_function_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", CALC, "addd", "1", "2")
    assert code == 2
    assert "'addd'" in err
    assert "add, sub" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "x", "2"], "argument 1 of add must be i64, got 'x'"),
        (["add", "1", "2.5"], "argument 2 of add must be i64"),
        (["average", "1", "true"], "argument 2 of average must be f64"),
        (["add", "99999999999999999999999", "1"], "out of range"),
    ],
)
def test_run_unparsable_argument_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "run", CALC, *argv)
    assert code == 2
    assert out == ""
    assert message in err


@pytest.mark.parametrize("args", [["1"], ["1", "2", "3"], []])
def test_run_wrong_argument_count_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = run(capsys, "run", CALC, "add", *args)
    assert code == 2
    assert f"takes 2 argument(s), got {len(args)}" in err


def test_run_timeout_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    code, _, err = run(capsys, "run", "--timeout", "0.1", str(LOOPS), "spin")
    assert time.perf_counter() - start < 1.0
    assert code == 1
    assert "timed out" in err
    assert "loops.spin" in err


@pytest.mark.parametrize("timeout", ["0", "-1", "nan"])
def test_run_bad_timeout_exits_2(capsys: pytest.CaptureFixture[str], timeout: str) -> None:
    code, _, err = run(capsys, "run", "--timeout", timeout, CALC, "add", "1", "2")
    assert code == 2
    assert "timeout" in err


def test_run_fuel(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "run", "--fuel", "1000", str(LOOPS), "spin")
    assert code == 1
    assert "fuel" in err
    assert run(capsys, "run", "--fuel", "100000", str(LOOPS), "sum_to", "10") == (0, "55\n", "")
    code, _, err = run(capsys, "run", "--fuel", "-5", CALC, "add", "1", "2")
    assert code == 2
    assert "fuel" in err


def test_run_no_cache_writes_no_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("VUDO_CACHE_DIR", str(cache_dir))
    clear_memory_cache()
    assert run(capsys, "run", "--no-cache", CALC, "add", "40", "2") == (0, "42\n", "")
    assert not list(cache_dir.glob("*.cwasm"))
    clear_memory_cache()
    assert run(capsys, "run", CALC, "add", "40", "2") == (0, "42\n", "")
    assert len(list(cache_dir.glob("*.cwasm"))) == 1


def test_usage_errors_from_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["run"], ["frobnicate"], ["run", CALC, "add", "--fuel", "x"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


# ---- inspect --------------------------------------------------------------------------------


def test_inspect_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", str(COUNTER))
    assert code == 0
    assert err == ""
    assert out.startswith("counter (")
    assert "imports: none" in out
    assert "memory: memory 1..256 pages" in out
    assert "Counter.add: func (i32, i64) -> (i64)" in out
    assert "gene Counter: new_Counter; methods: increment, get_value, add" in out
    assert "functions: add_numbers" in out


def test_inspect_text_with_imports(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", str(HELLO))
    assert code == 0
    assert "loa.vudo_print: func (i32, i32) -> ()" in out
    assert "host imports: loa.vudo_print" in out


def test_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--json", str(COUNTER))
    assert code == 0
    info = json.loads(out)
    assert info["spirit"] == "counter"
    assert info["size"] == COUNTER.stat().st_size
    assert info["imports"] == []
    assert info["exports"]["memory"] == {"kind": "memory", "min_pages": 1, "max_pages": 256}
    assert info["exports"]["new_Counter"] == {"kind": "func", "params": ["i64"], "results": ["i32"]}
    # the exports the runtime adds for instance resets are not the module's own
    assert not [name for name in info["exports"] if name.startswith("vudo:state:")]
    dol = info["dol"]
    assert dol["genes"] == {
        "Counter": {"constructor": "new_Counter", "methods": ["increment", "get_value", "add"]}
    }
    assert dol["functions"] == ["add_numbers"]
    assert dol["host_imports"] == []


def test_inspect_json_of_calculator_and_hello(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "inspect", "--json", CALC)
    calc = json.loads(out)
    assert calc["dol"]["genes"] == {}
    assert calc["dol"]["memory"] is None
    assert calc["exports"]["divmod"]["results"] == ["i64", "i64"]
    _, out, _ = run(capsys, "inspect", "--json", str(HELLO))
    hello = json.loads(out)
    assert hello["imports"] == [
        {"module": "loa", "name": "vudo_print", "kind": "func", "params": ["i32", "i32"],
         "results": []}
    ]  # fmt: skip
    assert hello["dol"]["host_imports"] == ["loa.vudo_print"]


def test_inspect_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "nope.wasm")
    assert code == 2
    assert out == ""
    assert "nope.wasm" in err


# ---- the installed command ------------------------------------------------------------------


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vudo_runtime.cli", "run", CALC, "div", "1", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "divide by zero" in proc.stderr


def test_console_script() -> None:
    script = Path(sys.executable).parent / "vudo"
    if not script.exists():
        pytest.skip("the vudo console script is not installed next to this interpreter")
    proc = subprocess.run(
        [str(script), "run", CALC, "add", "40", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "42\n", "")


def test_python_dash_m_vudo_runtime_is_the_vudo_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vudo_runtime", "run", str(CALCULATOR), "add", "40", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr


# ---- run: strings, --returns, --json ----------------------------------------------------------

STRINGS = str(SPIRITS / "strings.wasm")


@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["str_len", "hello"], "5"),  # text for an i32 parameter: a guest string
        (["str_len", "héllo wörld"], "13"),
        (["str_len", "str:42"], "2"),  # str: forces a string, even for digits
        (["str_len", "str:"], "0"),
        (["upper", "héllo", "--returns", "str"], "HéLLO"),
        (["echo", "str:-5", "--returns", "str"], "-5"),
        (["greeting", "--returns", "str"], "hello"),
        (["first_byte", "A"], "65"),
    ],
)
def test_run_strings(capsys: pytest.CaptureFixture[str], argv: list[str], printed: str) -> None:
    assert run(capsys, "run", STRINGS, *argv) == (0, printed + "\n", "")


def test_run_returns_bytes_as_is() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vudo_runtime",
            "run",
            STRINGS,
            "invalid_utf8",
            "--returns",
            "bytes",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"\xff\xfe", b"")


def test_run_returns_str_of_invalid_utf8_says_what_to_do(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "run", STRINGS, "invalid_utf8", "--returns", "str")
    assert (code, out) == (2, "")
    assert "invalid UTF-8" in err
    assert "--returns bytes" in err
    assert "errors=" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "1", "2", "--returns", "str"], "--returns str needs add to return a pointer"),
        (["add", "1", "2", "--returns", "f64"], "--returns f64 needs add to return one f64"),
        (["noop", "--returns", "i32"], "it is () -> ()"),
    ],
)
def test_run_returns_checks_the_signature(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "run", CALC, *argv)
    assert (code, out) == (2, "")
    assert message in err


def test_run_returns_a_matching_number_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "run", CALC, "add", "40", "2", "--returns", "i64") == (0, "42\n", "")
    assert run(capsys, "run", CALC, "is_even", "4", "--returns", "i32") == (0, "1\n", "")


def test_run_string_argument_needs_a_memory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "nomem.wat"
    path.write_text('(module (func (export "f") (param i32) (result i32) (local.get 0)))')
    assert run(capsys, "run", str(path), "f", "-7") == (0, "-7\n", "")
    code, _, err = run(capsys, "run", str(path), "f", "abc")
    assert code == 2
    assert "argument 1 of f must be i32, got 'abc'" in err
    assert "exports no memory" in err


@pytest.mark.parametrize(
    ("spirit", "argv", "result"),
    [
        (CALC, ["add", "40", "2"], 42),
        (CALC, ["divmod", "7", "2"], [3, 1]),
        (CALC, ["average", "1", "2"], 1.5),
        (CALC, ["average", "-inf", "1"], "-inf"),  # JSON has no infinities: a string
        (CALC, ["average", "nan", "1"], "nan"),
        (CALC, ["noop"], None),
        (STRINGS, ["upper", "abc", "--returns", "str"], "ABC"),
        (STRINGS, ["invalid_utf8", "--returns", "bytes"], "//4="),  # bytes: base64
    ],
)
def test_run_json(
    capsys: pytest.CaptureFixture[str], spirit: str, argv: list[str], result: object
) -> None:
    code, out, err = run(capsys, "run", "--json", spirit, *argv)
    assert (code, err) == (0, "")
    assert json.loads(out) == {"result": result}
    assert out.count("\n") == 1


def test_run_json_sends_the_guest_output_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "run", str(HELLO), "greet", "--json")
    assert (code, json.loads(out)) == (0, {"result": None})
    assert "Hello, World!" in err


# ---- run: arguments that look like options ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["add", "-5", "3"], "-2"),
        (["add", "-0x10", "-0b1"], "-17"),
        (["neg", "-9"], "9"),
        (["average", "-inf", "1"], "-inf"),
        (["average", "-1e5", "-1E5"], "-100000.0"),
        (["average", "nan", "-nan"], "nan"),
        (["average", "-.5", "-0.5"], "-0.5"),
        (["--timeout", "5", "add", "-1", "-1"], "-2"),  # options anywhere: before...
        (["add", "-1", "--fuel=100000", "-1"], "-2"),  # ...between the arguments...
        (["add", "-1", "-1", "--timeout", "5"], "-2"),  # ...and after them
        (["--", "add", "-1", "-1"], "-2"),
    ],
)
def test_run_negative_numbers_need_no_double_dash(
    capsys: pytest.CaptureFixture[str], argv: list[str], printed: str
) -> None:
    assert run(capsys, "run", CALC, *argv) == (0, printed + "\n", "")


def test_run_an_unknown_option_is_an_argument_with_a_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "run", CALC, "add", "1", "2", "--timout", "5")
    assert code == 2
    assert "takes 2 argument(s), got 4" in err
    assert "--timout: not an option of vudo run" in err
    code, _, err = run(capsys, "run", CALC, "add", "1", "--verbose")
    assert code == 2
    assert "must be i64, got '--verbose'" in err


def test_split_run_argv() -> None:
    from vudo_runtime.cli import _build, split_run_argv

    known = _build()[1]._option_string_actions
    tokens = ["a.wasm", "--timeout", "-1", "-v", "--json", "--dir=x", "-5", "--", "--json"]
    assert split_run_argv(tokens, known) == (
        ["--timeout=-1", "--json", "--dir=x"],
        ["a.wasm", "-v", "-5", "--json"],
    )


def test_run_max_memory(capsys: pytest.CaptureFixture[str]) -> None:
    loops = str(LOOPS)
    assert run(capsys, "run", loops, "grow_memory", "10", "--max-memory", "128KiB") == (
        0,
        "-1\n",
        "",
    )
    assert run(capsys, "run", loops, "grow_memory", "1", "--max-memory", "1 MiB") == (0, "1\n", "")
    with pytest.raises(SystemExit) as info:
        main(["run", loops, "grow_memory", "1", "--max-memory", "lots"])
    assert info.value.code == 2
    assert "--max-memory" in capsys.readouterr().err


# ---- messages name flags, not Python keywords ---------------------------------------------


def test_messages_name_the_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "run", "--timeout", "0.05", str(LOOPS), "spin")
    assert code == 1
    assert "raise --timeout" in err and "timeout=" not in err
    assert err.count("\n") == 1  # one line
    code, _, err = run(capsys, "run", "--fuel", "1000", str(LOOPS), "spin")
    assert code == 1
    assert "raise --fuel" in err and "fuel=" not in err
    assert "wasm backtrace" not in err and "--backtrace" in err
    code, _, err = run(capsys, "run", "--fuel", "1000", "--backtrace", str(LOOPS), "spin")
    assert "wasm backtrace:" in err
    code, _, err = run(capsys, "run", "--timeout", "0", CALC, "add", "1", "2")
    assert (code, err) == (2, "vudo: --timeout must be a positive number of seconds, got 0.0\n")
    code, _, err = run(capsys, "run", "--fuel", "-5", CALC, "add", "1", "2")
    assert (code, err) == (2, "vudo: --fuel must be a non-negative integer, got -5\n")
    path = tmp_path / "needy.wat"
    path.write_text('(module (import "foo" "bar" (func (param i32))) (func (export "f")))')
    code, _, err = run(capsys, "run", str(path), "f")
    assert code == 2
    assert "--loa MODULE:ATTR" in err and "loas=" not in err and "LoaRegistry" not in err


def test_display_rewrites_grants() -> None:
    from vudo_runtime.cli import Context, display

    text = "needs it:\nGrant the Loa(s) 'state': loas=['core', 'messaging', 'state']"
    assert display(text) == "needs it:\nGrant the Loa(s) 'state': --loa state"
    assert display(text, Context(manifest=True)).endswith(
        "Grant the Loa(s) 'state': list them under [grants] loas in the manifest"
    )
    assert display("raise timeout= or fuel=") == "raise --timeout or --fuel"


# ---- --version, --loa ------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import vudo_runtime
    from vudo_runtime.engine import WASMTIME_VERSION

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"vudo-runtime {vudo_runtime.__version__} (wasmtime {WASMTIME_VERSION}")


VOICE_WAT = """
(module
  (import "loa" "shout" (func $shout (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "quiet")
  (func (export "go") (result i32) (call $shout (i32.const 16) (i32.const 5))))
"""

VOICE_MODULE = """
from vudo_runtime import Loa, host_function

@host_function
def shout(text: str) -> str:
    return text.upper()

LOA = Loa(name="voice", capabilities=["shout"], provides=lambda ctx: {"shout": shout})

def make():
    return LOA

NOT_A_LOA = 42
"""


@pytest.fixture
def voice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Spirit importing `loa.shout`, and the module `cli_voice` (in the working
    directory, which is not on sys.path) holding a Loa that provides it."""
    (tmp_path / "cli_voice.py").write_text(VOICE_MODULE)
    (tmp_path / "voice.wat").write_text(VOICE_WAT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cli_voice", raising=False)
    return tmp_path / "voice.wat"


@pytest.mark.parametrize("attr", ["LOA", "make"])
def test_loa_from_the_working_directory(
    capsys: pytest.CaptureFixture[str], voice: Path, attr: str
) -> None:
    argv = ["run", str(voice), "go", "--loa", f"cli_voice:{attr}", "--returns", "str"]
    assert run(capsys, *argv) == (0, "QUIET\n", "")
    sys.modules.pop("cli_voice", None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cli_voice:NOT_A_LOA", "--loa cli_voice:NOT_A_LOA: NOT_A_LOA is an int, not a Loa"),
        ("cli_voice:NOPE", "module 'cli_voice' has no attribute 'NOPE'"),
        ("no_such_module_here:LOA", "cannot import module 'no_such_module_here'"),
        ("cli_voice", "--loa expects MODULE:ATTR (or a built-in Loa: core, messaging"),
        (":LOA", "--loa expects MODULE:ATTR, got ':LOA'"),
    ],
)
def test_loa_errors(
    capsys: pytest.CaptureFixture[str], voice: Path, spec: str, message: str
) -> None:
    code, out, err = run(capsys, "run", str(voice), "go", "--loa", spec)
    assert (code, out) == (2, "")
    assert message in err
    sys.modules.pop("cli_voice", None)


def test_loa_by_builtin_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "stateful.wat"
    path.write_text(
        '(module (import "loa" "vudo_state_get" (func (param i32 i32 i32 i32) (result i32)))'
        ' (memory (export "memory") 1) (func (export "f") (result i64) (i64.const 1)))'
    )
    code, _, err = run(capsys, "run", str(path), "f")
    assert code == 2
    assert "--loa state" in err
    assert run(capsys, "run", str(path), "f", "--loa", "state") == (0, "1\n", "")


def test_codegen_and_inspect_of_a_spirit_package(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    package = Path(__file__).parent / "dol" / "packages" / "cosmos"
    code, out, _ = run(capsys, "inspect", str(package))
    assert code == 0 and out.startswith("Spirit cosmos @ 0.9.0")
    code, out, _ = run(capsys, "codegen", str(package), "-o", str(tmp_path / "cosmos"))
    assert code == 0 and out.startswith("wrote ")
    init = (tmp_path / "cosmos" / "__init__.py").read_text()
    assert "SPIRIT_NAME" in init and "0.9.0" in init
    compile(init, "__init__.py", "exec")
