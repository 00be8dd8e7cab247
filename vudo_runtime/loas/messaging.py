"""The ``messaging`` Loa and the per-Séance message bus behind it.

Both signature variants of DOL-ABI.md are provided; the module's declared import picks
one. Outside a Séance there is nobody to talk to: sends fail (0), receives find nothing.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vudo_runtime.errors import BusTimeout, RequestTimeout
from vudo_runtime.loa import HostContext, HostFunction, Loa
from vudo_runtime.module import Signature

#: Messages a receiver may have waiting per channel before sends to it fail.
DEFAULT_QUEUE_LIMIT = 1024


@attrs.frozen
class Message:
    """One message; a request carries its ``request_id``, a reply the ``reply_to`` of the
    request it answers (both 0 for a plain message)."""

    sender: str
    to: str
    payload: bytes
    channel: int = 0
    request_id: int = 0
    reply_to: int = 0


@attrs.define
class _Open:
    requester: str
    channel: int
    future: asyncio.Future[Message] | None


def _resolve(future: asyncio.Future[Message], message: Message) -> None:
    if not future.done():  # it may have timed out meanwhile
        future.set_result(message)


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
        # Open requests by id: who waits for the reply (a host future, or the requesting
        # member: its reply is queued for it like any message), and by member.
        self._requests: dict[int, _Open] = {}
        self._asked: dict[str, set[int]] = {}
        self._ids = itertools.count(1)

    def join(self, name: str) -> None:
        with self._lock:
            self._members.add(name)

    def leave(self, name: str) -> None:
        """Drop ``name`` and the messages waiting for it (on every channel)."""
        with self._lock:
            self._members.discard(name)
            self._queues.pop(name, None)
            for request_id in self._asked.pop(name, ()):  # replies it can no longer read
                self._requests.pop(request_id, None)

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

    def send(
        self,
        sender: str,
        to: str,
        payload: bytes,
        channel: int = 0,
        *,
        request_id: int = 0,
        reply_to: int = 0,
    ) -> bool:
        """Queue a message; False when ``to`` is unknown or its queue is full."""
        with self._lock:
            if to not in self._members:
                return False
            queue = self._queue(to, channel)
            if len(queue or ()) >= self.limit:
                return False
            if queue is None:
                queue = self._new_queue(to, channel)
            queue.append(Message(sender, to, bytes(payload), channel, request_id, reply_to))
            waiters = list(self._waiters.get(to, ()))
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return True

    # ---- request / reply -------------------------------------------------------------

    def request(self, sender: str, to: str, payload: bytes, channel: int = 0) -> int:
        """Send a request from member ``sender``: its reply will be queued for ``sender``
        (with ``reply_to`` set) on the same channel. Returns the request id, 0 when the
        request could not be sent (``to`` unknown, a queue full, too many open)."""
        with self._lock:
            if len(self._asked.get(sender, ())) >= self.limit:
                return 0
            request_id = next(self._ids)
            self._requests[request_id] = _Open(sender, channel, None)
            self._asked.setdefault(sender, set()).add(request_id)
        if not self.send(sender, to, payload, channel, request_id=request_id):
            self._close_request(request_id)
            return 0
        return request_id

    async def ask(
        self, sender: str, to: str, payload: bytes, channel: int = 0, timeout: float | None = None
    ) -> Message:
        """Send a request and wait for its reply (the host's side of :meth:`request`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Message] = loop.create_future()
        with self._lock:
            request_id = next(self._ids)
            self._requests[request_id] = _Open(sender, channel, future)
        try:
            if not self.send(sender, to, payload, channel, request_id=request_id):
                raise BusTimeout(
                    f"request to {to!r} could not be sent: it is not a member, or its queue "
                    f"on channel {channel} is full"
                )
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(
                f"{to!r} did not reply within {timeout}s (request {request_id}); a late reply "
                "is dropped. Raise timeout= or check that it answers with vudo_reply"
            ) from None
        finally:
            self._close_request(request_id)

    def reply(self, sender: str, request_id: int, payload: bytes) -> bool:
        """Answer request ``request_id``; False when nobody waits for it any more (it
        timed out, its requester left, or the id is unknown)."""
        with self._lock:
            open_ = self._requests.get(request_id)
        if open_ is None:
            return False
        future = open_.future
        if future is None:  # a member asked: its reply is a message in its queue
            sent = self.send(sender, open_.requester, payload, open_.channel, reply_to=request_id)
            if sent:
                self._close_request(request_id)
            return sent
        self._close_request(request_id)
        message = Message(sender, open_.requester, bytes(payload), open_.channel, 0, request_id)
        loop = future.get_loop()
        if loop.is_closed():
            return False
        loop.call_soon_threadsafe(_resolve, future, message)
        return True

    def _close_request(self, request_id: int) -> None:
        with self._lock:
            open_ = self._requests.pop(request_id, None)
            if open_ is not None and open_.future is None:
                asked = self._asked.get(open_.requester)
                if asked is not None:
                    asked.discard(request_id)
                    if not asked:
                        del self._asked[open_.requester]

    @property
    def open_requests(self) -> int:
        with self._lock:
            return len(self._requests)

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

    # The request id and reply_to of the message this Spirit received last.
    last = [0, 0]

    def received(message: Message) -> None:
        last[0], last[1] = message.request_id, message.reply_to

    def recv_spec() -> int:
        """Next message on channel 0 as a length-prefixed payload pointer; -1 when none."""
        bus = _bus(ctx)
        message = bus.recv(ctx.spirit_name) if bus is not None else None
        if message is None:
            return -1
        ptr = ctx.memory.write_bytes_prefixed(message.payload)
        received(message)
        return ptr

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
        received(message)
        return len(message.payload)

    def request(to_ptr: int, to_len: int, ptr: int, length: int, channel: int = 0) -> int:
        """A request id (> 0) whose reply will arrive as a message; 0 when not sent."""
        bus = _bus(ctx)
        to = ctx.read_str(to_ptr, to_len)
        payload = ctx.read_bytes(ptr, length)
        return bus.request(ctx.spirit_name, to, payload, channel) if bus is not None else 0

    def request_ts(to_ptr: int, to_len: int, channel: int, ptr: int, length: int) -> int:
        return request(to_ptr, to_len, ptr, length, channel)

    def reply(request_id: int, ptr: int, length: int) -> int:
        """1 when the reply reached its requester; 0 when nobody waits for it any more."""
        bus = _bus(ctx)
        payload = ctx.read_bytes(ptr, length)
        return int(bus is not None and bus.reply(ctx.spirit_name, request_id, payload))

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
        "vudo_request": [
            HostFunction(request, signature=Signature(("i32",) * 4, ("i64",))),
            HostFunction(request_ts, signature=Signature(("i32",) * 5, ("i64",))),
        ],
        "vudo_reply": HostFunction(reply, signature=Signature(("i64", "i32", "i32"), i32)),
        "vudo_request_id": HostFunction(lambda: last[0], signature=Signature((), ("i64",))),
        "vudo_reply_to": HostFunction(lambda: last[1], signature=Signature((), ("i64",))),
        "vudo_free_message": HostFunction(free_message, signature=Signature(i32, ())),
    }


MESSAGING = Loa(
    name="messaging",
    version="0.1.0",
    capabilities=(
        "vudo_send",
        "vudo_recv",
        "vudo_pending",
        "vudo_broadcast",
        "vudo_free_message",
        "vudo_request",
        "vudo_reply",
        "vudo_request_id",
        "vudo_reply_to",
    ),
    provides=provides,
)
