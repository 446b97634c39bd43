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


def test_a_worker_polls_one_list_per_queue_whatever_a_message_priority(
        redis_url: str) -> None:
    """Every message lands in its queue's own list, a priority or not, and a consumer's
    BRPOP names that list only (kombu's default would name four per queue)."""
    import redis

    queue_name = f"flowyard-priority-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    with Connection(redis_url, transport=TRANSPORT) as connection:
        with connection.SimpleQueue(queue_name) as queue:
            queue.put({"n": 1}, priority=9)
            queue.put({"n": 2})
            assert client.llen(queue_name) == 2
            assert client.keys(f"{queue_name}*") == [queue_name.encode()]
            channel: Any = queue.consumer.channel
            keys = [channel._q_for_pri(queue_name, step) for step in (0, 3, 6, 9)]
            assert set(keys) == {queue_name}
            received = [queue.get(timeout=5) for _ in range(2)]
            for message in received:
                message.ack()
            assert sorted(message.payload["n"] for message in received) == [1, 2]
            queue.queue.delete()
