"""What the typed stubs from ``vudo codegen`` share: gene handles and the facade base class.

A generated module subclasses :class:`GeneHandle` once per gene (async methods calling the
gene's ``Gene.method`` exports on its address) and :class:`SpiritFacade` once per Spirit
(one typed async method per export). :func:`gene_memory` and :func:`allocated` are the
checks those methods make on the Spirit's memory and on what gene constructors return.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self

import attrs

from vudo_runtime.errors import ExportNotFoundError, MemoryAccessError, VudoError
from vudo_runtime.memory import MemoryManager
from vudo_runtime.module import Source
from vudo_runtime.options import CallMode, SpiritOptions
from vudo_runtime.spirit import Spirit

if TYPE_CHECKING:
    from vudo_runtime.cache import CacheOption
    from vudo_runtime.loa import LoaGrant, LoaRegistry

__all__ = ["GeneHandle", "SpiritFacade", "allocated", "gene_memory"]


@attrs.frozen
class GeneHandle:
    """A gene in a Spirit's memory: the Spirit and the gene's address, ``ptr``."""

    spirit: Spirit
    ptr: int


def gene_memory(spirit: Spirit) -> MemoryManager:
    """The Spirit's linear memory, where its genes live.

    Raises :class:`VudoError` when the Spirit exports no memory (so it holds no genes).
    """
    memory = spirit.memory
    if memory is None:
        raise VudoError(f"Spirit {spirit.name!r} exports no memory, so it holds no genes")
    return memory


def allocated(spirit: Spirit, export: str, ptr: int) -> int:
    """The address the gene constructor ``export`` returned, as an unsigned 32-bit pointer.

    Raises :class:`MemoryAccessError` for 0: the constructor found the Spirit's heap full.
    """
    address = int(ptr) & 0xFFFFFFFF
    if address == 0:
        raise MemoryAccessError(f"Spirit {spirit.name!r}: {export} returned 0, its heap is full")
    return address


class SpiritFacade:
    """Typed calls into one Spirit: ``spirit.as_(SomeFacade)`` or ``await SomeFacade.load(...)``.

    ``Spirit.as_`` builds any class marked ``__vudo_facade__`` from the Spirit alone.
    """

    __vudo_facade__: ClassVar[bool] = True

    spirit: Spirit

    def __init__(self, spirit: Spirit) -> None:
        self.spirit = spirit

    @classmethod
    async def load(
        cls,
        source: Source,
        *,
        options: SpiritOptions | None = None,
        name: str | None = None,
        loas: LoaGrant = None,
        cache: CacheOption = True,
        timeout: float | None = None,
        fuel: int | None = None,
        max_memory: int | None = None,
        mode: CallMode = "auto",
        stdout: Any = None,
        on_effect: Callable[..., Any] | None = None,
        seance: Any = None,
        registry: LoaRegistry | None = None,
        unchecked: bool = True,
    ) -> Self:
        """Load the Spirit (options as for ``load_spirit``) behind this facade."""
        return cls(await Spirit._load(source, SpiritOptions.of(options, locals())))


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
