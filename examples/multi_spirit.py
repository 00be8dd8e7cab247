"""Two Spirits in one Séance play ping-pong with numbered messages.

``ping`` and ``pong`` are two instances of ``spirits/pingpong.wasm``. Every message
goes through the Séance's message bus (the ``messaging`` Loa): ping sends a number,
pong answers every number waiting for it with that number plus one, and ping reads
the answer. The Séance dismisses both Spirits when the ``async with`` block ends.

Run it from anywhere::

    python examples/multi_spirit.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from vudo_runtime import Seance

SPIRITS = Path(__file__).resolve().parent.parent / "spirits"
PINGPONG = SPIRITS / "pingpong.wasm"
ROUNDS = 3


async def main() -> None:
    async with Seance() as seance:
        ping = await seance.summon("ping", PINGPONG)
        await seance.summon("pong", PINGPONG)
        assert ping.memory is not None

        n = 1
        for _ in range(ROUNDS):
            sent = await seance.invoke("ping", "send_number", "pong", 0, n)
            print(f"ping -> pong: {n}" + ("" if sent else " (refused)"))
            await seance.invoke("pong", "serve", 0)  # answers n + 1 to the sender
            reply = await seance.invoke("ping", "recv_number", 0)
            sender = ping.memory.read_string(await seance.invoke("ping", "last_sender"))
            print(f"{sender} -> ping: {reply}")
            n = reply + 1

        # A third Spirit joins; a broadcast reaches every member but the sender.
        await seance.summon("echo", PINGPONG)
        reached = await seance.invoke("ping", "broadcast_number", n)
        print(f"broadcast {n} from ping reached {reached} Spirits")
        for name in ("pong", "echo"):
            got = await seance.invoke(name, "recv_number", 0)
            print(f"  {name} got {got}")
        print(f"members: {', '.join(seance.names)}")
    print("séance dismissed")


if __name__ == "__main__":
    asyncio.run(main())
