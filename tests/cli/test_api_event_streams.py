"""`flowyard api` under gunicorn: open event streams never take every thread, nor hold up
a stop.

Each open stream holds a gunicorn thread while it lasts. Before streams were capped, as many
watchers as the API had threads left it answering nothing else, its health probes included;
before a stop ended them, one watcher held every stop for gunicorn's whole graceful timeout.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.cli.processes import (
    admin_token,
    clean_env,
    flowyard,
    free_port,
    http_ok,
    started,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ANSWER_SECONDS = 10  # a request the API can serve answers well within this


class _Api:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_SECONDS)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
        connection = self.connect()
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Authorization": f"Bearer {self.token}",
                                        "Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            connection.close()

    def open_stream(self, instance_id: str) -> tuple[http.client.HTTPConnection,
                                                     http.client.HTTPResponse]:
        """A stream's connection and answer: a 200's first event line read, any other's body
        left to the caller."""
        connection = self.connect()
        connection.request("GET", f"/api/workflow-instances/{instance_id}/events",
                           headers={"Authorization": f"Bearer {self.token}"})
        response = connection.getresponse()
        if response.status == 200:
            assert response.readline().startswith(b"event: status")
        return connection, response


@contextmanager
def _streams_held(api: _Api, instance_id: str, count: int) -> Iterator[
        list[http.client.HTTPConnection]]:
    opened = []
    try:
        for _ in range(count):
            connection, response = api.open_stream(instance_id)
            opened.append(connection)
            assert response.status == 200
        yield opened
    finally:
        for connection in opened:
            connection.close()


@contextmanager
def _api_with_a_running_instance(tmp_path: Path, database_url: str, redis_url: str,
                                 ) -> Iterator[tuple[_Api, str, subprocess.Popen[bytes], Path]]:
    """`flowyard api` as one process of three threads, two of which may stream (easy to
    starve), and an instance that stays running (no worker runs here), so its streams stay
    open."""
    port = free_port()
    log = tmp_path / "api.log"
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    api = _Api(port, admin_token(database_url))
    with started(flowyard("api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                          "--threads", "3", "--event-streams", "2"), env, log) as process:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 120, "the API's /readyz",
                 alive=process)
        status, workflow = api.call("POST", "/api/workflows", {
            "name": "watched", "workflow_data": {"nodes": [
                {"id": "a", "type": "noop", "position": {"x": 0, "y": 0}, "data": {}}],
                "edges": []}})
        assert status == 201, workflow
        status, instance = api.call("POST", f"/api/workflows/{workflow['id']}/execute",
                                    {"input": {}})
        assert status == 202, instance
        yield api, str(instance["id"]), process, log


def test_streams_beyond_their_slots_are_refused_and_requests_are_still_answered(
        tmp_path: Path, database_url: str, redis_url: str) -> None:
    with _api_with_a_running_instance(tmp_path, database_url, redis_url) as (
            api, instance_id, _, log):
        with _streams_held(api, instance_id, 2) as held:
            connection, refused = api.open_stream(instance_id)
            assert refused.status == 503, tail(log)  # before reading: a stream never ends
            body = json.loads(refused.read())
            connection.close()
            assert refused.getheader("Retry-After") == "10"
            assert body["error"]["code"] == "too_many_streams"
            # Every slot taken, and the API still answers everything else.
            assert http_ok(f"http://127.0.0.1:{api.port}/healthz"), tail(log)
            status, read = api.call("GET", f"/api/workflow-instances/{instance_id}")
            assert status == 200 and read["status"] in ("pending", "running")
            # A watcher that goes away frees its slot once the stream's heartbeat finds
            # the connection closed: within two heartbeats.
            held[0].close()
            wait_for(lambda: _stream_accepted(api, instance_id), 60,
                     "a slot freed by a closed stream")


def test_a_stop_ends_open_streams_instead_of_waiting_for_them(
        tmp_path: Path, database_url: str, redis_url: str) -> None:
    with _api_with_a_running_instance(tmp_path, database_url, redis_url) as (
            api, instance_id, process, log):
        connection, stream = api.open_stream(instance_id)
        assert stream.status == 200
        process.send_signal(signal.SIGTERM)
        # Read to the end: the stream's last words say why it ended. (Left open, gunicorn
        # would close it only after its 30 s graceful timeout, without a word.)
        try:
            rest = stream.read()
        except http.client.IncompleteRead as cut:  # the connection closed mid-stream
            rest = cut.partial
        connection.close()
        assert rest.endswith(
            b": the server is stopping; reconnect to follow this instance\n\n"), tail(log)
        assert process.wait(60) == 0, tail(log)


def _stream_accepted(api: _Api, instance_id: str) -> bool:
    connection, response = api.open_stream(instance_id)
    connection.close()
    if response.status == 200:
        return True
    time.sleep(0.5)
    return False


def test_event_streams_must_leave_a_thread_for_requests() -> None:
    result = subprocess.run(flowyard("api", "--threads", "2", "--event-streams", "2"),
                            env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--event-streams (2) must be below --threads (2)" in result.stderr
