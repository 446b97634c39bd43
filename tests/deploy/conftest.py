"""Deployment tests: render the kustomize overlays once per session and read the manifests.

Rendering uses `kubectl kustomize` (kustomize built into kubectl, no cluster needed). Without
kubectl the manifest tests skip locally but fail under CI=true, so CI never passes by skipping.
"""

from __future__ import annotations

import ast
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS_DIR = DEPLOY / "k8s" / "overlays"
OVERLAYS = sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# The console script installed next to this interpreter: what the image's ENTRYPOINT runs.
FLOWYARD = shutil.which("flowyard", path=str(Path(sys.executable).parent)) or "flowyard"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Rendered:
    """One overlay rendered to plain objects."""

    overlay: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{self.overlay}: no {kind} {name}")

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in WORKLOAD_KINDS]

    def workers(self) -> list[dict[str, Any]]:
        return [
            o for o in self.of_kind("Deployment")
            if o["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
        ]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def worker_queues(deployment: dict[str, Any]) -> list[str]:
    """The queues a worker Deployment consumes, from its `-Q a,b` argument."""
    args = pod_spec(deployment)["containers"][0]["args"]
    assert args[0] == "worker", f"{deployment['metadata']['name']} does not run `flowyard worker`"
    for flag in ("-Q", "--queues"):
        if flag in args:
            return [q for q in args[args.index(flag) + 1].split(",") if q]
    raise AssertionError(f"{deployment['metadata']['name']} names no queues (-Q)")


def settings_variable_names() -> set[str]:
    """Every variable `Settings.from_env` reads, taken from its source (`read("NAME", ...)`)."""
    tree = ast.parse((REPO / "models" / "settings.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "read"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is required in CI to render the kustomize overlays")
        pytest.skip("kubectl not installed: cannot render kustomize overlays")
    return path


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> Iterator[dict[str, Rendered]]:
    assert OVERLAYS, f"no overlays under {OVERLAYS_DIR}"
    yield {name: Rendered(name, render(OVERLAYS_DIR / name)) for name in OVERLAYS}


@pytest.fixture(scope="module")
def private_database_url() -> Iterator[str]:
    """A migrated database of this module's own, so processes started here (a scheduler's
    reconciler) never act on rows other tests left in the session database."""
    import psycopg

    from migrations import runner

    admin_url = os.environ.get(
        "FLOWYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"flowyard_test_deploy_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    try:
        runner.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
