"""Long-lived processes freeze their startup heap: full collections no longer walk it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import worker_before_create_process

from api.commands.serve import _gunicorn_application, gunicorn_options
from worker.celery_app import make_celery
from worker.heap import freeze_startup_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test process's heap as a fresh process has it, and as it was afterwards."""
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_the_heap_alive_now_is_frozen_and_its_garbage_collected_first(unfrozen: None) -> None:
    kept = _Cycle()
    garbage = weakref.ref(_Cycle())  # unreachable, but only the cycle collector frees it
    assert garbage() is not None
    freeze_startup_heap()
    assert garbage() is None, "garbage must be collected, not frozen for the process's life"
    assert gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects()), "a live object was not frozen"


def test_a_worker_freezes_its_heap_before_each_pool_child_is_forked(
        unfrozen: None, settings: Any) -> None:
    make_celery(settings)
    assert gc.get_freeze_count() == 0
    worker_before_create_process.send(sender=None)
    assert gc.get_freeze_count() > 0


def test_each_api_process_freezes_its_heap_once_it_has_built_the_app(
        unfrozen: None, settings: Any) -> None:
    options = gunicorn_options("127.0.0.1", 8000, 2, 4, 60)
    application = _gunicorn_application(settings, options, None, event_streams=2)
    assert application.cfg.preload_app is False  # built after the fork: frozen in each process
    application.cfg.post_worker_init(None)
    assert gc.get_freeze_count() > 0
