"""An example consumer of the billing suite's events, with nothing but aiokafka.

It follows the ledger topic and prints every account's balance as it changes, the way a
platform team's service would: its own consumer group, offsets committed only after an event
is handled, duplicates (delivery is at least once) recognised by the envelope's ``event_id``.

    python balance_watcher.py --bootstrap 127.0.0.1:9092 [--topic-prefix P] [--max-events N]

Everything it relies on is in docs/events.md: the topic name, the key (the account number) and
the envelope's fields. A real consumer would keep its seen ids in its own database, in the same
transaction as whatever it does with the event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer


def kopecks_to_text(minor: int, currency: str) -> str:
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units}.{cents:02d} {currency}"


async def watch(bootstrap: str, topic_prefix: str, group: str, max_events: int | None) -> int:
    consumer = AIOKafkaConsumer(
        f"{topic_prefix}billing.ledger",
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,  # commit after handling, never before
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    seen: set[str] = set()
    handled = 0
    await consumer.start()
    try:
        async for record in consumer:
            event = json.loads(record.value)
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                if event["event_type"] == "BalanceChanged" and event["schema_version"] == 1:
                    main = event["payload"]["main"]
                    print(f"{record.key.decode()} {kopecks_to_text(main['minor'], main['currency'])}", flush=True)
                    handled += 1
            await consumer.commit()
            if max_events is not None and handled >= max_events:
                break
    finally:
        await consumer.stop()
    return handled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, host:port")
    parser.add_argument("--topic-prefix", default="", help="The deployment's topic prefix, if any")
    parser.add_argument("--group", default="example-balance-watcher")
    parser.add_argument("--max-events", type=int, default=None, help="Stop after this many balances")
    args = parser.parse_args()
    try:
        asyncio.run(watch(args.bootstrap, args.topic_prefix, args.group, args.max_events))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
