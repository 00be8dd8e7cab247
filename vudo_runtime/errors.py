"""One exception tree rooted at :class:`VudoError`.

Every message says what failed, where, and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


class VudoError(Exception):
    """Base of every error the runtime raises on purpose."""


class CacheWarning(VudoError, RuntimeWarning):
    """The compiled-module cache was skipped or is at risk; loading goes on without it."""


class SpiritLoadError(VudoError):
    """A module could not be read, compiled, linked or instantiated."""


class MissingImportError(SpiritLoadError):
    """The module imports functions nobody provides; ``missing`` lists them."""

    def __init__(self, spirit: str, missing: Sequence[str], hints: Sequence[str] = ()) -> None:
        self.spirit = spirit
        self.missing = list(missing)
        self.hints = list(hints)
        lines = [f"Spirit {spirit!r} has {len(self.missing)} unmet import(s):"]
        lines += [f"  {m}" for m in self.missing]
        lines += [f"  hint: {h}" for h in self.hints]
        lines.append(
            "Grant a Loa that provides them (loas=[...]) or register one in the LoaRegistry."
        )
        super().__init__("\n".join(lines))


class CapabilityError(SpiritLoadError):
    """An import is provided by a Loa the Spirit was not granted."""


class ExportNotFoundError(VudoError, LookupError):
    """The Spirit has no exported function of that name; the message lists what it has."""

    def __init__(self, spirit: str, name: str, available: Sequence[str]) -> None:
        self.spirit = spirit
        self.name = name
        self.available = list(available)
        shown = ", ".join(self.available) if self.available else "(none)"
        super().__init__(
            f"Spirit {spirit!r} exports no function {name!r}; available functions: {shown}"
        )

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class SpiritClosedError(VudoError):
    """The Spirit was closed (or released from its Séance); load or summon it again."""


class ArgumentError(VudoError, TypeError):
    """Arguments do not match the export's wasm signature (count, type or range)."""


class SpiritTrap(VudoError):
    """The guest trapped (or a host function it called raised; see ``__cause__``)."""

    def __init__(
        self,
        message: str,
        *,
        spirit: str = "",
        function: str = "",
        code: str | None = None,
        backtrace: str = "",
    ) -> None:
        self.spirit = spirit
        self.function = function
        self.code = code
        self.backtrace = backtrace
        self.message = message
        where = f"{spirit}.{function}" if function else spirit
        text = f"Spirit call {where} trapped: {message}"
        if backtrace:
            text += f"\nwasm backtrace:\n{backtrace}"
        super().__init__(text)


class SpiritTimeout(SpiritTrap, TimeoutError):
    """The call ran past its ``timeout=`` deadline and was interrupted."""


class SpiritInterrupted(SpiritTrap):
    """The call was stopped by ``Spirit.interrupt()``."""


class SpiritExit(SpiritTrap):
    """A WASI program called ``proc_exit``; ``status`` is its exit code.

    ``Spirit.run`` returns the code instead; any other call that exits raises this.
    """

    def __init__(self, status: int, *, spirit: str = "", function: str = "") -> None:
        self.status = status
        super().__init__(f"exited with status {status}", spirit=spirit, function=function)


class BusTimeout(VudoError, TimeoutError):
    """No message arrived on the bus within ``receive(..., timeout=)``."""


class RequestTimeout(BusTimeout):
    """No reply to a request arrived within ``request(..., timeout=)``."""


class FuelExhausted(SpiritTrap):
    """The call used up its ``fuel=`` budget."""


class MemoryAccessError(VudoError, IndexError):
    """An access outside the Spirit's linear memory, or memory could not be provided."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MemoryClosedError(MemoryAccessError):
    """The memory's Spirit was closed: nothing can be read, written or allocated any more."""


class NoMemoryError(MemoryAccessError):
    """The Spirit exports no linear memory, so strings, bytes and genes cannot cross."""


class GuestPanic(VudoError):
    """Raised by host functions that trap on the guest's behalf (panic, assert, abort)."""


class LayoutError(VudoError, ValueError):
    """A gene layout or a gene value is malformed."""


class DolSyntaxError(VudoError, SyntaxError):
    """DOL source could not be parsed; carries file, line and column."""

    def __init__(
        self, message: str, *, file: str = "<dol>", line: int = 0, column: int = 0
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{file}:{line}:{column}: {message}")

    def __str__(self) -> str:  # SyntaxError's own __str__ drops our location prefix
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SeanceError(VudoError):
    """Misuse of a Séance: unknown or duplicate names, use after dismiss."""


class PoolTimeout(VudoError, TimeoutError):
    """No instance became free within the pool's acquire timeout."""


def trap_reason(text: str) -> str:
    """A trap's reason without wasmtime's backtrace (which SpiritTrap carries apart)."""
    return root_cause(text)[1].removeprefix("wasm trap: ") or "trap"


def root_cause(text: str) -> tuple[str, str]:
    """wasmtime's error text as ``(headline, root cause)``: the one parser of its chains.

    wasmtime writes a headline, then ``Caused by:`` and numbered causes (``0: ...``); the
    last one says what actually went wrong. Without a chain the root is the last line.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "", ""
    causes = lines[lines.index("Caused by:") + 1 :] if "Caused by:" in lines else lines
    return lines[0], re.sub(r"^\d+:\s*", "", causes[-1]) if causes else lines[0]


class SignatureError(SpiritLoadError):
    """A Spirit's signature, signature section or key file could not be read or trusted."""


class UnsignedSpiritError(SignatureError):
    """The Spirit carries no signature, and the trust policy requires one."""


class UnknownKeyError(SignatureError):
    """The Spirit is signed by a key the trust policy does not list."""


class TamperedSpiritError(SignatureError):
    """The signature does not verify: the module or its manifest changed after signing."""


class ManifestError(SpiritLoadError):
    """A spirit.toml manifest is unreadable or invalid, or asks for what the host refuses."""


class StateQuotaError(VudoError):
    """A state write would take its namespace past the backend's quota; nothing was written."""

    def __init__(self, message: str, *, namespace: str = "", key: str = "") -> None:
        self.namespace = namespace
        self.key = key
        super().__init__(message)
