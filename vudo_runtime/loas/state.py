"""The ``state`` Loa: a key-value store shared by the Spirits of one Séance."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from vudo_runtime.loa import HostContext, HostFunction, Loa
from vudo_runtime.module import Signature


class SharedState(MutableMapping[str, bytes]):
    """Thread-safe ``str -> bytes`` mapping; Python sees it as ``seance.state``."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> bytes:
        with self._lock:
            return self._data[key]

    def __setitem__(self, key: str, value: bytes | bytearray | str) -> None:
        data = value.encode() if isinstance(value, str) else bytes(value)
        with self._lock:
            self._data[key] = data

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        with self._lock:
            return f"SharedState({self._data!r})"


def provides(ctx: HostContext) -> Mapping[str, Any]:
    def state() -> SharedState | None:
        seance = ctx.seance
        return getattr(seance, "state", None) if seance is not None else None

    def get(key_ptr: int, key_len: int, buf: int, buf_max: int) -> int:
        """Value length; -1 missing (or no Séance); -2 buffer too small (nothing written)."""
        store = state()
        key = ctx.read_str(key_ptr, key_len)
        value = store.get(key) if store is not None else None
        if value is None:
            return -1
        if len(value) > (buf_max & 0xFFFFFFFF):
            return -2
        ctx.memory.write_bytes(buf & 0xFFFFFFFF, value)
        return len(value)

    def set_(key_ptr: int, key_len: int, val_ptr: int, val_len: int) -> int:
        """0 stored; -1 no Séance to share with."""
        store = state()
        if store is None:
            return -1
        store[ctx.read_str(key_ptr, key_len)] = ctx.read_bytes(val_ptr, val_len)
        return 0

    sig = Signature(("i32",) * 4, ("i32",))
    return {
        "vudo_state_get": HostFunction(get, signature=sig),
        "vudo_state_set": HostFunction(set_, signature=sig),
    }


STATE = Loa(
    name="state",
    version="0.1.0",
    capabilities=("vudo_state_get", "vudo_state_set"),
    provides=provides,
)
