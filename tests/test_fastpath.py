"""The fast call path (``wasmtime_func_call_unchecked``) and the public ``Func.__call__`` path
give the same results, the same errors for bad input and the same traps."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from conftest import CALCULATOR, I64_MAX_UNSIGNED, I64_MIN, LOOPS, TYPES_WAT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vudo_runtime import Spirit, _native

Outcome = tuple[Any, ...]

#: The largest finite f32.
F32_MAX = 3.4028234663852886e38

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Every value an i64 parameter accepts, signed and unsigned spellings, edges favoured.
i64s = st.one_of(
    st.integers(min_value=I64_MIN, max_value=I64_MAX_UNSIGNED),
    st.sampled_from([0, 1, -1, 2, I64_MIN, I64_MIN + 1, 2**63 - 1, 2**63, I64_MAX_UNSIGNED]),
)
f64s = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308]),
    st.integers(min_value=-(2**64), max_value=2**64),
)


def outcome(spirit: Spirit, fn: str, *args: Any) -> Outcome:
    """What a call did, comparable across paths (NaN results compare equal)."""
    try:
        result = spirit.call_sync(fn, *args)
    except Exception as exc:  # compared by type, message and trap code
        return ("raised", type(exc), str(exc), getattr(exc, "code", None))
    return ("returned", _comparable(result))


def _comparable(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    return (type(value).__name__, value)


@pytest.fixture
def paths() -> Iterator[tuple[Spirit, Spirit]]:
    """The calculator twice: through the fast path and through the public path."""
    fast = Spirit.load_sync(CALCULATOR)
    public = Spirit.load_sync(CALCULATOR, unchecked=False)
    yield fast, public
    fast.close()
    public.close()


@pytest.fixture
def type_paths() -> Iterator[tuple[Spirit, Spirit]]:
    fast = Spirit.load_sync(TYPES_WAT.encode(), name="types")
    public = Spirit.load_sync(TYPES_WAT.encode(), name="types", unchecked=False)
    yield fast, public
    fast.close()
    public.close()


def assert_same(paths: tuple[Spirit, Spirit], fn: str, *args: Any) -> Outcome:
    fast, public = paths
    got = outcome(fast, fn, *args)
    assert got == outcome(public, fn, *args), (fn, args)
    return got


def test_the_fast_path_is_available_here() -> None:
    assert _native.HAVE_UNCHECKED is True


def test_the_public_path_is_kept_while_a_pool_of_the_module_is_open() -> None:
    """load_sync(unchecked=False) must not be served a fast-path instance from a pool."""
    from vudo_runtime import InstancePool

    pool = InstancePool(CALCULATOR, size=2, warm=0)
    try:
        Spirit.load_sync(CALCULATOR)
        drawn = pool.stats().created
        if drawn == 0:
            pytest.skip("Spirit.load_sync does not draw from an open pool in this version")
        public = Spirit.load_sync(CALCULATOR, unchecked=False)
        assert pool.stats().created == drawn  # built apart, not taken from the pool
        assert public._unchecked is False
        assert public.call_sync("add", 40, 2) == 42
    finally:
        pool.close()


def test_both_paths_compute(paths: tuple[Spirit, Spirit]) -> None:
    for spirit in paths:
        assert spirit.call_sync("add", 40, 2) == 42
        assert spirit.call_sync("divmod", 7, 2) == (3, 1)
        assert spirit.call_sync("noop") is None
        assert spirit.call_sync("average", 1, 2) == 1.5


@SETTINGS
@given(a=i64s, b=i64s)
def test_two_i64_functions_agree(paths: tuple[Spirit, Spirit], a: int, b: int) -> None:
    for fn in ("add", "sub", "mul", "div", "divmod"):
        assert_same(paths, fn, a, b)


@SETTINGS
@given(a=i64s)
def test_one_i64_functions_agree(paths: tuple[Spirit, Spirit], a: int) -> None:
    assert_same(paths, "neg", a)
    assert_same(paths, "is_even", a)
    assert_same(paths, "div", a, 0)


@SETTINGS
@given(a=f64s, b=f64s)
def test_average_agrees(paths: tuple[Spirit, Spirit], a: float, b: float) -> None:
    assert_same(paths, "average", a, b)


def test_noop_agrees(paths: tuple[Spirit, Spirit]) -> None:
    assert assert_same(paths, "noop") == ("returned", ("NoneType", None))


def test_unsigned_spellings_agree(paths: tuple[Spirit, Spirit]) -> None:
    assert assert_same(paths, "add", 2**64 - 1, 2) == ("returned", ("int", 1))
    assert assert_same(paths, "add", 2**63, 2**63) == ("returned", ("int", 0))


BAD_ARGS: list[tuple[str, tuple[Any, ...]]] = [
    ("add", (2**64, 0)),
    ("add", (0, I64_MIN - 1)),
    ("add", (1.0, 2)),
    ("add", ("1", 2)),
    ("add", (None, None)),
    ("add", (1,)),
    ("add", (1, 2, 3)),
    ("add", ()),
    ("noop", (1,)),
    ("neg", ([],)),
    ("average", ("1.0", 2.0)),
    ("average", (1j, 2.0)),
    ("average", (10**400, 2.0)),
    ("average", (1.0,)),
    ("divmod", (Decimal(1), 2)),
    ("nope", ()),
]


@pytest.mark.parametrize(("fn", "args"), BAD_ARGS)
def test_bad_input_raises_the_same_on_both_paths(
    paths: tuple[Spirit, Spirit], fn: str, args: tuple[Any, ...]
) -> None:
    got = assert_same(paths, fn, *args)
    assert got[0] == "raised"


@pytest.mark.parametrize(
    ("fn", "args", "code"),
    [
        ("div", (1, 0), "integer_division_by_zero"),
        ("divmod", (1, 0), "integer_division_by_zero"),
        ("div", (I64_MIN, -1), "integer_overflow"),
        ("divmod", (2**63, 2**64 - 1), "integer_overflow"),  # the same, spelled unsigned
    ],
)
def test_traps_are_the_same_on_both_paths(
    paths: tuple[Spirit, Spirit], fn: str, args: tuple[int, ...], code: str
) -> None:
    got = assert_same(paths, fn, *args)
    assert got[0] == "raised"
    assert got[3] == code
    for spirit in paths:  # and both stay usable
        assert spirit.call_sync("add", 1, 2) == 3


@pytest.mark.parametrize(
    ("fn", "code"), [("unreachable", "unreachable"), ("oob_read", "memory_out_of_bounds")]
)
def test_loops_traps_are_the_same_on_both_paths(fn: str, code: str) -> None:
    both = (Spirit.load_sync(LOOPS), Spirit.load_sync(LOOPS, unchecked=False))
    got = assert_same(both, fn)
    assert got[3] == code
    assert assert_same(both, "sum_to", 100) == ("returned", ("int", 5050))


def test_timeouts_and_fuel_on_the_public_path() -> None:
    from vudo_runtime import FuelExhausted, SpiritTimeout

    public = Spirit.load_sync(LOOPS, unchecked=False)
    with pytest.raises(SpiritTimeout):
        public.call_sync("spin", timeout=0.05)
    metered = Spirit.load_sync(LOOPS, unchecked=False, fuel=10_000)
    with pytest.raises(FuelExhausted):
        metered.call_sync("spin")
    assert metered.call_sync("sum_to", 700) == 245350


# ---- every value type ---------------------------------------------------------------------


@SETTINGS
@given(a=st.integers(min_value=-(2**33), max_value=2**33))
def test_i32_agrees(type_paths: tuple[Spirit, Spirit], a: int) -> None:
    assert_same(type_paths, "id_i32", a)


@SETTINGS
@given(a=st.floats(allow_nan=True, allow_infinity=True))
def test_f32_agrees(type_paths: tuple[Spirit, Spirit], a: float) -> None:
    got = assert_same(type_paths, "id_f32", a)
    if math.isfinite(a) and abs(a) <= F32_MAX:  # comes back rounded to the nearest f32
        assert got == ("returned", _comparable(struct.unpack("<f", struct.pack("<f", a))[0]))


@SETTINGS
@given(
    i32=st.integers(min_value=-(2**31), max_value=2**32 - 1),
    i64=i64s,
    f32=st.floats(width=32),
    f64=st.floats(),
)
def test_mixed_signature_agrees(
    type_paths: tuple[Spirit, Spirit], i32: int, i64: int, f32: float, f64: float
) -> None:
    assert_same(type_paths, "mix", i32, i64, f32, f64)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(1e300, id="huge"),
        pytest.param(-1e39, id="just-too-large"),
        pytest.param(3.4028235677973366e38, id="halfway-rounds-up"),
        pytest.param(F32_MAX + 2.0**100, id="rounds-down-to-max"),
        pytest.param(2**200, id="huge-int"),
    ],
)
def test_f32_overflow_agrees(type_paths: tuple[Spirit, Spirit], value: float) -> None:
    """Values past the f32 range round as a C cast does (to infinity) on both paths."""
    got = assert_same(type_paths, "id_f32", value)
    assert got[0] == "returned"
    result = type_paths[0].call_sync("id_f32", value)
    if abs(value) < F32_MAX + 2.0**103:  # less than half an f32 step past the largest
        assert result == F32_MAX
    else:
        assert result == math.copysign(math.inf, value)


class _HasFloat:
    def __float__(self) -> float:
        return 2.5


class _HasIndex:
    def __index__(self) -> int:
        return 5


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(Decimal("1.5"), id="Decimal"),
        pytest.param(Fraction(1, 3), id="Fraction"),
        pytest.param(_HasFloat(), id="__float__"),
        pytest.param(_HasIndex(), id="__index__"),
        pytest.param(True, id="bool"),
        pytest.param(Decimal("sNaN"), id="signalling-NaN"),
        pytest.param("2.5", id="str"),
        pytest.param(None, id="None"),
    ],
)
@pytest.mark.parametrize("fn", ["id_f32", "id_f64"])
def test_float_like_objects_agree(type_paths: tuple[Spirit, Spirit], fn: str, value: Any) -> None:
    assert_same(type_paths, fn, value)


@pytest.mark.parametrize(
    "value",
    [_HasIndex(), True, False, 2**31, 2**32 - 1, 2**32, 1.0, Decimal(3), "x", b"x", None],
    ids=repr,
)
@pytest.mark.parametrize("fn", ["id_i32", "id_i64"])
def test_int_like_objects_agree(type_paths: tuple[Spirit, Spirit], fn: str, value: Any) -> None:
    assert_same(type_paths, fn, value)


async def test_async_calls_agree(paths: tuple[Spirit, Spirit]) -> None:
    fast, public = paths
    for mode in ("auto", "inline", "thread"):
        assert await fast.call("divmod", -9, 4, mode=mode) == await public.call(
            "divmod", -9, 4, mode=mode
        )
