"""The API's own cost per `POST /execute`, in one process, with gunicorn and the workers
taken out.

Calls the Flask app through its WSGI entry, as gunicorn would, with the real PostgreSQL
and the real broker: what is left is the API's share of a call (the token lookup, the rate
limiter, the launch's transaction, `send_task`, Flask and marshmallow). The repeats of one
run agree within a few percent; runs minutes apart still move by ~10 % with the machine,
where the cluster's CPU per call under load moves by ~20 % (RESULTS.md, item 60). Use it
to profile that path too:

    python -m bench.execute_cost DATABASE_URL REDIS_URL [--calls N] [--profile out.prof]

DATABASE_URL must name a database this may create tables in (it migrates it to head);
REDIS_URL a Redis database this may fill and empty.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from sqlalchemy import text

from bench.cluster import chain_document
from bench.resources import cpu_seconds_by_group, postgresql_group
from bench.stats import median

# The instances of one batch are removed before the next (their steps with them), so the
# admission count each launch makes stays as small as under load.
BATCH = 250
_END_BATCH = "DELETE FROM workflow_instances WHERE status IN ('pending', 'running')"


@dataclass(frozen=True)
class ExecuteCost:
    calls: int
    cpu_ms: float  # this process's CPU per call: the API's own
    database_cpu_ms: float  # PostgreSQL's (every server process) per call


def _app_and_call(database_url: str, redis_url: str) -> tuple[Callable[[], None], Any]:
    """The API app as `flowyard api` builds it, and a function making one call of it."""
    from api.app import create_app
    from api.auth import issue_token
    from models.settings import Settings
    from worker.celery_app import make_celery

    settings = Settings(database_url=database_url, redis_url=redis_url, broker_url=redis_url,
                        max_concurrent_workflows=1_000_000, rate_limit_per_minute=100_000_000)
    app = create_app(settings, celery_app=make_celery(settings))
    state = app.extensions["flowyard"]
    with state.session_factory() as session:
        _, token = issue_token(session, name="bench execute cost", roles=["admin"])
        session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    created = app.test_client().post("/api/workflows", headers=headers, json={
        "name": "bench execute cost", "workflow_data": chain_document(1)})
    if created.status_code != 201:
        raise RuntimeError(f"creating the workflow: {created.status_code} {created.data[:300]!r}")
    path = f"/api/workflows/{created.get_json()['id']}/execute"
    body = json.dumps({"input": {}}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
               "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
               "HTTP_AUTHORIZATION": headers["Authorization"], "REMOTE_ADDR": "127.0.0.1"}
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda _data: None  # WSGI's write(), which Flask never calls

    def call() -> None:
        answer = app({**environ, "wsgi.input": io.BytesIO(body)}, start_response)
        try:
            b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        if not statuses.pop().startswith("202"):
            raise RuntimeError(f"POST {path} did not answer 202")

    return call, state


def _end_batch(state: Any, redis_url: str) -> None:
    with state.session_factory() as session:
        session.execute(text(_END_BATCH))
        session.commit()
    redis.Redis.from_url(redis_url).delete("noop")  # the messages nobody will take


def measure(database_url: str, redis_url: str, calls: int, runs: int,
            profile_path: str | None = None) -> ExecuteCost:
    """The median over `runs` runs of `calls` calls each (in batches of `BATCH`) of the
    CPU per call, this process's and PostgreSQL's. The database and Redis must have no
    other Flowyard processes on them."""
    # As the bench's processes run: nothing rendered below WARNING. (gunicorn's access log
    # is not part of this: see RESULTS.md, fourteenth round, for what gunicorn costs.)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    call, state = _app_and_call(database_url, redis_url)
    for _ in range(100):  # warm the pools, the caches and the prepared statements
        call()
    _end_batch(state, redis_url)
    profiler = cProfile.Profile() if profile_path else None
    cpu: list[float] = []
    database: list[float] = []
    for _ in range(runs):
        spent, database_spent, done = 0.0, 0.0, 0
        while done < calls:
            batch = min(BATCH, calls - done)
            database_before = cpu_seconds_by_group(postgresql_group).get("postgresql", 0.0)
            started = time.process_time()
            if profiler is not None:
                profiler.enable()
            for _ in range(batch):
                call()
            if profiler is not None:
                profiler.disable()
            spent += time.process_time() - started
            database_spent += (cpu_seconds_by_group(postgresql_group).get("postgresql", 0.0)
                               - database_before)
            done += batch
            _end_batch(state, redis_url)
        cpu.append(1000 * spent / calls)
        database.append(1000 * database_spent / calls)
    if profiler is not None and profile_path:
        profiler.dump_stats(profile_path)
    state.session_factory.kw["bind"].dispose()
    return ExecuteCost(calls, median(cpu), median(database))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("redis_url")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", help="write a cProfile of the measured calls here")
    args = parser.parse_args(argv)

    from migrations.runner import upgrade

    upgrade(args.database_url)
    cost = measure(args.database_url, args.redis_url, args.calls, args.runs, args.profile)
    print(f"{cost.calls} calls x {args.runs} runs: {cost.cpu_ms:.3f} ms of this process's CPU "
          f"per call (median), PostgreSQL {cost.database_cpu_ms:.3f} ms")


if __name__ == "__main__":
    main()
