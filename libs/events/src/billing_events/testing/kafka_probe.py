"""Read and write topics directly, as a consuming team would: no consumer group, no project code
between the test and the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from billing_contracts.envelope import Envelope, InvalidEvent, decode, is_current
from billing_events.testing import PATIENCE
from billing_events.testing.signing import signed_headers


class TopicReader:
    """Collects every message of some topics from the beginning, decoded where possible."""

    def __init__(self, bootstrap_servers: str, *topics: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records: list[Any] = []
        self.envelopes: list[Envelope[Any]] = []
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await self._consumer.start()
        partitions = []
        for topic in self._topics:
            found = None
            for _ in range(100):
                found = self._consumer.partitions_for_topic(topic)
                if found:
                    break
                await self._consumer._client.force_metadata_update()  # topic may be new
                await asyncio.sleep(0.1)
            if not found:
                raise RuntimeError(f"topic {topic} does not exist")
            partitions += [TopicPartition(topic, p) for p in found]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            if not batches:
                continue
            async with self._changed:
                for records in batches.values():
                    for record in records:
                        self.records.append(record)
                        try:
                            self.envelopes.append(decode(record.value))
                        except InvalidEvent:
                            pass
                self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[Envelope[Any]]], bool], timeout: float = PATIENCE, what: str = "events"
    ) -> list[Envelope[Any]]:
        async def satisfied() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.envelopes))

        try:
            await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            seen = [f"{e.event_type}({e.account})" for e in self.envelopes][-20:]
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {seen}") from None
        return self.envelopes

    async def wait_for_type(self, event_type: str, count: int = 1, timeout: float = PATIENCE, **fields: Any) -> list[Envelope[Any]]:
        def matching(envelopes: list[Envelope[Any]]) -> list[Envelope[Any]]:
            return [
                e for e in envelopes
                if e.event_type == event_type and is_current(e)
                and all(getattr(e.payload, k, getattr(e, k, None)) == v for k, v in fields.items())
            ]

        await self.wait_for(lambda envs: len(matching(envs)) >= count, timeout, f"{count} x {event_type} {fields}")
        return matching(self.envelopes)

    async def __aexit__(self, *_: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()


class RawProducer:
    """Publishes envelopes or arbitrary bytes, keyed like the suite keys them; an envelope
    signed by the test key of the producer it names (:mod:`billing_events.testing.signing`)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=2)

    async def __aenter__(self) -> RawProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(self, topic: str, envelope: Envelope[Any]) -> None:
        await self._producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.account.encode(),
                                           headers=signed_headers(envelope))

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None,
                       headers: list[tuple[str, bytes]] | None = None) -> None:
        await self._producer.send_and_wait(topic, value, key=key, headers=headers)

    async def send_many(self, topic: str, envelopes: list[Envelope[Any]]) -> None:
        futures = [
            await self._producer.send(topic, e.to_bytes(), key=e.account.encode(), headers=signed_headers(e))
            for e in envelopes
        ]
        await asyncio.gather(*futures)
