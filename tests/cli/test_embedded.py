"""Embedded PostgreSQL and Redis: they start under a data dir, keep data across restarts, stop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest
import redis

from api.commands.up import free_port
from api.embedded import (
    DATA_DIR_FORMAT,
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedRedis,
    lock_data_dir,
    prepare_data_dir,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_data_dir_marker_is_written_once_and_checked(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "fy")
    marker = json.loads(data.marker.read_text())
    assert marker["format"] == DATA_DIR_FORMAT
    assert prepare_data_dir(tmp_path / "fy").marker == data.marker


def test_data_dir_from_another_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "fy")
    marker = json.loads(data.marker.read_text())
    data.marker.write_text(json.dumps({**marker, "format": DATA_DIR_FORMAT + 1}))
    with pytest.raises(EmbeddedError, match="another --data-dir") as caught:
        prepare_data_dir(tmp_path / "fy")
    assert "\n" not in str(caught.value)


def test_postgres_data_of_another_major_version_is_refused(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "fy")
    data.postgres.mkdir()
    (data.postgres / "PG_VERSION").write_text("9\n")
    with pytest.raises(EmbeddedError, match="PostgreSQL 9 data") as caught:
        EmbeddedPostgres(data).start()
    assert "\n" not in str(caught.value)


def test_embedded_postgres_keeps_data_across_restarts_and_stops(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "fy")
    first = EmbeddedPostgres(data)
    url = first.start()
    pid = first.pid
    assert pid is not None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        first.stop()
    assert not _pid_alive(pid)

    second = EmbeddedPostgres(data)
    try:
        with psycopg.connect(second.start()) as conn:
            row = conn.execute("SELECT value FROM kept").fetchone()
        assert row == ("still here",)
    finally:
        second.stop()


def test_embedded_redis_keeps_data_across_restarts_and_stops(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "fy")
    first = EmbeddedRedis(data, free_port())
    redis.Redis.from_url(first.start()).set("kept", "still here")
    first.stop()
    assert first.process is not None and first.process.poll() is not None

    second = EmbeddedRedis(data, free_port())
    try:
        assert redis.Redis.from_url(second.start()).get("kept") == b"still here"
    finally:
        second.stop()


def test_a_data_dir_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = prepare_data_dir(tmp_path / "fy")
    holder = lock_data_dir(data)
    try:
        # Another process (flock locks are per open file, so a second process shows it best).
        probe = subprocess.run(
            [sys.executable, "-c",
             "import sys; from pathlib import Path; from api.embedded import *; "
             "lock_data_dir(prepare_data_dir(Path(sys.argv[1])))", str(data.root)],
            capture_output=True, text=True, timeout=60,
        )
        assert probe.returncode != 0
        assert "another `flowyard up` is using" in probe.stderr
    finally:
        holder.close()
    lock_data_dir(data).close()
