"""The broker transport: kombu's Redis transport with one client object per connection pool."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kombu import Connection

from worker.broker import TRANSPORT, Transport, transport_for
from worker.celery_app import make_celery


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/3", TRANSPORT),
    ("rediss://cache.internal:6380/0", TRANSPORT),
    ("redis+socket:///run/redis.sock", None),
    ("amqp://guest@127.0.0.1//", None),
])
def test_only_plain_redis_urls_get_this_transport(url: str, expected: str | None) -> None:
    assert transport_for(url) == expected


def test_a_channel_builds_one_client_per_connection_pool(redis_url: str) -> None:
    with Connection(redis_url, transport=TRANSPORT) as connection:
        channel: Any = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        assert first.connection_pool is channel.pool
        # As after a fork: kombu drops its pools, and the next command must use the new one.
        channel._disconnect_pools()
        renewed = channel._create_client()
        assert renewed is not first and renewed.connection_pool is channel.pool
        assert renewed.ping()


def test_the_worker_app_sends_and_receives_through_it(settings: Any) -> None:
    app = make_celery(settings)
    queue_name = f"flowyard-broker-test-{uuid.uuid4().hex[:8]}"
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        with connection.SimpleQueue(queue_name) as queue:
            for number in range(3):
                queue.put({"number": number})
            received = []
            for _ in range(3):
                message = queue.get(timeout=5)
                received.append(message.payload["number"])
                message.ack()
            assert received == [0, 1, 2]
            queue.queue.delete()
