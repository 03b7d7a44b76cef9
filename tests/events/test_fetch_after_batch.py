"""A caught-up batch is processed with fetching paused, so the next batch is fetched after it
commits (billing_events.kafka); nothing a paused getmany could return is ever lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from billing_events.kafka import _next_batch_fetched_after

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


@dataclass
class Record:
    offset: int


@dataclass
class FakeConsumer:
    """The part of AIOKafkaConsumer the helper uses, recording what it was asked."""

    assigned: set[TopicPartition] = field(default_factory=lambda: {A, B})
    paused_now: set[TopicPartition] = field(default_factory=set)
    buffered: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    drained: list[tuple[TopicPartition, ...]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused_now |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused_now -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return self.paused_now & self.assigned

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, Any]:
        assert partitions, "an unfiltered getmany could hand out records nobody processes"
        self.drained.append(partitions)
        return {tp: records for tp, records in self.buffered.items() if tp in partitions}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


async def test_fetching_is_paused_during_the_batch_and_resumed_after() -> None:
    kafka = FakeConsumer()
    async with _next_batch_fetched_after(kafka):  # type: ignore[arg-type]
        assert kafka.paused() == {A, B}
    assert kafka.paused() == set()
    assert [set(d) for d in kafka.drained] == [{A, B}]  # the stale prefetch is dropped, positions kept
    assert kafka.seeks == []


async def test_a_failed_batch_resumes_without_draining() -> None:
    kafka = FakeConsumer()
    with pytest.raises(RuntimeError):
        async with _next_batch_fetched_after(kafka):  # type: ignore[arg-type]
            raise RuntimeError("database away")  # the subscriber then seeks back to the batch
    assert kafka.paused() == set() and kafka.drained == []


async def test_after_a_rebalance_only_still_paused_partitions_are_drained() -> None:
    kafka = FakeConsumer()
    async with _next_batch_fetched_after(kafka):  # type: ignore[arg-type]
        kafka.assigned, kafka.paused_now = {B}, set()  # a new assignment: nothing paused in it
    assert kafka.drained == []  # getmany on B would return records that were never processed


async def test_records_a_drain_returns_are_put_back() -> None:
    kafka = FakeConsumer(buffered={A: [Record(7), Record(8)]})
    async with _next_batch_fetched_after(kafka):  # type: ignore[arg-type]
        pass
    assert kafka.seeks == [(A, 7)]
