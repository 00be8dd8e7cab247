"""Built-in Loas: ``core`` (the vudo host ABI), ``messaging`` and ``state``."""

from vudo_runtime.loas.core import CORE, Effect
from vudo_runtime.loas.messaging import MESSAGING, Message, MessageBus
from vudo_runtime.loas.state import STATE, SharedState

BUILTIN_LOAS = (CORE, MESSAGING, STATE)

__all__ = [
    "BUILTIN_LOAS",
    "CORE",
    "MESSAGING",
    "STATE",
    "Effect",
    "Message",
    "MessageBus",
    "SharedState",
]
