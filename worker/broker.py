"""kombu's Redis transport, minus a client object built for every command and the
priority lists no message uses.

kombu's Redis channel builds a new `redis.Redis` for each publish and for each delivery's
and ack's bookkeeping; building one (~75 µs: its response callbacks) costs more than the
LPUSH it then sends. This channel keeps one per connection pool instead: a `redis.Redis`
is safe to share, as each command checks a connection out of the pool. Celery uses this
transport for `redis://` and `rediss://` broker URLs (`celery_config`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from kombu.transport import redis as kombu_redis

TRANSPORT = "worker.broker:Transport"


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    # kombu keeps a Redis list per queue and priority step ([0, 3, 6, 9] by default), and a
    # worker's BRPOP, sent again after every message, names each list of each queue it
    # consumes: 4 x 9 keys for a default worker, built anew each time. Flowyard never sets
    # a message priority (instance priority is decided in PostgreSQL, at admission), so
    # every message is in the first list: one step names only that one (bench/RESULTS.md,
    # item 57).
    priority_steps = [0]
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's BRPOP client: kombu already keeps that one
            return super()._create_client(asynchronous=True)
        pool = self.pool
        # A new pool (after fork, or after kombu dropped a broken one) gets a new client.
        if self._shared_client is None or self._shared_client.connection_pool is not pool:
            self._shared_client = super()._create_client()
        return self._shared_client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """This transport for a plain Redis URL; None (kombu's choice) for any other broker."""
    return TRANSPORT if urlparse(broker_url).scheme in ("redis", "rediss") else None
