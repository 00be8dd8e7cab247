"""The package stays ruff- and mypy --strict-clean (both come with the test extras)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    pytest.importorskip("ruff")
    paths = [
        p
        for p in ("vudo_runtime", "tests", "benchmarks", "examples", "codegen")
        if (ROOT / p).exists()
    ]
    result = _run(sys.executable, "-m", "ruff", "check", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean() -> None:
    pytest.importorskip("mypy")
    result = _run(sys.executable, "-m", "mypy", "--strict", "vudo_runtime")
    assert result.returncode == 0, result.stdout + result.stderr
