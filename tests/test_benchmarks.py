"""Smoke test of the benchmark suite: it runs, every scenario reports, the JSON parses.

Behaviour only: no timing is asserted. Extism and pywasm are optional; without them
their rows say the host is unavailable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import main  # noqa: E402
from benchmarks.scenarios import scenarios  # noqa: E402
from benchmarks.workloads import Sizes  # noqa: E402


def run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    assert main(["--quick", "--json", str(out), *args]) == 0
    data: dict = json.loads(out.read_text(encoding="utf-8"))
    return data


def test_quick_run_reports_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = run(tmp_path)
    printed = capsys.readouterr().out
    expected = {c.id for sc in scenarios(Sizes.tiny(), lambda: 0) for c in sc.cases}
    results = data["results"]
    assert {r["case"] for r in results} == expected
    hosts = {h["name"] for h in data["hosts"]}
    assert hosts == {"vudo", "wasmtime", "extism", "pywasm", "wasmer"}
    for case in expected:
        rows = [r for r in results if r["case"] == case]
        assert {r["host"] for r in rows} == hosts, case
        # vudo itself is measured in every case, with real samples
        vudo = [r for r in rows if r["host"] == "vudo"]
        assert vudo and all(r["samples"] and r["na"] is None for r in vudo), case
        for r in rows:
            assert r["samples"] or r["na"], (case, r["host"])
            assert not (r["na"] or "").startswith("error"), (case, r["host"], r["na"])
    wasmer = next(h for h in data["hosts"] if h["name"] == "wasmer")
    assert not wasmer["available"] and wasmer["reason"]
    assert {t["status"] for t in data["targets"]} <= {"PASS", "MISS", "n/a"}
    assert len(data["targets"]) >= 11
    assert data["machine"]["python"] and data["machine"]["cpu"]
    for heading in ("Hosts", "Targets", "1. Call overhead", "9. Séance"):
        assert heading in printed


def test_missing_optional_hosts_are_reported_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import extism` / `import pywasm` raise ImportError
    monkeypatch.setitem(sys.modules, "extism", None)
    monkeypatch.setitem(sys.modules, "pywasm", None)
    data = run(tmp_path, "--scenario", "calls", "--scenario", "memory.point")
    hosts = {h["name"]: h for h in data["hosts"]}
    for name in ("extism", "pywasm"):
        assert not hosts[name]["available"]
        assert "ModuleNotFoundError" in hosts[name]["reason"]
    rows = data["results"]
    assert {r["case"] for r in rows} == {"calls.noop", "calls.add", "memory.point"}
    for r in rows:
        if r["host"] in ("extism", "pywasm", "wasmer"):
            assert r["na"] and not r["samples"]
        else:
            assert r["samples"]


def test_scenario_filter_and_bad_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--scenario", "no-such-scenario"]) == 2
    assert "no scenario matches" in capsys.readouterr().err


def test_control_benchmark_reports_its_rows(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.control import main as control

    assert control(["--repeat", "1", "--calls", "1000"]) == 0
    out = capsys.readouterr().out
    for row in ("vudo (interrupted", "wasmtime-py via run_in_executor", "stack check / call_sync"):
        assert row in out
