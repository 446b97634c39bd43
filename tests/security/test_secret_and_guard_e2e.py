"""Through real workers: secrets reach only the target, the guard refuses loopback targets.

One workflow runs on a real worker and scheduler. Its `http` steps send a secret to an
allowed loopback server that echoes it back, call a secret URL that answers 403 (its error
message would carry the URL), and try loopback targets the guard must refuse (a port not
allowed, `localhost`, `[::ffff:127.0.0.1]`, `[::1]`, a redirect to loopback). Then the API
responses, events, step records and process logs are searched for the secret values, and
the refused listeners must have seen no connection at all.
"""

from __future__ import annotations

import json
import secrets
import socket
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import delete, select, text

from models.db import transaction
from models.instance import WorkflowExecution, WorkflowInstance
from models.secret_store import put_secret
from models.security import Secret
from tests.e2e.helpers import edge, make_workflow, node, start, wait_status
from tests.processes import scheduler_process, worker_process
from tests.security.listeners import CountingServer, Listener

pytestmark = pytest.mark.slow

TOKEN = f"tok-{secrets.token_hex(12)}"
HOOK_KEY = f"key-{secrets.token_hex(12)}"
SECRET_NAMES = ("SEC_E2E_TOKEN", "SEC_E2E_HOOK_URL")


def _echo(handler: BaseHTTPRequestHandler) -> None:
    """Echo the Authorization header (a careless API), or deny, or redirect to loopback."""
    if handler.path.startswith("/deny"):
        status, body = 403, b'{"error": "denied"}'
    elif handler.path.startswith("/redirect"):
        handler.send_response(302)
        handler.send_header("Location", handler.server.redirect_target)  # type: ignore[attr-defined]
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    else:
        status = 200
        body = json.dumps({"auth": handler.headers.get("Authorization")}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("X-Echo", handler.headers.get("Authorization") or "")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, CountingServer]]:
    with Listener(responder=_echo) as echo, Listener() as refused:
        echo.redirect_target = f"http://127.0.0.1:{refused.port}/internal"  # type: ignore[attr-defined]
        if _ipv6_loopback():
            with Listener("::1") as refused_v6:
                yield {"echo": echo, "refused": refused, "refused_v6": refused_v6}
        else:
            yield {"echo": echo, "refused": refused}


@pytest.fixture(scope="module")
def secure_settings(settings: Any, servers: dict[str, CountingServer]) -> Any:
    # Only the echo server's exact host:port is opened; everything else stays refused.
    return settings.replace(secret_keys=(Fernet.generate_key().decode(),),
                            http_allowed_hosts=(f"127.0.0.1:{servers['echo'].port}",))


@pytest.fixture(scope="module")
def runtime(secure_settings: Any) -> Iterator[Any]:
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    rt = build_runtime(secure_settings)
    make_celery(secure_settings, rt)
    with transaction(rt.session_factory) as session:
        put_secret(session, secure_settings, SECRET_NAMES[0], f"Bearer {TOKEN}")
        hook = f"http://127.0.0.1:{_port(rt)}/deny?key={HOOK_KEY}"
        put_secret(session, secure_settings, SECRET_NAMES[1], hook)
    try:
        yield rt
    finally:
        # These secrets are committed in the session database: remove them for other tests.
        with transaction(rt.session_factory) as session:
            session.execute(delete(Secret).where(Secret.name.in_(SECRET_NAMES)))
        rt.engine.dispose()


