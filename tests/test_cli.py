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
