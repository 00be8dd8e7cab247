"""Built-in Loas: ``core`` (the vudo host ABI), ``messaging``, ``state`` and ``wasi``."""

from vudo_runtime.loas.core import CORE, Effect
from vudo_runtime.loas.messaging import MESSAGING, Message, MessageBus
from vudo_runtime.loas.state import STATE, SharedState
from vudo_runtime.loas.wasi import WASI, Preopen, WasiOptions

BUILTIN_LOAS = (CORE, MESSAGING, STATE, WASI)

__all__ = [
    "BUILTIN_LOAS",
    "CORE",
    "MESSAGING",
    "STATE",
    "WASI",
    "Effect",
    "Message",
    "MessageBus",
    "Preopen",
    "SharedState",
    "WasiOptions",
]
