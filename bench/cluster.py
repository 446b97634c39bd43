"""A running Flowyard (API + workers + scheduler as real processes) for benchmarks to drive."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.environment import BenchEnvironment, processes

TERMINAL = {"completed", "failed", "cancelled"}


def flowyard_command(*args: str) -> list[str]:
    script = shutil.which("flowyard", path=os.path.dirname(sys.executable))
    return [script, *args] if script else [sys.executable, "-m", "api.cli", *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Connections(threading.local):
    """One keep-alive connection per thread (http.client connections are not shareable)."""

    connection: http.client.HTTPConnection | None = None


@dataclass
class FlowyardClient:
    """The REST client the scenarios start and read instances with.

    Plain http.client on a keep-alive connection per thread, not `requests`: this runs on
    the same two cores as the platform it measures, and `requests` spent 1.26 ms of CPU per
    `POST /execute` in this process against 0.28 ms here (bench/RESULTS.md, item 42).
    """

    base_url: str
    token: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._headers = {"Authorization": f"Bearer {self.token}",
                         "Content-Type": "application/json"}
        self._local = _Connections()

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        # gunicorn closes a keep-alive connection idle for 2 s; a request sent on it as it
        # closes is reset unread. Resend on a connection error (POST too: in a benchmark, a
        # rare extra run is harmless, a failed scenario is not), never on an answer.
        for attempt in range(3):
            connection = self._local.connection
            if connection is None:
                connection = http.client.HTTPConnection(*self._address, timeout=60)
                self._local.connection = connection
            try:
                connection.request(method, path, body=payload, headers=self._headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body: Any) -> Any:
        status, content = self._request("POST", path, body)
        if status >= 400:
            raise RuntimeError(f"POST {path}: {status} {content[:500]!r}")
        return json.loads(content)

    def get(self, path: str) -> Any:
        status, content = self._request("GET", path)
        if status >= 400:
            raise RuntimeError(f"GET {path}: {status} {content[:500]!r}")
        return json.loads(content)

    def create_workflow(self, name: str, workflow_data: dict[str, Any]) -> str:
        body = {"name": name, "workflow_data": workflow_data}
        return str(self.post("/api/workflows", body)["id"])

    def execute(self, workflow_id: str, payload: dict[str, Any] | None = None) -> str:
        return str(self.post(f"/api/workflows/{workflow_id}/execute",
                             {"input": payload or {}})["id"])

    def wait_finished(self, instance_id: str, timeout: float = 300.0,
                      poll: float = 0.005) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            instance = self.get(f"/api/workflow-instances/{instance_id}")
            if instance["status"] in TERMINAL:
                return dict(instance)
            if time.monotonic() > deadline:
                raise TimeoutError(f"instance {instance_id} still {instance['status']}")
            time.sleep(poll)

    def details(self, instance_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/workflow-instances/{instance_id}/details"))


def _admin_token(env: dict[str, str]) -> str:
    out = subprocess.run(flowyard_command("token", "create", "--role", "admin", "--name", "bench"),
                         env=env, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def _wait_ready(base_url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url}/readyz never answered 200")


@contextmanager
def flowyard_cluster(env: BenchEnvironment, *, workers: int = 2, concurrency: int = 2,
                     api_workers: int = 2, max_concurrent: int = 1000, pool: str = "threads",
                     extra_env: dict[str, str] | None = None) -> Iterator[FlowyardClient]:
    """API, `workers` worker processes (each `concurrency` slots) and a scheduler.

    With `pool="threads"` the workers run as the manifests' default pool does: the queues
    of pure node types (every bench workflow's), in threads; with "prefork", every queue in
    child processes, as `flowyard up` runs them."""
    # A 1,000-way fan-out/fan-in has 1,002 nodes: over the default 1,000-node limit.
    child_env = env.child_env(MAX_CONCURRENT_WORKFLOWS=str(max_concurrent),
                              FLOWYARD_RATE_LIMIT_PER_MINUTE="1000000",
                              FLOWYARD_MAX_NODES="2000", **(extra_env or {}))
    port = free_port()
    commands: Sequence[Sequence[str]] = [
        flowyard_command("api", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", str(api_workers)),
        # With their metrics served, as the manifests run them.
        flowyard_command("scheduler", "--metrics-port", str(free_port()),
                         "--metrics-address", "127.0.0.1"),
        *[flowyard_command("worker", "-c", str(concurrency), *_pool_options(pool),
                           "--loglevel", "WARNING",
                           "-n", f"bench{index}@%h", "--metrics-port", str(free_port()),
                           "--metrics-address", "127.0.0.1") for index in range(workers)],
    ]
    token = _admin_token(child_env)
    base_url = f"http://127.0.0.1:{port}"
    with processes(commands, child_env):
        _wait_ready(base_url)
        client = FlowyardClient(base_url, token)
        warm_up(client)
        yield client


def _pool_options(pool: str) -> list[str]:
    if pool == "threads":
        from engine.nodetypes import BUILTIN_NODE_TYPES
        from worker.pools import pure_queues

        # The queues a threads pool may run, as the manifests' default pool consumes them.
        return ["--pool", "threads", "-Q", ",".join(pure_queues(BUILTIN_NODE_TYPES))]
    return ["--pool", pool]


def chain_document(length: int, node_type: str = "noop") -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": node_type, "position": {"x": i * 100, "y": 0},
              "data": {"label": f"step {i}"}} for i in range(length)]
    edges = [{"id": f"e{i}", "source": f"n{i}", "target": f"n{i + 1}"}
             for i in range(length - 1)]
    return {"nodes": nodes, "edges": edges}


def fan_document(width: int) -> dict[str, Any]:
    """start -> `width` parallel noops -> join."""
    def node(node_id: str) -> dict[str, Any]:
        return {"id": node_id, "type": "noop", "position": {"x": 0, "y": 0},
                "data": {"label": node_id}}
    nodes = [node("start"), *[node(f"b{i}") for i in range(width)], node("join")]
    edges = [{"id": f"out{i}", "source": "start", "target": f"b{i}"} for i in range(width)]
    edges += [{"id": f"in{i}", "source": f"b{i}", "target": "join"} for i in range(width)]
    return {"nodes": nodes, "edges": edges}


def warm_up(client: FlowyardClient) -> None:
    """One small run so every worker has connected before anything is measured."""
    workflow_id = client.create_workflow("bench warm-up", chain_document(3))
    for _ in range(3):
        client.wait_finished(client.execute(workflow_id), timeout=120)
