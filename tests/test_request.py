"""Request/reply on the message bus: host to guest, guest to host, guest to guest."""

from __future__ import annotations

import asyncio

import pytest

from vudo_runtime import Message, RequestTimeout, Seance, SeanceError
from vudo_runtime.loas.messaging import MessageBus

# serve(): answer the next request on channel 0 with "re:" + its payload.
# ask(to_ptr, to_len): request "ping" from `to`; returns the request id.
# collect(): the next message's reply_to (its payload is left at 512).
SERVER_WAT = """
(module
  (import "vudo" "vudo_recv" (func $recv (param i32 i32 i32 i32 i32) (result i32)))
  (import "vudo" "vudo_request_id" (func $request_id (result i64)))
  (import "vudo" "vudo_reply_to" (func $reply_to (result i64)))
  (import "vudo" "vudo_reply" (func $reply (param i64 i32 i32) (result i32)))
  (import "vudo" "vudo_request" (func $request (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "re:")
  (data (i32.const 64) "ping")
  (func (export "serve") (result i32)
    (local $n i32)
    (local.set $n (call $recv (i32.const 0) (i32.const 128) (i32.const 64)
                              (i32.const 3) (i32.const 256)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -1))))
    (call $reply (call $request_id) (i32.const 0) (i32.add (local.get $n) (i32.const 3))))
  (func (export "last_request_id") (result i64) (call $request_id))
  (func (export "ask") (param $to i32) (param $len i32) (result i64)
    (call $request (local.get $to) (local.get $len) (i32.const 64) (i32.const 4)))
  (func (export "collect") (result i64)
    (if (i32.lt_s (call $recv (i32.const 0) (i32.const 128) (i32.const 64)
                              (i32.const 512) (i32.const 256))
                  (i32.const 0))
      (then (return (i64.const -1))))
    (call $reply_to))
)
"""


def test_host_asks_a_guest() -> None:
    async def main() -> None:
        async with Seance() as seance:
            server = await seance.summon("server", SERVER_WAT.encode())
            asking = asyncio.create_task(seance.request("server", b"hello", timeout=5))
            while not seance.pending("server"):
                await asyncio.sleep(0.001)
            assert await seance.invoke("server", "serve") == 1  # delivered
            assert await asking == b"re:hello"
            assert seance.bus.open_requests == 0
            assert await server.call("last_request_id") > 0

    asyncio.run(main())


def test_a_request_nobody_answers_times_out_and_a_late_reply_is_dropped() -> None:
    async def main() -> None:
        async with Seance() as seance:
            await seance.summon("server", SERVER_WAT.encode())
            with pytest.raises(RequestTimeout, match=r"did not reply within 0\.05s"):
                await seance.request("server", b"late", timeout=0.05)
            assert seance.bus.open_requests == 0
            assert await seance.invoke("server", "serve") == 0  # nobody waits any more

    asyncio.run(main())


def test_guest_to_guest() -> None:
    async def main() -> None:
        async with Seance() as seance:
            alice = await seance.summon("alice", SERVER_WAT.encode())
            await seance.summon("bob", SERVER_WAT.encode())
            assert alice.memory is not None
            name = alice.memory.alloc(3)
            alice.memory.write_bytes(name, b"bob")
            request_id = await seance.invoke("alice", "ask", name, 3)
            assert request_id > 0
            assert await seance.invoke("bob", "serve") == 1
            assert await seance.invoke("alice", "collect") == request_id  # the reply's reply_to
            assert alice.memory.read_bytes(512, 7) == b"re:ping"

    asyncio.run(main())


def test_guest_asks_the_host() -> None:
    async def main() -> None:
        async with Seance() as seance:
            alice = await seance.summon("alice", SERVER_WAT.encode())
            listening = asyncio.create_task(seance.receive("host", timeout=5))
            await asyncio.sleep(0)
            assert alice.memory is not None
            name = alice.memory.alloc(4)
            alice.memory.write_bytes(name, b"host")
            request_id = await seance.invoke("alice", "ask", name, 4)
            request = await listening
            assert (request.payload, request.request_id) == (b"ping", request_id)
            assert seance.reply(request, "pong")
            assert await seance.invoke("alice", "collect") == request_id
            assert alice.memory.read_bytes(512, 4) == b"pong"
            with pytest.raises(SeanceError, match="not a request"):
                seance.reply(Message("a", "b", b""), "x")

    asyncio.run(main())


def test_open_requests_are_dropped_when_the_requester_leaves() -> None:
    bus = MessageBus()
    bus.join("a")
    bus.join("b")
    request_id = bus.request("a", "b", b"?")
    assert request_id and bus.open_requests == 1
    bus.leave("a")
    assert bus.open_requests == 0
    assert not bus.reply("b", request_id, b"!")  # nobody to deliver to
    assert bus.request("a", "nobody", b"?") == 0 and bus.open_requests == 0
