"""A subscriber that survives node failures, and a publisher, with ``wspool.client``.

Start a farm first, e.g. ``wspool dev --port 8080 --servers 3`` (nodes on 8081-8083), then:

    python examples/recovering_subscriber.py ws://127.0.0.1:8081/ws ws://127.0.0.1:8082/ws

Stop the node the subscriber is on (its id is printed): the client reconnects to the next
URL, resubscribes from the last offset it received, and the counter goes on without a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from wspool.client import Client, Data, Error, Resubscribed


async def publish(urls: list[str]) -> None:
    async with Client(list(reversed(urls))) as publisher:
        for n in range(1_000_000):
            await publisher.publish("counter", n)
            await asyncio.sleep(0.1)


async def subscribe(urls: list[str]) -> None:
    async with Client(urls, client_id="example-subscriber") as client:
        await client.subscribe("counter")
        print(f"subscribed on {client.server_id}")
        expected = None
        async for message in client.messages():
            match message:
                case Data(payload=n, offset=offset):
                    gap = "" if expected in (None, n) else f"  (expected {expected}!)"
                    print(f"{client.server_id}: {n} at {offset}{gap}")
                    expected = n + 1
                case Resubscribed(recovered=True, server_id=server):
                    print(f"reconnected to {server}; missed messages follow")
                case Resubscribed(recovered=False, server_id=server):
                    print(f"reconnected to {server}; history lost: reload state")
                    expected = None
                case Error(code=code, message=text):
                    print(f"error {code}: {text}")


async def main(urls: list[str]) -> None:
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(publish(urls))
        tasks.create_task(subscribe(urls))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:] or ["ws://127.0.0.1:8081/ws", "ws://127.0.0.1:8082/ws"]))
