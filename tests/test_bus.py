"""MessageBus bookkeeping: members that leave leave nothing behind, those who stay keep
their messages in order. Behaviour only (benchmarks/bus.py times ``leave``)."""

from __future__ import annotations

import asyncio

import pytest

from vudo_runtime import Message
from vudo_runtime.loas.messaging import MessageBus

STAYING = ("keeper-a", "keeper-b")


def _payloads(bus: MessageBus, name: str, channel: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    while (message := bus.recv(name, channel)) is not None:
        assert isinstance(message, Message) and message.to == name
        assert message.channel == channel
        out.append((message.sender, message.payload))
    return out


def test_members_that_leave_leave_no_state_and_the_rest_keep_their_order() -> None:
    n = 300
    bus = MessageBus()
    leavers = [f"spirit-{i}" for i in range(n)]
    for name in (*STAYING, *leavers):
        bus.join(name)
    # Every leaver has mail waiting on two channels and has mail waiting for others.
    for i, name in enumerate(leavers):
        assert bus.send(name, leavers[(i + 1) % n], b"next", 0)
        assert bus.send(name, leavers[(i + 7) % n], b"later", 3)
        assert bus.send(name, STAYING[i % 2], f"{i}".encode(), 0)
        assert bus.send(STAYING[i % 2], name, b"to-leaver", 1)
    assert bus.send("keeper-a", "keeper-b", b"a-to-b", 2)
    assert bus.pending(leavers[0], 0) == 1 and bus.pending(leavers[0], 1) == 1

    for name in leavers:
        bus.leave(name)

    assert bus.members == sorted(STAYING)
    # No queue, index entry or waiter list remains for anybody who left.
    assert set(bus._queues) <= set(STAYING)
    assert not bus._waiters
    for name in leavers[:5]:
        for channel in (0, 1, 3):
            assert bus.pending(name, channel) == 0
            assert bus.peek(name, channel) is None
            assert bus.recv(name, channel) is None
        assert not bus.send("keeper-a", name, b"too late")  # gone: nobody to send to
    assert set(bus._queues) <= set(STAYING)  # the failed sends made no queue either

    # What the leavers sent before leaving is still delivered, in the order it was sent.
    for k, keeper in enumerate(STAYING):
        assert bus.pending(keeper, 0) == n // 2
        expected = [(leavers[i], f"{i}".encode()) for i in range(k, n, 2)]
        assert _payloads(bus, keeper, 0) == expected
    assert _payloads(bus, "keeper-b", 2) == [("keeper-a", b"a-to-b")]

    # Drained queues are dropped too, and the remaining members still talk in order.
    assert bus._queues == {}
    for i in range(5):
        assert bus.send("keeper-b", "keeper-a", bytes([i]), 1)
    assert _payloads(bus, "keeper-a", 1) == [("keeper-b", bytes([i])) for i in range(5)]
    assert bus._queues == {}


def test_a_name_that_joins_again_starts_with_empty_queues() -> None:
    bus = MessageBus()
    bus.join("a")
    bus.join("b")
    assert bus.send("b", "a", b"old", 0) and bus.send("b", "a", b"old", 5)
    bus.leave("a")
    bus.join("a")
    assert bus.pending("a", 0) == 0 and bus.pending("a", 5) == 0
    assert bus.send("b", "a", b"new")
    assert bus.recv("a") == Message("b", "a", b"new", 0)
    assert bus.recv("a") is None


def test_requeue_puts_a_message_back_at_the_head() -> None:
    bus = MessageBus()
    bus.join("a")
    assert bus.send("x", "a", b"1") and bus.send("x", "a", b"2")
    first = bus.recv("a")
    assert first is not None
    bus.requeue(first)
    assert [m.payload for m in (bus.recv("a"), bus.recv("a"))] == [b"1", b"2"]
    assert bus._queues == {}


def test_queue_limit_holds_per_receiver_and_channel() -> None:
    bus = MessageBus(limit=2)
    bus.join("a")
    assert bus.send("x", "a", b"1") and bus.send("x", "a", b"2")
    assert not bus.send("x", "a", b"3")
    assert bus.send("x", "a", b"other channel", 1)
    assert bus.recv("a") is not None
    assert bus.send("x", "a", b"3")
    assert [m.payload for m in (bus.recv("a"), bus.recv("a"))] == [b"2", b"3"]


def test_a_zero_limit_refuses_everything_and_keeps_no_queue() -> None:
    bus = MessageBus(limit=0)
    bus.join("a")
    assert not bus.send("x", "a", b"1")
    assert bus._queues == {}


async def test_receive_leaves_no_waiters_behind() -> None:
    bus = MessageBus()
    bus.join("host")
    listening = [asyncio.create_task(bus.receive("host", timeout=5)) for _ in range(3)]
    await asyncio.sleep(0)  # the listeners register
    for i in range(3):
        assert bus.send("s", "host", bytes([i]))
    got = await asyncio.gather(*listening)
    assert sorted(m.payload for m in got) == [bytes([i]) for i in range(3)]
    with pytest.raises(TimeoutError):
        await bus.receive("host", timeout=0.01)
    assert not bus._waiters
    assert bus._queues == {}


async def test_a_receive_timeout_is_a_vudo_error_and_a_timeout_error() -> None:
    from vudo_runtime import BusTimeout, VudoError

    bus = MessageBus()
    bus.join("a")
    with pytest.raises(BusTimeout, match="no message for 'a'") as caught:
        await bus.receive("a", 0, timeout=0.05)
    assert isinstance(caught.value, VudoError) and isinstance(caught.value, TimeoutError)
