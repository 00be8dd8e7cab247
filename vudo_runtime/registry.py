"""LoaRegistry: the Loas a host offers by name, and what a ``loas=`` grant resolves to."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeAlias

from vudo_runtime.errors import SpiritLoadError, VudoError
from vudo_runtime.loa import Loa
from vudo_runtime.loas import BUILTIN_LOAS

#: Granted when ``loas=`` is not given.
DEFAULT_GRANT = ("core", "messaging")


class LoaRegistry:
    """The Loas a host offers. Created holding the built-ins ``core``, ``messaging``, ``state``."""

    def __init__(self, loas: Iterable[Loa] = ()) -> None:
        self._loas: dict[str, Loa] = {loa.name: loa for loa in BUILTIN_LOAS}
        #: Resolved grants by the names asked for; forgotten when the registry changes.
        self.grants: dict[tuple[str | Loa, ...], tuple[Loa, ...]] = {}
        #: Counts changes: what was resolved against an older version is stale.
        self.version = 0
        for loa in loas:
            self.register(loa)

    def register(self, loa: Loa) -> Loa:
        if not isinstance(loa, Loa):
            raise TypeError(f"expected a Loa, got {type(loa).__name__}")
        if loa.name in self._loas:
            raise VudoError(f"a Loa named {loa.name!r} is already registered; unregister it first")
        self._loas[loa.name] = loa
        self.grants.clear()
        self.version += 1
        return loa

    def unregister(self, name: str) -> None:
        if name == "core":
            raise VudoError("the core Loa cannot be unregistered")
        if self._loas.pop(name, None) is None:
            raise KeyError(f"no Loa named {name!r} is registered")
        self.grants.clear()
        self.version += 1

    def get(self, name: str) -> Loa:
        try:
            return self._loas[name]
        except KeyError:
            raise KeyError(f"no Loa named {name!r}; registered: {', '.join(self._loas)}") from None

    def names(self) -> list[str]:
        return list(self._loas)

    def __contains__(self, name: object) -> bool:
        return name in self._loas

    def __iter__(self) -> Iterator[Loa]:
        return iter(list(self._loas.values()))

    def __len__(self) -> int:
        return len(self._loas)

    def __repr__(self) -> str:
        return f"LoaRegistry({self.names()})"


_default_registry: LoaRegistry | None = None


def default_registry() -> LoaRegistry:
    """The process-wide registry used when none is given."""
    global _default_registry
    if _default_registry is None:
        _default_registry = LoaRegistry()
    return _default_registry


LoaGrant: TypeAlias = "LoaRegistry | Iterable[str | Loa] | None"


def resolve_grant(
    loas: LoaGrant, registry: LoaRegistry | None = None, default: Sequence[str] = DEFAULT_GRANT
) -> tuple[tuple[Loa, ...], LoaRegistry]:
    """The Loas granted by ``loas=`` and the registry that names them."""
    registry = registry or default_registry()
    if isinstance(loas, LoaRegistry):
        return tuple(loas), loas
    names: Iterable[str | Loa] = default if loas is None else loas
    if isinstance(names, str | Loa):
        names = [names]
    key = tuple(names) if isinstance(names, tuple | list) else None
    if key is not None and (known := registry.grants.get(key)) is not None:
        return known, registry
    granted: dict[str, Loa] = {}
    for item in names:
        if isinstance(item, Loa):
            granted[item.name] = item
        elif item in registry:
            granted[item] = registry.get(item)
        else:
            raise SpiritLoadError(
                f"cannot grant Loa {item!r}: it is not registered (registered: "
                f"{', '.join(registry.names())}); register it or pass the Loa object"
            )
    granted.setdefault("core", registry.get("core"))
    result = tuple(granted.values())
    if key is not None:
        registry.grants[key] = result
    return result, registry
