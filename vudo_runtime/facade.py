"""What the typed stubs from ``vudo codegen`` share: gene handles and the facade base class.

A generated module subclasses :class:`GeneHandle` once per gene (async methods calling the
gene's ``Gene.method`` exports on its address) and :class:`SpiritFacade` once per Spirit
(one typed async method per export). :func:`gene_memory` and :func:`allocated` are the
checks those methods make on the Spirit's memory and on what gene constructors return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self

import attrs

from vudo_runtime.errors import MemoryAccessError, NoMemoryError
from vudo_runtime.memory import MemoryManager
from vudo_runtime.module import Source
from vudo_runtime.options import CallMode, SpiritOptions
from vudo_runtime.spirit import Spirit

if TYPE_CHECKING:
    from vudo_runtime.cache import CacheOption
    from vudo_runtime.loas.wasi import WasiOptions
    from vudo_runtime.manifest import HostPolicy
    from vudo_runtime.registry import LoaGrant, LoaRegistry
    from vudo_runtime.signing import TrustPolicy

__all__ = ["GeneHandle", "SpiritFacade", "allocated", "gene_memory"]


@attrs.frozen
class GeneHandle:
    """A gene in a Spirit's memory: the Spirit and the gene's address, ``ptr``."""

    spirit: Spirit
    ptr: int


def gene_memory(spirit: Spirit) -> MemoryManager:
    """The Spirit's linear memory, where its genes live.

    Raises :class:`NoMemoryError` when the Spirit exports no memory (so it holds no genes).
    """
    memory = spirit.memory
    if memory is None:
        raise NoMemoryError(f"Spirit {spirit.name!r} exports no memory, so it holds no genes")
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
        wasi: WasiOptions | None = None,
        compact: bool = False,
        trust: TrustPolicy | None = None,
        policy: HostPolicy | None = None,
    ) -> Self:
        """Load the Spirit (options as for ``load_spirit``) behind this facade."""
        return cls(await Spirit._load(source, SpiritOptions.of(options, locals())))
