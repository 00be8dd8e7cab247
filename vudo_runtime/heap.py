"""HostHeap: the host's allocator for the region of linear memory above the guest's heap.

MemoryManager uses it when the guest exports no allocator. The region starts at
``base`` (by default the memory's declared minimum size: for a DOL Spirit that is
at or above ``HEAP_END`` = 65536, which the guest's own bump allocator never
passes) and grows the memory by whole pages. Blocks come from a first-fit free
list (sorted, coalesced) and otherwise from a bump pointer; every block is a
multiple of 8 bytes, so block starts stay 8-aligned.

The heap only ever hands out memory the host grew itself: once the guest has grown
its memory behind the host's back, the pages above the host region may hold the
guest's data, so an allocation that would need them is refused.

The heap does no memory I/O: it is given the memory (anything with ``size`` and
``grow``, i.e. the MemoryManager) on each allocation, so it holds no reference back.
"""

from __future__ import annotations

from typing import Final, Protocol

from vudo_runtime.errors import MemoryAccessError

__all__ = ["GrowableMemory", "HostHeap"]


class GrowableMemory(Protocol):
    """What the heap needs of the memory it allocates in."""

    @property
    def size(self) -> int:
        """Current size in bytes."""
        ...

    def grow(self, pages: int) -> int:
        """Grow by ``pages`` pages (MemoryAccessError if it cannot) and return the old size in
        pages; the memory then reports the growth back through :meth:`HostHeap.grown`."""
        ...


