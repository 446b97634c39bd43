"""A run's directory for prometheus-client's multiprocess mode (`flowyard api`, `flowyard
worker --metrics-port`): made empty at start, named in the environment, removed at exit."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


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
