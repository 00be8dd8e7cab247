"""vudo-runtime: the Python host runtime for DOL Spirits (WebAssembly), built for asyncio."""

from vudo_runtime.errors import (
    ArgumentError,
    BusTimeout,
    CacheWarning,
    CapabilityError,
    DolSyntaxError,
    ExportNotFoundError,
    FuelExhausted,
    GuestPanic,
    LayoutError,
    ManifestError,
    MemoryAccessError,
    MemoryClosedError,
    MissingImportError,
    NoMemoryError,
    PoolTimeout,
    RequestTimeout,
    SeanceError,
    SignatureError,
    SpiritClosedError,
    SpiritExit,
    SpiritInterrupted,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
    StateQuotaError,
    TamperedSpiritError,
    UnknownKeyError,
    UnsignedSpiritError,
    VudoError,
)
from vudo_runtime.facade import GeneHandle, SpiritFacade
from vudo_runtime.instances import Instance, InstanceManager
from vudo_runtime.layout import EnumType, Field, GeneLayout
from vudo_runtime.loa import HostContext, HostFunction, Loa, host_function
from vudo_runtime.loas import Effect, Message, Preopen, WasiOptions
from vudo_runtime.loas.state import (
    MemoryBackend,
    SharedState,
    SqliteBackend,
    StateBackend,
    StateUsage,
)
from vudo_runtime.manifest import HostPolicy, Manifest, load_manifest
from vudo_runtime.memory import HEAP_END, MemoryManager
from vudo_runtime.module import Signature
from vudo_runtime.options import SpiritOptions
from vudo_runtime.pool import InstancePool, PoolStats
from vudo_runtime.registry import LoaRegistry
from vudo_runtime.seance import Ghost, Seance
from vudo_runtime.signing import TrustPolicy
from vudo_runtime.spirit import Spirit, load_spirit

#: The one function type: what an export has and what a host function declares.
WasmSignature = Signature

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
    "GuestPanic",
    "HostContext",
    "HostFunction",
    "HostPolicy",
    "Instance",
    "InstanceManager",
    "InstancePool",
    "LayoutError",
    "Loa",
    "LoaRegistry",
    "Manifest",
    "ManifestError",
    "MemoryAccessError",
    "MemoryBackend",
    "MemoryClosedError",
    "MemoryManager",
    "Message",
    "MissingImportError",
    "NoMemoryError",
    "PoolStats",
    "PoolTimeout",
    "Preopen",
    "RequestTimeout",
    "Seance",
    "SeanceError",
    "SharedState",
    "Signature",
    "SignatureError",
    "Spirit",
    "SpiritClosedError",
    "SpiritExit",
    "SpiritFacade",
    "SpiritInterrupted",
    "SpiritLoadError",
    "SpiritOptions",
    "SpiritTimeout",
    "SpiritTrap",
    "SqliteBackend",
    "StateBackend",
    "StateQuotaError",
    "StateUsage",
    "TamperedSpiritError",
    "TrustPolicy",
    "UnknownKeyError",
    "UnsignedSpiritError",
    "VudoError",
    "WasiOptions",
    "WasmSignature",
    "host_function",
    "load_manifest",
    "load_spirit",
]
