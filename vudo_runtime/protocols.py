"""Typed facades from a Protocol: ``Spirit.as_(SomeProtocol)``.

The Spirit is used only through its public methods, so this module sits below it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vudo_runtime.errors import ExportNotFoundError

if TYPE_CHECKING:
    from vudo_runtime.spirit import Spirit


def protocol_facade(spirit: Spirit, protocol: type) -> object:
    """Async methods forwarding to exports, for ``Spirit.as_(SomeProtocol)``.

    Each public method name is an export name (``Gene__method`` stands for ``Gene.method``);
    a method annotated ``-> str``, ``-> bytes`` or a gene class reads its result back.
    """
    names = [n for n in dir(protocol) if not n.startswith("_") and callable(getattr(protocol, n))]
    target = {n: (n if spirit.has_function(n) else n.replace("__", ".", 1)) for n in names}
    missing = [n for n, export in target.items() if not spirit.has_function(export)]
    if missing:
        raise ExportNotFoundError(spirit.name, ", ".join(missing), spirit.list_functions())
    returns = {n: _read_back_type(getattr(protocol, n)) for n in names}
    return _ProtocolFacade(spirit, target, returns, protocol.__name__)


class _ProtocolFacade:
    """Async methods forwarding to exports, built for ``Spirit.as_(SomeProtocol)``."""

    def __init__(
        self,
        spirit: Spirit,
        target: Mapping[str, str],
        returns: Mapping[str, Any],
        facade_name: str,
    ) -> None:
        self._spirit = spirit
        self._facade_name = facade_name
        for attr, export in target.items():
            setattr(self, attr, self._method(export, returns.get(attr)))

    def _method(self, export: str, returns: Any) -> Callable[..., Any]:
        spirit = self._spirit

        async def method(*args: Any, timeout: float | None = None) -> Any:
            return await spirit.call(export, *args, timeout=timeout, returns=returns)

        method.__name__ = export
        return method

    def __repr__(self) -> str:
        return f"<{self._facade_name} facade of {self._spirit!r}>"


def _read_back_type(method: Any) -> Any:
    """``returns=`` for a Protocol method annotated ``-> str``, ``-> bytes`` or a gene class."""
    try:
        hint = typing.get_type_hints(method).get("return")
    except Exception:  # unresolvable annotations: no conversion
        return None
    if hint in (str, bytes) or hasattr(hint, "__vudo_layout__"):
        return hint
    return None
