"""Clients started before the brokers answer are started again, not given up on."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError

from billing_events import kafka


async def test_a_start_refused_once_is_tried_again() -> None:
    attempts = []

    async def start() -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise KafkaConnectionError("brokers still starting")

    await kafka._start_with_retry(start, what="admin client")
    assert attempts == [1, 2]
