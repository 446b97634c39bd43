"""A cap on the server-sent event streams one API process holds open at once.

Under gunicorn's threaded workers an open stream holds a thread for as long as it lasts (up
to an hour). Uncapped, as many watchers as a process has threads would leave it none for any
other request, its health probes included. `flowyard api` lets fewer of a process's threads
stream than it has (`--event-streams`, half of `--threads` by default), and a stream asked
for when every slot is taken is refused at once. Must not block: a caller gets a slot now or
an error.

When the process stops (gunicorn's SIGTERM), its streams are told to end (`end_all`): a
stream lasts up to an hour, and gunicorn would otherwise wait its whole graceful timeout for
them before the process could exit. A watcher's client reconnects, to a server still running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask, current_app

from api.errors import StreamLimitError

_EXTENSION_KEY = "flowyard.stream_slots"
# What a refused client is told to wait; streams last minutes, so not less.
RETRY_AFTER_SECONDS = 10


class StreamSlots:
    """`limit` slots, taken without waiting (None: as many as asked for), and the signal
    for every open stream to end."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit else None
        # Set once, when the process stops: streams end at their next poll.
        self.ending = threading.Event()

    def end_all(self) -> None:
        """Tell every open stream, and every later one, to end. Safe in a signal handler:
        nothing else in the handling thread takes the event's lock."""
        self.ending.set()

    def take(self) -> Callable[[], None]:
        """A slot, as the function that gives it back (calls after the first do nothing).

        Raises: StreamLimitError, when every slot is taken.
        """
        if self.limit is None:
            return _nothing
        if self._free is None or not self._free.acquire(blocking=False):
            raise StreamLimitError(
                f"this API process already holds its {self.limit} live event streams; retry "
                f"in {RETRY_AFTER_SECONDS} s, or poll GET /api/workflow-instances/<id>",
                details={"event_streams": self.limit},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        free, given_back = self._free, threading.Lock()

        def give_back() -> None:
            if given_back.acquire(blocking=False):
                free.release()

        return give_back


def init_stream_slots(app: Flask, limit: int | None) -> None:
    """Cap the app's open event streams at `limit`; None leaves them uncapped (an app no
    threaded server serves, such as a test client's)."""
    app.extensions[_EXTENSION_KEY] = StreamSlots(limit)


def stream_slots_of(app: Flask) -> StreamSlots:
    slots: StreamSlots = app.extensions[_EXTENSION_KEY]
    return slots


def stream_slots() -> StreamSlots:
    """The current app's slots."""
    return stream_slots_of(current_app)


def _nothing() -> None:
    return None
