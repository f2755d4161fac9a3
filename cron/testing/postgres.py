"""A throwaway PostgreSQL server for tests (SPEC §10, §11), shipped like the contract suites.

::

    from cron.testing.postgres import PostgresServer

    with PostgresServer() as server:
        url = server.create_database()      # a fresh database holding the cronkit schema
        store = open_store(url)

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` from the PostgreSQL
server binaries (found on ``PATH``, in ``/usr/lib/postgresql/*/bin`` or at
``pg_config --bindir``; Debian's package is ``postgresql``) in a temporary
directory, on a free port of 127.0.0.1, with durability off (``fsync``,
``synchronous_commit`` and ``full_page_writes``): a test server loses
nothing that matters when the machine crashes. ``initdb`` refuses to run as
root, so as root both run as the ``postgres`` user.

It builds one template database, ``cronkit_template``, holding the schema
(:func:`cron.stores.postgres.create_schema`); :meth:`PostgresServer.create_database`
copies it (``CREATE DATABASE t_<n> TEMPLATE cronkit_template``, tens of
milliseconds), so every test starts from an empty store whose schema exists.

``CRONKIT_TEST_POSTGRES_DSN`` (a libpq URL of an existing server whose user may
create databases) makes it use that server instead of starting one; the
databases it makes there carry a random prefix and are dropped when it stops.

Every failure is a :class:`PostgresUnavailable` with a one-line reason; tests
that need PostgreSQL error with it, they never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DSN_ENV", "PostgresServer", "PostgresUnavailable", "find_bindir"]

DSN_ENV = "CRONKIT_TEST_POSTGRES_DSN"
TEMPLATE = "cronkit_template"
SERVER_USER = "postgres"
START_TIMEOUT = 60

_INSTALL_HINT = (
    "install the PostgreSQL server binaries (Debian/Ubuntu: apt-get install postgresql; "
    "tests/support/ensure_postgres.sh does it) or set "
    f"{DSN_ENV} to a server whose user may create databases"
)


class PostgresUnavailable(RuntimeError):
    """The test PostgreSQL server could not be found, started or used (one-line reason)."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; raises :class:`PostgresUnavailable`."""
    candidates: list[Path] = []
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    raise PostgresUnavailable(
        f"no initdb/pg_ctl found (PATH, /usr/lib/postgresql/*/bin, "
        f"pg_config --bindir): {_INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line(text: str, limit: int = 400) -> str:
    line = " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


class PostgresServer:
    """One throwaway PostgreSQL server (or, with ``dsn``, an existing one) for tests.

    ``start()`` / ``stop()`` or a ``with`` block. :attr:`url` is the admin URL
    (database ``postgres``); :meth:`create_database` makes a fresh database
    from the schema template and returns its URL. :meth:`stop_server` and
    :meth:`start_server` take an own server down and bring it back on the
    same port with its data (for tests of a lost database).
    """

    def __init__(self, *, dsn: str | None = None, use_env: bool = True) -> None:
        if dsn is None and use_env:
            dsn = os.environ.get(DSN_ENV) or None
        self._dsn = dsn
        self._dir: Path | None = None
        self._bindir: Path | None = None
        self._port: int | None = None
        self._running = False
        self._started = False
        self._prefix = "t_" if dsn is None else f"t_{uuid.uuid4().hex[:8]}_"
        self._template = TEMPLATE if dsn is None else f"{TEMPLATE}_{uuid.uuid4().hex[:8]}"
        self._counter = itertools.count(1)
        self._made: list[str] = []
        self._lock = threading.Lock()
        self._owner = os.getpid()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when this uses the server of ``CRONKIT_TEST_POSTGRES_DSN`` (or ``dsn``)."""
        return self._dsn is not None

    @property
    def url(self) -> str:
        """The admin URL: the external DSN, or ``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        if self._dsn is not None:
            return self._dsn
        if self._port is None:
            raise PostgresUnavailable("the test PostgreSQL server is not started")
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self._port}/postgres"

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresUnavailable("the test PostgreSQL server is not started")
        return self._port

    def start(self) -> PostgresServer:
        """Start the server (unless external) and build the schema template. Idempotent."""
        if self._started:
            return self
        self._owner = os.getpid()
        atexit.register(self._stop_at_exit)  # an interrupted session leaves no server behind
        if self._dsn is None:
            self._init_cluster()
            self.start_server()
        try:
            self._build_template()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Drop what was made on an external server; stop an own server and remove its files."""
        atexit.unregister(self._stop_at_exit)
        if self._dsn is not None:
            for name in [*self._made, self._template] if self._started else self._made:
                with contextlib.suppress(Exception):
                    self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._made.clear()
            self._started = False
            return
        with contextlib.suppress(PostgresUnavailable):
            self.stop_server()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._started = False

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner:  # never from a forked child that exits normally
            self.stop()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop_server(self, mode: str = "immediate") -> None:
        """Take an own server down (``pg_ctl stop -m <mode>``), keeping its data directory.

        ``immediate`` is a crash: with ``synchronous_commit=off`` the newest commits
        may be lost. ``fast`` ends the sessions and writes everything first.
        """
        if self._dsn is not None:
            raise PostgresUnavailable(
                "an external server (CRONKIT_TEST_POSTGRES_DSN) cannot be stopped by the tests"
            )
        if not self._running or self._dir is None:
            return
        self._pg_ctl("stop", "-m", mode, "-w", "-t", str(START_TIMEOUT))
        self._running = False

    def start_server(self) -> None:
        """Start (again) an own server, on the port it had before if it had one."""
        if self._dsn is not None:
            raise PostgresUnavailable(
                "an external server (CRONKIT_TEST_POSTGRES_DSN) cannot be started by the tests"
            )
        if self._running:
            return
        assert self._dir is not None
        keep_port = self._port is not None
        attempts = 1 if keep_port else 3
        last = ""
        for _ in range(attempts):
            port = self._port if self._port is not None else _free_port()
            options = (
                f"-F -p {port} -k {self._dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300"
            )
            try:
                self._pg_ctl(
                    "start",
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "-l",
                    str(self._dir / "server.log"),
                    "-o",
                    options,
                )
            except PostgresUnavailable as exc:
                last = str(exc)
                if not keep_port:
                    self._port = None
                continue
            self._port = port
            self._running = True
            return
        raise PostgresUnavailable(last)

    # -- databases ---------------------------------------------------------------------

    def create_database(self, *, empty: bool = False) -> str:
        """A fresh database; its URL. From the schema template, or with ``empty`` from
        ``template0`` (no cronkit schema: for tests of schema creation)."""
        if not self._started:
            self.start()
        with self._lock:
            name = f"{self._prefix}{next(self._counter)}"
            self._made.append(name)
        template = "template0" if empty else self._template
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return _with_db(self.url, name)

    def drop_database(self, url: str) -> None:
        """Drop a database :meth:`create_database` made (its sessions are ended first)."""
        name = urlsplit(url).path.lstrip("/")
        with self._lock:
            if name not in self._made:
                raise ValueError(f"{name!r} was not made by this server")
            self._made.remove(name)
        with contextlib.suppress(PostgresUnavailable):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def connect(self, url: str | None = None, **kwargs: Any) -> Any:
        """A ``psycopg`` connection to ``url`` (default: the admin database)."""
        import psycopg

        try:
            return psycopg.connect(url or self.url, connect_timeout=10, **kwargs)
        except psycopg.Error as exc:
            raise PostgresUnavailable(
                f"cannot connect to the test server: {_one_line(str(exc))}"
            ) from None

    # -- internals ---------------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        import psycopg

        with self.connect(autocommit=True) as conn:
            try:
                conn.execute(sql)
            except psycopg.Error as exc:
                raise PostgresUnavailable(f"{sql}: {_one_line(str(exc))}") from None

    def _build_template(self) -> None:
        from cron.stores.postgres import create_schema

        self._admin(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._admin(f"CREATE DATABASE \"{self._template}\" TEMPLATE template0 ENCODING 'UTF8'")
        with self.connect(_with_db(self.url, self._template)) as conn:
            create_schema(conn)
            conn.commit()

    def _run_as(self) -> tuple[list[str], dict[str, Any]]:
        """The command prefix and ``subprocess`` options that run a server binary as a
        non-root user (``initdb`` refuses root)."""
        if os.geteuid() != 0:
            return [], {}
        try:
            pw = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no {SERVER_USER!r} user to run the server "
                f"as (initdb refuses root): create one (useradd --system {SERVER_USER}), "
                f"run the tests as another user, or set {DSN_ENV}"
            ) from None
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", SERVER_USER, "--"], {}
        return [], {"user": pw.pw_uid, "group": pw.pw_gid}

    def _init_cluster(self) -> None:
        if self._dir is not None:
            return
        self._bindir = find_bindir()
        self._run_as()  # as root without a postgres user: say so before making anything
        self._dir = Path(tempfile.mkdtemp(prefix="cronkit-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(self._dir, pw.pw_uid, pw.pw_gid)
        try:
            self._run(
                "initdb",
                "-D",
                str(self._dir / "data"),
                "-A",
                "trust",
                "-U",
                SERVER_USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise

    def _pg_ctl(self, *args: str) -> None:
        assert self._dir is not None
        self._run("pg_ctl", "-D", str(self._dir / "data"), *args)

    def _run(self, binary: str, *args: str) -> None:
        assert self._bindir is not None
        prefix, options = self._run_as()
        cmd = [*prefix, str(self._bindir / binary), *args]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT * 2,
                cwd=str(self._dir),
                **options,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"{binary} failed to run: {exc}") from None
        if done.returncode != 0:
            detail = done.stderr or done.stdout
            log = self._dir / "server.log" if self._dir is not None else None
            if binary == "pg_ctl" and log is not None and log.exists():
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                detail = f"{detail} | server log: {' | '.join(tail)}"
            raise PostgresUnavailable(
                f"{binary} {' '.join(args[:1])} exited {done.returncode}: {_one_line(detail)}"
            )
