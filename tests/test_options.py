"""SpiritOptions: the load options as one typed, validated object."""

from __future__ import annotations

import inspect
import math
from typing import Any

import attrs
import pytest

from vudo_runtime import Seance, Spirit, SpiritFacade, SpiritOptions, SpiritTimeout, load_spirit

SPIN = b'(module (func (export "spin") (loop br 0)) (func (export "one") (result i32) i32.const 1))'


def test_defaults() -> None:
    opts = SpiritOptions()
    assert (opts.timeout, opts.fuel, opts.mode, opts.cache, opts.unchecked) == (
        None,
        None,
        "auto",
        True,
        True,
    )


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"fuel": -1}, "fuel must be a non-negative int"),
        ({"fuel": 1.5}, "fuel must be a non-negative int"),
        ({"fuel": "1000"}, "fuel must be a non-negative int"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"timeout": math.nan}, "timeout must be a positive number"),
        ({"mode": "fast"}, "mode must be 'auto', 'inline' or 'thread'"),
    ],
)
def test_validates(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SpiritOptions(**kw)
    with pytest.raises(ValueError, match=match):
        attrs.evolve(SpiritOptions(), **kw)
    with pytest.raises(ValueError, match=match):
        Spirit.load_sync(SPIN, **kw)


def test_valid_values_pass() -> None:
    assert SpiritOptions(timeout=math.inf, fuel=0, mode="thread").fuel == 0


def test_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        SpiritOptions().timeout = 1.0  # type: ignore[misc]


async def test_options_object_applies_timeout() -> None:
    spirit = await load_spirit(SPIN, options=SpiritOptions(timeout=0.1, cache=False))
    assert spirit.timeout == 0.1
    with pytest.raises(SpiritTimeout):
        await spirit.call("spin")
    assert await spirit.call("one") == 1


async def test_keywords_override_options() -> None:
    opts = SpiritOptions(timeout=5.0, name="from-options", mode="inline")
    spirit = await load_spirit(SPIN, options=opts, timeout=0.1, name="kw")
    assert (spirit.name, spirit.timeout, spirit.mode) == ("kw", 0.1, "inline")
    with pytest.raises(SpiritTimeout):
        await spirit.call("spin")
    assert opts.timeout == 5.0  # the options object is unchanged


def test_load_sync_accepts_options() -> None:
    spirit = Spirit.load_sync(SPIN, options=SpiritOptions(timeout=0.1), fuel=None)
    with pytest.raises(SpiritTimeout):
        spirit.call_sync("spin")


async def test_unknown_keyword_is_a_type_error() -> None:
    bogus: dict[str, Any] = {"tiemout": 1.0}
    with pytest.raises(TypeError):
        await load_spirit(SPIN, **bogus)
    with pytest.raises(TypeError):
        Spirit.load_sync(SPIN, **bogus)
    with pytest.raises(TypeError):
        SpiritOptions(**bogus)
    async with Seance() as seance:
        with pytest.raises(TypeError):
            await seance.summon("x", SPIN, **bogus)


async def test_summon_accepts_options() -> None:
    async with Seance() as seance:
        spirit = await seance.summon("spinner", SPIN, options=SpiritOptions(timeout=0.1))
        assert spirit.name == "spinner"
        with pytest.raises(SpiritTimeout):
            await spirit.call("spin")
        fresh = await seance.restart("spinner")
        assert fresh.timeout == 0.1


async def test_facade_load_accepts_options() -> None:
    facade = await SpiritFacade.load(SPIN, options=SpiritOptions(timeout=0.1))
    assert facade.spirit.timeout == 0.1


def test_public_signatures_are_typed_keywords() -> None:
    fields = set(attrs.fields_dict(SpiritOptions))
    for fn in (load_spirit, Spirit.load, Spirit.load_sync, SpiritFacade.load):
        params = inspect.signature(fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), fn
        assert fields | {"options"} <= set(params), fn
        for field in attrs.fields(SpiritOptions):
            assert params[field.name].kind is inspect.Parameter.KEYWORD_ONLY
            assert params[field.name].default == field.default, (fn, field.name)
    summon = inspect.signature(Seance.summon).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in summon.values())
    assert "options" in summon