class HostHeap:
    """Allocations in the host region of one memory; see the module docstring.

    ``min_size`` is the memory's declared minimum in bytes and ``current_size`` its size
    now; ``where`` names the memory in error messages.
    """

    def __init__(
        self,
        base: int | None,
        *,
        min_size: int,
        current_size: int,
        page_size: int,
        max_pages: int | None,
        addr_limit: int,
        where: str,
    ) -> None:
        if base is None:
            base = min_size
        if base < 0:
            raise ValueError(f"host_base must be >= 0, got {base}")
        # 8-aligned, and never address 0 (which many callers read as "failed")
        self.base: Final = (max(base, 8) + 7) & -8
        # The memory's size as far as the host grew it: the host region may use memory
        # below it; anything above it that the memory has, the guest grew itself.
        self._owned = max(min_size, min(current_size, self.base))
        self._page_size = page_size
        self._max_pages = max_pages
        self._addr_limit = addr_limit
        self._where = where
        self._top = self.base  # bump pointer
        self._free_blocks: list[tuple[int, int]] = []  # (ptr, size), sorted, coalesced
        self._live: dict[int, int] = {}  # ptr -> block size

    @property
    def allocated(self) -> int:
        """Bytes in live blocks (each rounded up to 8)."""
        return sum(self._live.values())

    @property
    def live_count(self) -> int:
        """Number of live blocks."""
        return len(self._live)

    def alloc(self, size: int, align: int, memory: GrowableMemory) -> int:
        """A block of ``size`` bytes aligned to ``align`` (a power of two, checked by the caller),
        growing ``memory`` if needed; MemoryAccessError when the memory cannot provide it."""
        need = ((size + 7) & -8) or 8  # multiples of 8: block starts stay 8-aligned
        if self._free_blocks:
            reused = self._take_free(need, align)
            if reused is not None:
                self._live[reused] = need
                return reused
        ptr = (self._top + align - 1) & -align
        end = ptr + need
        if end > self._owned:
            self._ensure(end, size, align, memory)
        if ptr > self._top:
            self._release(self._top, ptr - self._top)
        self._top = end
        self._live[ptr] = need
        return ptr

    def free(self, ptr: int) -> bool:
        """Release the block at ``ptr``; False (and nothing done) if it is not a live block."""
        length = self._live.pop(ptr, None)
        if length is None:
            return False
        self._release(ptr, length)
        return True

    def reset(self) -> None:
        """Forget every block: the whole region is free again."""
        self._live.clear()
        self._free_blocks.clear()
        self._top = self.base

    def grown(self, old_size: int, new_size: int) -> None:
        """The memory grew from ``old_size`` to ``new_size`` bytes (by whoever asked for it)."""
        # Unless the guest grew it in between (into the host region), the new pages adjoin it.
        if old_size == self._owned or old_size <= self.base:
            self._owned = new_size

    def _ensure(self, end: int, size: int, align: int, memory: GrowableMemory) -> None:
        """Grow the memory so that it covers ``[0, end)``; MemoryAccessError if it cannot."""
        current = memory.size
        if current != self._owned:
            if current > self.base:  # the guest's new pages reach into the host region
                raise self._guest_grew(current, size)
            self._owned = current  # it grew below the host region: nothing of ours
        if end <= current:
            return
        if end > self._addr_limit:
            raise MemoryAccessError(
                f"{self._where}: cannot allocate {size} bytes (align {align}): the host region"
                f" would end at {end:#x}, beyond the {self._addr_limit:#x}-byte address space"
            )
        pages = -(-(end - current) // self._page_size)
        try:
            memory.grow(pages)
        except MemoryAccessError as e:
            limit = (
                f"{self._max_pages} pages" if self._max_pages is not None else "no declared maximum"
            )
            raise MemoryAccessError(
                f"{self._where}: cannot allocate {size} bytes (align {align}): the host region"
                f" starting at {self.base:#x} needs {end} bytes of memory"
                f" ({pages} more page(s) than the current {current // self._page_size}),"
                f" but the memory cannot grow (limit: {limit}; the Store may set a lower one)."
                " Free host allocations (free/reset) or raise the memory limit."
            ) from e

    def _guest_grew(self, current: int, size: int) -> MemoryAccessError:
        return MemoryAccessError(
            f"{self._where}: cannot allocate {size} bytes for the guest: the guest grew its"
            f" memory itself (to {current} bytes; the host region at {self.base:#x}"
            f" only owns memory up to {self._owned:#x}), so the host cannot tell which"
            " memory is free and will not risk overwriting the guest's data. Export an"
            " allocator from the guest (`alloc(size, align) -> ptr` or `malloc(size) -> ptr`,"
            " used automatically), or write into a buffer the guest provides"
            " (memory.write_bytes(ptr, data) or memory.view(ptr, n) at a pointer it gives you)"
        )

    def _take_free(self, need: int, align: int) -> int | None:
        """First fit from the free list; what is left of the block goes back to it."""
        blocks = self._free_blocks
        for i, (start, length) in enumerate(blocks):
            ptr = (start + align - 1) & -align
            if ptr + need <= start + length:
                del blocks[i]
                if ptr > start:
                    self._release(start, ptr - start)
                rest = start + length - (ptr + need)
                if rest:
                    self._release(ptr + need, rest)
                return ptr
        return None

    def _release(self, ptr: int, length: int) -> None:
        """Give a block back: lower the bump pointer if it is on top, else file it (coalesced)."""
        blocks = self._free_blocks
        if ptr + length == self._top:
            self._top = ptr
            while blocks and blocks[-1][0] + blocks[-1][1] == self._top:
                self._top = blocks.pop()[0]
            return
        lo, hi = 0, len(blocks)
        while lo < hi:
            mid = (lo + hi) // 2
            if blocks[mid][0] < ptr:
                lo = mid + 1
            else:
                hi = mid
        end = ptr + length
        if lo < len(blocks) and blocks[lo][0] == end:  # merge with the next block
            end += blocks[lo][1]
            del blocks[lo]
        if lo > 0 and blocks[lo - 1][0] + blocks[lo - 1][1] == ptr:  # and with the previous
            ptr = blocks[lo - 1][0]
            blocks[lo - 1] = (ptr, end - ptr)
        else:
            blocks.insert(lo, (ptr, end - ptr))
