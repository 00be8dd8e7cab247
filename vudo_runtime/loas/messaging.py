"""The ``messaging`` Loa and the per-Séance message bus behind it.

Both signature variants of DOL-ABI.md are provided; the module's declared import picks
one. Outside a Séance there is nobody to talk to: sends fail (0), receives find nothing.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vudo_runtime.errors import BusTimeout
from vudo_runtime.loa import HostContext, HostFunction, Loa
from vudo_runtime.module import Signature

#: Messages a receiver may have waiting per channel before sends to it fail.
DEFAULT_QUEUE_LIMIT = 1024


@attrs.frozen
class Message:
    sender: str
    to: str
    payload: bytes
    channel: int = 0


class MessageBus:
    """Bounded FIFO queues per (receiver, channel); thread-safe, with async waiters.

    Queues are indexed by receiver first (``receiver -> channel -> queue``), so that
    :meth:`leave` drops a member's queues without looking at anybody else's: its cost
    is the member's own messages, not the size of the Séance. An emptied queue is
    dropped, and so is a receiver left with no queue. Messages the leaver sent that are
    still queued for others stay there (they were sent; their receivers may read them).
    """

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.limit = limit
        self._queues: dict[str, dict[int, collections.deque[Message]]] = {}
        self._members: set[str] = set()
        self._lock = threading.Lock()
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def join(self, name: str) -> None:
        with self._lock:
            self._members.add(name)

    def leave(self, name: str) -> None:
        """Drop ``name`` and the messages waiting for it (on every channel)."""
        with self._lock:
            self._members.discard(name)
            self._queues.pop(name, None)

    def _queue(self, name: str, channel: int) -> collections.deque[Message] | None:
        """The queue of ``name`` on ``channel``, None if there is none (under the lock)."""
        channels = self._queues.get(name)
        return channels.get(channel) if channels is not None else None

    def _new_queue(self, name: str, channel: int) -> collections.deque[Message]:
        """The queue of ``name`` on ``channel``, made if missing (under the lock)."""
        channels = self._queues.setdefault(name, {})
        queue = channels.get(channel)
        if queue is None:
            queue = channels[channel] = collections.deque()
        return queue

    def _popleft(self, name: str, channel: int, queue: collections.deque[Message]) -> Message:
        """Dequeue the head of a non-empty queue, dropping the queue once empty."""
        message = queue.popleft()
        if not queue:
            channels = self._queues[name]
            del channels[channel]
            if not channels:
                del self._queues[name]
        return message

    @property
    def members(self) -> list[str]:
        with self._lock:
            return sorted(self._members)

    def send(self, sender: str, to: str, payload: bytes, channel: int = 0) -> bool:
        """Queue a message; False when ``to`` is unknown or its queue is full."""
        with self._lock:
            if to not in self._members:
                return False
            queue = self._queue(to, channel)
            if len(queue or ()) >= self.limit:
                return False
            if queue is None:
                queue = self._new_queue(to, channel)
            queue.append(Message(sender, to, bytes(payload), channel))
            waiters = list(self._waiters.get(to, ()))
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return True

    def broadcast(self, sender: str, payload: bytes, channel: int = 0) -> int:
        """Send to every other member; returns how many accepted the message."""
        return sum(self.send(sender, m, payload, channel) for m in self.members if m != sender)

    def pending(self, name: str, channel: int = 0) -> int:
        with self._lock:
            queue = self._queue(name, channel)
            return len(queue) if queue else 0

    def peek(self, name: str, channel: int = 0) -> Message | None:
        with self._lock:
            queue = self._queue(name, channel)
            return queue[0] if queue else None

    def recv_if(
        self, name: str, channel: int, fits: Callable[[Message], bool]
    ) -> tuple[Message | None, bool]:
        """Atomically: the next message and whether it fit (it is dequeued only then)."""
        with self._lock:
            queue = self._queue(name, channel)
            if not queue:
                return None, False
            if not fits(queue[0]):
                return queue[0], False
            return self._popleft(name, channel, queue), True

    def requeue(self, message: Message) -> None:
        """Put a dequeued message back at the head of its queue (delivery failed)."""
        with self._lock:
            self._new_queue(message.to, message.channel).appendleft(message)

    def recv(self, name: str, channel: int = 0) -> Message | None:
        with self._lock:
            queue = self._queue(name, channel)
            return self._popleft(name, channel, queue) if queue else None

    async def receive(self, name: str, channel: int = 0, timeout: float | None = None) -> Message:
        """Wait for the next message to ``name`` (for a host that listens)."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._waiters.setdefault(name, []).append(entry)
        try:
            async with asyncio.timeout(timeout):
                while (message := self.recv(name, channel)) is None:
                    event.clear()
                    if self.pending(name, channel):
                        continue
                    await event.wait()
                return message
        except TimeoutError:
            raise BusTimeout(
                f"no message for {name!r} on channel {channel} in {timeout}s; send one first "
                "or raise timeout="
            ) from None
        finally:
            with self._lock:
                waiters = self._waiters[name]
                waiters.remove(entry)
                if not waiters:  # no state kept for names nobody listens for any more
                    del self._waiters[name]


