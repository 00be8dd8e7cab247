"""vudo-runtime: the Python host runtime for DOL Spirits (WebAssembly), built for asyncio."""

from vudo_runtime.errors import (
    ArgumentError,
    CapabilityError,
    DolSyntaxError,
    ExportNotFoundError,
    FuelExhausted,
    LayoutError,
    MemoryAccessError,
    MissingImportError,
    PoolTimeout,
    SeanceError,
    SpiritLoadError,
    SpiritTimeout,
    SpiritTrap,
    VudoError,
)

__all__ = [
    "ArgumentError",
    "CapabilityError",
    "DolSyntaxError",
    "ExportNotFoundError",
    "FuelExhausted",
    "LayoutError",
    "MemoryAccessError",
    "MissingImportError",
    "PoolTimeout",
    "SeanceError",
    "SpiritLoadError",
    "SpiritTimeout",
    "SpiritTrap",
    "VudoError",
]
