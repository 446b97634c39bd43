"""`flowyard up` on embedded PostgreSQL and Redis: runs a workflow, stops cleanly, reuses data."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.cli.processes import (
    EXAMPLES,
    REPO,
    clean_env,
    descendants,
    flowyard,
    free_port,
    gone,
    http_ok,
    kill_tree,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

_TOKEN_LINE = re.compile(r"FLOWYARD_TOKEN=(\S+)")
_NODE_TASKS = {"flowyard.node.trigger", "flowyard.node.transform", "flowyard.node.condition"}


class Up:
    """One `flowyard up` process on a data dir, with its output in a file."""

    def __init__(self, data_dir: Path, out: Path) -> None:
        self.data_dir = data_dir
        self.out = out
        self.port = free_port()
        self.flower_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.out, "wb") as handle:
            self.process = subprocess.Popen(
                flowyard("up", "--data-dir", str(self.data_dir), "--port", str(self.port),
                         "--flower-port", str(self.flower_port)),
                env=clean_env(), stdout=handle, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=REPO,
            )
        wait_for(lambda: "Press Ctrl-C to stop." in self.output(), 180, "`flowyard up` banner",
                 alive=self.process)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def diagnostics(self) -> str:
        logs = sorted((self.data_dir / "logs").glob("*.log"))
        return self.output() + "".join(f"\n== {log.name}\n{tail(log)}" for log in logs)

    def stop_with(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(180)


@pytest.fixture
def up_factory(tmp_path: Path) -> Iterator[list[Up]]:
    ups: list[Up] = []
    yield ups
    for up in ups:
        if up.process is not None and up.process.poll() is None:
            up.process.send_signal(signal.SIGINT)
            try:
                up.process.wait(120)
            except subprocess.TimeoutExpired:
                kill_tree(up.process)
        _stop_leftover_postgres(up.data_dir)


def _stop_leftover_postgres(data_dir: Path) -> None:
    pid = _postmaster_pid(data_dir)
    if pid is not None and psutil.pid_exists(pid):
        psutil.Process(pid).kill()


def _postmaster_pid(data_dir: Path) -> int | None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _run_example(up: Up, token: str, name: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(FLOWYARD_URL=up.url, FLOWYARD_TOKEN=token)
    return subprocess.run(flowyard("run", str(EXAMPLES / name), "--wait", "--timeout", "180"),
                          env=env, capture_output=True, text=True, timeout=240, cwd=REPO)


def _flower_task_types(up: Up) -> set[str]:
    response = http_ok(f"http://127.0.0.1:{up.flower_port}/api/task/types")
    return set(response.json().get("task-types", [])) if response is not None else set()


def _platform_processes(up: Up) -> list[psutil.Process]:
    assert up.process is not None
    processes = descendants(up.process.pid)
    pg_pid = _postmaster_pid(up.data_dir)
    assert pg_pid is not None, "embedded PostgreSQL is not running"
    postmaster = psutil.Process(pg_pid)
    return [*processes, postmaster, *postmaster.children(recursive=True)]


def test_up_runs_a_workflow_stops_cleanly_and_reuses_its_data(
        tmp_path: Path, up_factory: list[Up]) -> None:
    first = Up(tmp_path / "data", tmp_path / "up1.out")
    up_factory.append(first)
    first.start()
    match = _TOKEN_LINE.search(first.output())
    assert match, first.diagnostics()
    token = match.group(1)
    assert http_ok(f"{first.url}/readyz") is not None

    # Without FLOWYARD_SECRET_KEYS the data dir's own key (0600, never printed) enables secrets.
    key_file = first.data_dir / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key not in first.output()
    created = requests.post(f"{first.url}/api/secrets", timeout=10,
                            json={"name": "UP_SECRET", "value": "up-secret-value"},
                            headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text

    result = _run_example(first, token, "data-pipeline.json")
    assert result.returncode == 0, result.stdout + result.stderr + first.diagnostics()
    assert "completed" in result.stdout

    # Flower saw each node type as a task of its own.
    wait_for(lambda: _NODE_TASKS <= _flower_task_types(first), 60,
             "Flower to list the node-type tasks")
    assert http_ok(f"http://127.0.0.1:{first.flower_port}/metrics") is not None

    processes = _platform_processes(first)
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert "worker" in names and "scheduler" in names and "flower" in names
    assert first.stop_with(signal.SIGINT) == 0, first.diagnostics()
    assert gone(processes) == [], [p.cmdline() for p in gone(processes)]
    assert not (first.data_dir / "postgres" / "postmaster.pid").exists()

    second = Up(first.data_dir, tmp_path / "up2.out")
    up_factory.append(second)
    second.start()
    # The admin token is printed on the first start only; the secret key is reused.
    assert "FLOWYARD_TOKEN=" not in second.output()
    assert key_file.read_text().strip() == key
    # The token and the workflow from the first run are still there.
    listed = requests.get(f"{second.url}/api/workflows", timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert "Example: data pipeline" in {item["name"] for item in listed.json()["items"]}
    processes = _platform_processes(second)
    assert second.stop_with(signal.SIGTERM) == 0, second.diagnostics()
    assert gone(processes) == []


def test_up_refuses_a_port_in_use_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            flowyard("up", "--data-dir", str(tmp_path / "data"), "--port", str(port),
                     "--flower-port", str(free_port())),
            env=clean_env(), capture_output=True, text=True, timeout=120, cwd=REPO,
        )
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"port {port} is already in use" in message and "--port" in message
    assert not (tmp_path / "data" / "postgres").exists(), "nothing starts when a port is taken"


def test_up_refuses_a_data_dir_of_another_version_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "flowyard.json").write_text('{"format": 99}')
    result = subprocess.run(
        flowyard("up", "--data-dir", str(data), "--port", str(free_port()),
                 "--flower-port", str(free_port())),
        env=clean_env(), capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "another --data-dir" in message