def _bus(ctx: HostContext) -> MessageBus | None:
    seance = ctx.seance
    return getattr(seance, "bus", None) if seance is not None else None


def provides(ctx: HostContext) -> Mapping[str, Any]:
    """Messaging for one Spirit; both the spec and the TypeScript variants."""

    def send(to_ptr: int, to_len: int, ptr: int, length: int, channel: int = 0) -> int:
        bus = _bus(ctx)
        to = ctx.read_str(to_ptr, to_len)
        payload = ctx.read_bytes(ptr, length)
        return int(bus is not None and bus.send(ctx.spirit_name, to, payload, channel))

    def send_ts(to_ptr: int, to_len: int, channel: int, ptr: int, length: int) -> int:
        return send(to_ptr, to_len, ptr, length, channel)

    def recv_spec() -> int:
        """Next message on channel 0 as a length-prefixed payload pointer; -1 when none."""
        bus = _bus(ctx)
        message = bus.recv(ctx.spirit_name) if bus is not None else None
        if message is None:
            return -1
        return ctx.memory.write_bytes_prefixed(message.payload)

    def recv_ts(channel: int, from_buf: int, from_max: int, buf: int, buf_max: int) -> int:
        """Payload length; -1 none; -2 a buffer is too small (the message stays queued)."""
        bus = _bus(ctx)
        if bus is None:
            return -1

        def fits(m: Message) -> bool:
            return len(m.sender.encode()) <= from_max and len(m.payload) <= buf_max

        message, taken = bus.recv_if(ctx.spirit_name, channel, fits)
        if message is None:
            return -1
        if not taken:
            return -2
        try:
            ctx.memory.write_bytes(from_buf & 0xFFFFFFFF, message.sender.encode())
            ctx.memory.write_bytes(buf & 0xFFFFFFFF, message.payload)
        except BaseException:
            bus.requeue(message)  # a bad buffer pointer must not lose the message
            raise
        return len(message.payload)

    def pending(channel: int = 0) -> int:
        bus = _bus(ctx)
        return bus.pending(ctx.spirit_name, channel) if bus is not None else 0

    def broadcast(ptr: int, length: int) -> int:
        bus = _bus(ctx)
        payload = ctx.read_bytes(ptr, length)
        return bus.broadcast(ctx.spirit_name, payload) if bus is not None else 0

    def free_message(ptr: int) -> None:
        if ptr >= 0:
            ctx.memory.free(ptr & 0xFFFFFFFF)

    i32 = ("i32",)
    return {
        "vudo_send": [
            HostFunction(send, signature=Signature(("i32",) * 4, i32)),
            HostFunction(send_ts, signature=Signature(("i32",) * 5, i32)),
        ],
        "vudo_recv": [
            HostFunction(recv_spec, signature=Signature((), i32)),
            HostFunction(recv_ts, signature=Signature(("i32",) * 5, i32)),
        ],
        "vudo_pending": [
            HostFunction(pending, signature=Signature((), i32)),
            HostFunction(pending, signature=Signature(i32, i32)),
        ],
        "vudo_broadcast": HostFunction(broadcast, signature=Signature(("i32",) * 2, i32)),
        "vudo_free_message": HostFunction(free_message, signature=Signature(i32, ())),
    }


MESSAGING = Loa(
    name="messaging",
    version="0.1.0",
    capabilities=("vudo_send", "vudo_recv", "vudo_pending", "vudo_broadcast", "vudo_free_message"),
    provides=provides,
)
