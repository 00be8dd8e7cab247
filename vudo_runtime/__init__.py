"""vudo-runtime: the Python host runtime for DOL Spirits (WebAssembly), built for asyncio."""

from vudo_runtime.cache import CacheWarning
from vudo_runtime.errors import (
    ArgumentError,
    BusTimeout,
    CapabilityError,
    DolSyntaxError,
    ExportNotFoundError,
    FuelExhausted,
    LayoutError,
    MemoryAccessError,
    MemoryClosedError,
    MissingImportError,
    PoolTimeout,
    SeanceError,
    SpiritInterrupted,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
    VudoError,
)
from vudo_runtime.facade import GeneHandle, SpiritFacade
from vudo_runtime.layout import EnumType, Field, GeneLayout
from vudo_runtime.loa import (
    HostContext,
    HostFunction,
    Loa,
    LoaRegistry,
    WasmSignature,
    host_function,
)
from vudo_runtime.loas import Effect, Message
from vudo_runtime.memory import HEAP_END, MemoryManager
from vudo_runtime.module import Signature
from vudo_runtime.options import SpiritOptions
from vudo_runtime.pool import InstancePool, PoolStats
from vudo_runtime.seance import Ghost, Seance
from vudo_runtime.spirit import Spirit, load_spirit

__version__ = "0.1.0"

__all__ = [
    "HEAP_END",
    "ArgumentError",
    "BusTimeout",
    "CacheWarning",
    "CapabilityError",
    "DolSyntaxError",
    "Effect",
    "EnumType",
    "ExportNotFoundError",
    "Field",
    "FuelExhausted",
    "GeneHandle",
    "GeneLayout",
    "Ghost",
    "HostContext",
    "HostFunction",
    "InstancePool",
    "LayoutError",
    "Loa",
    "LoaRegistry",
    "MemoryAccessError",
    "MemoryClosedError",
    "MemoryManager",
    "Message",
    "MissingImportError",
    "PoolStats",
    "PoolTimeout",
    "Seance",
    "SeanceError",
    "Signature",
    "Spirit",
    "SpiritFacade",
    "SpiritInterrupted",
    "SpiritLoadError",
    "SpiritOptions",
    "SpiritTimeout",
    "SpiritTrap",
    "VudoError",
    "WasmSignature",
    "host_function",
    "load_spirit",
]
