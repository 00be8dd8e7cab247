"""One exception tree: everything the runtime raises on purpose is a VudoError."""

from __future__ import annotations

import pytest

import vudo_runtime
from vudo_runtime import VudoError
from vudo_runtime.errors import root_cause

ERRORS = [
    getattr(vudo_runtime, name)
    for name in vudo_runtime.__all__
    if isinstance(getattr(vudo_runtime, name), type)
    and issubclass(getattr(vudo_runtime, name), BaseException)
]


def test_the_tree_has_the_expected_members() -> None:
    names = {e.__name__ for e in ERRORS}
    for expected in (
        "SpiritClosedError",
        "NoMemoryError",
        "GuestPanic",
        "CacheWarning",
        "BusTimeout",
        "SignatureError",
        "ManifestError",
        "SpiritExit",
    ):
        assert expected in names


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: e.__name__)
def test_every_exported_error_is_a_vudo_error(error: type[BaseException]) -> None:
    assert issubclass(error, VudoError)


def test_timeouts_are_timeout_errors() -> None:
    for name in ("SpiritTimeout", "BusTimeout", "PoolTimeout"):
        assert issubclass(getattr(vudo_runtime, name), TimeoutError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("", "")),
        ("wasm trap: unreachable", ("wasm trap: unreachable", "wasm trap: unreachable")),
        (
            "failed to parse WebAssembly module\n\nCaused by:\n    0: section\n"
            "    1: unexpected end-of-file (at offset 0x8)",
            ("failed to parse WebAssembly module", "unexpected end-of-file (at offset 0x8)"),
        ),
        (
            "error while executing at wasm backtrace:\n    0:   0x2a - f\n\n"
            "Caused by:\n    wasm trap: integer divide by zero",
            ("error while executing at wasm backtrace:", "wasm trap: integer divide by zero"),
        ),
    ],
)
def test_root_cause_reads_wasmtimes_error_chains(text: str, expected: tuple[str, str]) -> None:
    assert root_cause(text) == expected
