"""How the commands set up their Prometheus metrics: the `--metrics-port` and
`--metrics-address` options (`flowyard worker`, `flowyard scheduler`), what a port that
cannot be served says, and a run's directory for prometheus-client's multiprocess mode
(`flowyard api`, `flowyard worker`): made empty at start, named in the environment, removed
at exit. Must not import prometheus-client (see `multiprocess_metrics`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def metrics_options(what: str) -> Callable[[F], F]:
    """The two options of a command that can serve Prometheus metrics (`what` they count)."""
    def decorate(command: F) -> F:
        command = click.option(
            "--metrics-address", default="0.0.0.0", show_default=True,
            help="Address the metrics listen on, with --metrics-port.")(command)
        return click.option(
            "--metrics-port", type=click.IntRange(1, 65535), default=None,
            help=f"Serve Prometheus metrics on this port at /metrics: {what}.  "
                 "[default: none]")(command)
    return decorate


def port_not_served(address: str, port: int, error: OSError) -> click.ClickException:
    """What a command says when it cannot listen for its metrics: it then stops."""
    return click.ClickException(f"cannot serve metrics on {address}:{port}: "
                                f"{error.strerror or error}; choose another --metrics-port")


@contextmanager
def multiprocess_metrics(prefix: str) -> Iterator[str]:
    """A new, empty directory for prometheus-client's multiprocess mode, for one run.

    Every process of the run (gunicorn's workers, Celery's pool children) writes its metrics
    there and a scrape sums them all. prometheus-client picks its mode from
    PROMETHEUS_MULTIPROC_DIR when it is first imported, so enter this before anything
    imports it. A directory left from an earlier run would add that run's counts, so each
    run makes its own (in the pod, /tmp is a memory-backed emptyDir) and removes it at exit.
    No `mark_process_dead` is needed when a process exits: that is for live gauges, and
    these are counters and histograms, which keep a stopped process's counts, as they should.

    Only the process that made the directory removes it. A forked child leaves by raising
    SystemExit through this block too (a gunicorn worker does, when it is replaced on a
    reload or stops at a shutdown), while the processes beside it go on counting there.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    owner = os.getpid()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)
