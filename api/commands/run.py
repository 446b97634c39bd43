"""`flowyard run FILE.json`: create or update a workflow by name, execute it, optionally follow it.

A pure HTTP client of the REST API (--url/FLOWYARD_URL, --token/FLOWYARD_TOKEN); it must not
touch the database or the broker directly.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

_FINAL = ("completed", "failed", "cancelled")
_POLL_SECONDS = 0.5
_PAGE = 500


class ApiCallError(click.ClickException):
    """The API answered an error; the message names the call and the API's error."""


class Client:
    """The few REST calls `flowyard run` needs, with the API's error envelope made one line."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        import requests

        self._base = url.rstrip("/")
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests

        try:
            response = self._session.request(method, f"{self._base}{path}",
                                             timeout=self._timeout, **kwargs)
        except requests.RequestException as error:
            raise ApiCallError(f"cannot reach {self._base}: {error}") from None
        if response.status_code >= 400:
            raise ApiCallError(f"{method} {path}: {response.status_code} {_error_text(response)}")
        return response.json() if response.content else None

    def find_workflow(self, name: str) -> dict[str, Any] | None:
        offset = 0
        while True:
            page = self.call("GET", "/api/workflows", params={"limit": _PAGE, "offset": offset})
            for item in page["items"]:
                if item.get("name") == name:
                    found: dict[str, Any] = item
                    return found
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return None


def _error_text(response: Any) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return str(response.text[:300])
    text = f"{error.get('code')}: {error.get('message')}"
    if error.get("details"):
        text += f" {json.dumps(error['details'], separators=(',', ':'))[:2000]}"
    return text


def load_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(document, dict) or not document.get("name"):
        raise click.ClickException(f"{path}: a workflow document needs a \"name\"")
    from api.portable import FORMAT, WORKFLOW_FIELDS

    if document.get("format") == FORMAT:
        # An exported document: its workflow fields (triggers are imported by the API only).
        return {key: value for key, value in document.items() if key in WORKFLOW_FIELDS}
    return document


def save_workflow(client: Client, document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the workflow, or update the one with the same name; (workflow, created)."""
    existing = client.find_workflow(document["name"])
    if existing is None:
        return client.call("POST", "/api/workflows", json=document), True
    return client.call("PUT", f"/api/workflows/{existing['id']}", json=document), False


def _step_line(details: dict[str, Any]) -> str:
    waiting = [s["node_id"] for s in details.get("steps", [])
               if s.get("status") == "waiting_approval"]
    if waiting:
        pending = [f"{a['id']} ({a.get('approver_role')})" for a in details.get("approvals", [])
                   if a.get("status") == "pending" and a.get("id")]
        hint = f"; POST /api/approvals/<id>/approve: {', '.join(pending)}" if pending else ""
        return f"{details['status']}: waiting for approval at {', '.join(waiting)}{hint}"
    current = details.get("current_step")
    return f"{details['status']}" + (f": {current}" if current else "")


def follow(client: Client, instance_id: str, timeout: float | None) -> dict[str, Any]:
    """Poll the instance with a live progress bar until it ends (or `timeout` passes)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    deadline = None if timeout is None else time.monotonic() + timeout
    path = f"/api/workflow-instances/{instance_id}/details"
    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("pending", total=100)
        while True:
            details: dict[str, Any] = client.call("GET", path)
            progress.update(bar, completed=details.get("progress") or 0,
                            description=_step_line(details))
            if details["status"] in _FINAL:
                return details
            if deadline is not None and time.monotonic() > deadline:
                raise click.ClickException(
                    f"instance {instance_id} still {details['status']} after {timeout:g} s")
            time.sleep(_POLL_SECONDS)


def print_steps(details: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"instance {details['id']}: {details['status']}")
    for column in ("step", "type", "status", "duration", "retries"):
        table.add_column(column)
    steps = sorted(details.get("steps", []),
                   key=lambda s: (s.get("started_at") or "~", s.get("node_id")))
    for step in steps:
        duration = step.get("duration_ms")
        table.add_row(step["node_id"], step.get("step_type", ""), step["status"],
                      "" if duration is None else f"{duration} ms",
                      str(step.get("retry_count") or 0))
    console = Console()
    console.print(table)
    if details.get("error_details"):
        console.print(f"error: {details['error_details']}", markup=False)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_json", default="{}", help="Instance input as a JSON object.")
@click.option("--wait", is_flag=True, help="Follow the instance until it ends.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="With --wait: give up after this many seconds (exit 1).")
@click.option("--url", envvar="FLOWYARD_URL", default="http://127.0.0.1:8000",
              show_default=True, help="API base URL (or FLOWYARD_URL).")
@click.option("--token", envvar="FLOWYARD_TOKEN", default=None,
              help="API token (or FLOWYARD_TOKEN).")
def run(file: Path, input_json: str, wait: bool, timeout: float | None, url: str,
        token: str | None) -> None:
    """Create or update the workflow in FILE by name and execute it (exit 0 only if completed).

    FILE is a workflow document as POST /api/workflows takes it, or an exported one
    ("format": "flowyard.workflow/v1"; its triggers are not created).
    """
    try:
        instance_input = json.loads(input_json)
    except ValueError as error:
        raise click.BadParameter(f"not JSON ({error})", param_hint="--input") from None
    if not isinstance(instance_input, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--input")
    client = Client(url, token)
    workflow, created = save_workflow(client, load_document(file))
    click.echo(f"{'created' if created else 'updated'} workflow {workflow['id']} "
               f"({workflow['name']})")
    instance = client.call("POST", f"/api/workflows/{workflow['id']}/execute",
                           json={"input": instance_input})
    click.echo(f"started instance {instance['id']}")
    if not wait:
        return
    details = follow(client, instance["id"], timeout)
    print_steps(details)
    if details["status"] != "completed":
        raise SystemExit(1)
