"""SpiritOptions: the options of loading one Spirit, defined once, typed and validated.

It imports only the engine (types of other layers for type checkers only): every layer
that takes load options can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from vudo_runtime.engine import EngineSettings, check_timeout

if TYPE_CHECKING:
    from vudo_runtime.cache import CacheOption
    from vudo_runtime.loas.wasi import WasiOptions
    from vudo_runtime.manifest import HostPolicy
    from vudo_runtime.registry import LoaGrant, LoaRegistry
    from vudo_runtime.signing import TrustPolicy

CallMode = Literal["auto", "inline", "thread"]
CALL_MODES: tuple[CallMode, ...] = ("auto", "inline", "thread")


def _check_timeout(_: object, __: attrs.Attribute[Any], timeout: float | None) -> None:
    if timeout is not None:
        check_timeout(timeout)


def _check_fuel(_: object, __: attrs.Attribute[Any], fuel: int | None) -> None:
    if fuel is not None and (not isinstance(fuel, int) or fuel < 0):
        raise ValueError(f"fuel must be a non-negative int, got {fuel!r}")


def _check_mode(_: object, __: attrs.Attribute[Any], mode: str) -> None:
    if mode not in CALL_MODES:
        raise ValueError(f"mode must be 'auto', 'inline' or 'thread', got {mode!r}")


@attrs.frozen
class SpiritOptions:
    """How to load one Spirit; every field is also a keyword of ``load_spirit``.

    ``name`` (default: from the source), ``loas`` (a LoaRegistry, or Loa names / Loa
    objects to grant; default ``core``), ``cache`` (True, False or a directory),
    ``timeout`` (seconds per call), ``fuel`` (budget per call), ``max_memory`` (bytes),
    ``mode`` (``auto``/``inline``/``thread``), ``stdout`` (file or callable for
    vudo_print), ``on_effect`` (callback for effects), ``seance`` (the Séance it belongs
    to), ``registry`` (where Loa names are looked up), ``unchecked`` (the fast call path),
    ``wasi`` (what a WASI program sees: :class:`~vudo_runtime.WasiOptions`), ``compact``
    (memories reserve only what they use, for ~100,000 small Spirits in one process; see
    README, "Many small Spirits"), ``trust`` (keys a Spirit must be signed with:
    :class:`~vudo_runtime.TrustPolicy`), ``policy`` (what the host allows a spirit.toml
    manifest to ask for: :class:`~vudo_runtime.HostPolicy`).
    """

    name: str | None = None
    loas: LoaGrant = None
    cache: CacheOption = True
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    fuel: int | None = attrs.field(default=None, validator=_check_fuel)
    max_memory: int | None = None
    mode: CallMode = attrs.field(default="auto", validator=_check_mode)
    stdout: Any = None
    on_effect: Callable[..., Any] | None = None
    seance: Any = None
    registry: LoaRegistry | None = None
    unchecked: bool = True
    wasi: WasiOptions | None = None
    compact: bool = False
    trust: TrustPolicy | None = None
    policy: HostPolicy | None = None

    @property
    def engine(self) -> EngineSettings:
        """The engine these options need: fuel metering and compact memories are its own."""
        return EngineSettings(fuel=self.fuel is not None, compact=self.compact)

    @classmethod
    def of(
        cls, options: SpiritOptions | None, given: Mapping[str, Any], **fixed: Any
    ) -> SpiritOptions:
        """``options`` (or the defaults) with the option keywords in ``given`` applied,
        then ``fixed`` (what the caller sets itself, like a Séance's ``name``).

        ``given`` is a caller's ``locals()``: only the names of fields are read. Over
        ``options``, a keyword left at its default changes nothing; any other overrides.
        """
        if options is None:
            kw = {k: v for k, v in given.items() if k in _FIELDS and k not in fixed}
            return cls(**kw, **fixed)
        changes = {
            k: v
            for k, v in given.items()
            if k in _FIELDS and k not in fixed and not _is_default(v, _FIELDS[k])
        }
        changes.update(fixed)
        return attrs.evolve(options, **changes) if changes else options


_FIELDS = {f.name: f.default for f in attrs.fields(SpiritOptions)}


def _is_default(value: object, default: object) -> bool:
    return value is default or (isinstance(default, str) and value == default)