def _port(rt: Any) -> int:
    return int(rt.settings.http_allowed_hosts[0].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def cluster(secure_settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    keys = {"FLOWYARD_SECRET_KEYS": ",".join(secure_settings.secret_keys)}
    with worker_process(secure_settings, concurrency=2, extra_env=keys) as worker, \
            scheduler_process(secure_settings, extra_env=keys) as sched:
        yield {"worker": worker, "scheduler": sched}


def _http(node_id: str, url: Any, **config: Any) -> dict[str, Any]:
    return node(node_id, "http", {"method": "GET", "url": url, "timeout_seconds": 5, **config},
                on_error="continue")


def _workflow(runtime: Any, servers: dict[str, CountingServer]) -> uuid.UUID:
    echo, refused = servers["echo"].port, servers["refused"].port
    calls = [
        _http("call", f"http://127.0.0.1:{echo}/echo",
              headers={"Authorization": {"$secret": SECRET_NAMES[0]}}),
        _http("hook", {"$secret": SECRET_NAMES[1]}),
        _http("port_not_allowed", f"http://127.0.0.1:{refused}/"),
        _http("localhost", f"http://localhost:{refused}/"),
        _http("mapped", f"http://[::ffff:127.0.0.1]:{refused}/"),
        _http("redirect", f"http://127.0.0.1:{echo}/redirect"),
    ]
    if "refused_v6" in servers:
        calls.append(_http("ipv6", f"http://[::1]:{servers['refused_v6'].port}/"))
    shape = node("shape", "transform", {"output": {"seen": "{{ nodes.call.output.body }}"}})
    nodes = [node("start", "trigger"), *calls, shape]
    edges = [edge("start", call["id"]) for call in calls] + [edge("call", "shape")]
    return make_workflow(runtime, nodes, edges)


@pytest.fixture(scope="module")
def finished(runtime: Any, servers: dict[str, CountingServer], cluster: Any) -> uuid.UUID:
    instance_id = start(runtime, _workflow(runtime, servers), {"name": "n"})
    row = wait_status(runtime, instance_id, timeout=90)
    assert row.status == "completed", row.error_details
    return instance_id


def _step_outputs(runtime: Any, instance_id: uuid.UUID) -> dict[str, Any]:
    with runtime.session_factory() as session:
        rows = session.scalars(select(WorkflowExecution)
                               .where(WorkflowExecution.instance_id == instance_id)).all()
        return {row.node_id: row.output_data for row in rows}


def test_the_secret_reached_only_the_allowed_target(
    runtime: Any, servers: dict[str, CountingServer], finished: uuid.UUID,
) -> None:
    seen = [req for req in servers["echo"].requests if req["path"] == "/echo"]
    assert [req["headers"]["Authorization"] for req in seen][-1] == f"Bearer {TOKEN}"
    assert any(req["path"] == f"/deny?key={HOOK_KEY}" for req in servers["echo"].requests)
    outputs = _step_outputs(runtime, finished)
    assert outputs["call"]["status"] == 200
    assert outputs["call"]["body"] == {"auth": "[REDACTED]"}
    assert outputs["shape"] == {"seen": {"auth": "[REDACTED]"}}
    assert "403" in outputs["hook"]["error"]


def test_refused_targets_saw_no_connection(
    runtime: Any, servers: dict[str, CountingServer], finished: uuid.UUID,
) -> None:
    outputs = _step_outputs(runtime, finished)
    refused_steps = ["port_not_allowed", "localhost"]
    if "refused_v6" in servers:
        refused_steps.append("ipv6")
        assert servers["refused_v6"].connections == 0
    for step in refused_steps:
        assert "refused outbound call" in outputs[step]["error"], (step, outputs[step])
    # The http node's URL check already rejects the IPv4-mapped literal (the guard would too).
    mapped = outputs["mapped"]["error"]
    assert "refused outbound call" in mapped or "Not a valid URL" in mapped, mapped
    # The redirect came back to the step (not followed), which failed it on the 302.
    assert "302" in outputs["redirect"]["error"]
    assert servers["refused"].connections == 0


def test_secret_values_appear_nowhere_outside_the_worker(
    runtime: Any, secure_settings: Any, cluster: dict[str, Any], finished: uuid.UUID,
) -> None:
    from api.app import create_app
    from api.auth import issue_token

    with runtime.session_factory() as session:
        _, token = issue_token(session, name="sec-e2e-viewer", roles=["admin"])
        session.commit()
    client = create_app(secure_settings, session_factory=runtime.session_factory).test_client()
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [
        client.get(path, headers=headers).get_data(as_text=True)
        for path in (f"/api/workflow-instances/{finished}",
                     f"/api/workflow-instances/{finished}/details",
                     f"/api/workflow-instances/{finished}/events",
                     "/api/workflow-instances?limit=500",
                     "/api/secrets", "/api/audit-log?limit=500")
    ]
    assert '"node_id":"call"' in bodies[1].replace(" ", "")  # the details were really read
    with runtime.session_factory() as session:
        records = [
            json.dumps(row, default=str) for row in session.execute(text(
                "SELECT to_jsonb(e) FROM workflow_executions e WHERE instance_id = :id "
                "UNION ALL SELECT to_jsonb(i) FROM workflow_instances i WHERE id = :id"
            ), {"id": finished}).scalars()
        ]
        assert session.get(WorkflowInstance, finished) is not None
    logs = [cluster["worker"].log(), cluster["scheduler"].log()]
    haystacks = {"api": bodies, "records": records, "logs": logs}
    for secret in (TOKEN, HOOK_KEY):
        for where, texts in haystacks.items():
            for index, blob in enumerate(texts):
                assert secret not in blob, f"secret value found in {where}[{index}]"
