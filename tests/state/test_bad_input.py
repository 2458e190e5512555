"""Bad state URLs and databases: clear errors, nothing half-written; schemas migrate forward."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from conftest import cli, run, write_program

from alchemy_nb.errors import ConfigError, StateError
from alchemy_nb.state import FileStore, PostgresStore, SQLiteStore, StageState, open_store
from alchemy_nb.state._pgcluster import Cluster
from alchemy_nb.state._sql import SCHEMA_VERSION

PG = pytest.mark.xdist_group("postgres")

PROGRAM = """
import alchemy_nb
from alchemy_nb.fs import File

app = alchemy_nb.App("bad")

@app.program
def infra(stage):
    File("page", path="out/page.txt", content="hello")
"""


def test_urls_choose_the_store(tmp_path: Path) -> None:
    assert isinstance(open_store(f"file:{tmp_path}/s"), FileStore)
    assert open_store("file:rel", base=tmp_path).location == str(tmp_path / "rel")
    sqlite_store = open_store("sqlite:///rel.db", base=tmp_path)
    assert isinstance(sqlite_store, SQLiteStore)
    assert sqlite_store.path == tmp_path / "rel.db"
    assert open_store("sqlite:////abs/x.db").path == Path("/abs/x.db")  # type: ignore[attr-defined]
    pg = open_store("postgres://me:hunter2@db.example:5433/st")
    assert isinstance(pg, PostgresStore)
    assert pg.location == "postgres://me:***@db.example:5433/st"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://me:hunter2@db/x", "unknown state URL scheme 'mysql'"),
        ("just-a-path", "is not a state URL"),
        ("sqlite://x.db", "names no database file"),
        ("file:", "names no folder"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)
    assert "sqlite:///PATH" in str(caught.value) or "sqlite:///" in str(caught.value)


def test_the_cli_refuses_an_unknown_scheme_before_anything_runs(tmp_path: Path) -> None:
    write_program(tmp_path, PROGRAM)
    done = cli(tmp_path, "deploy", "--state", "mysql://me:hunter2@db/x", "--json")
    assert done.returncode == 2
    assert "unknown state URL scheme 'mysql'" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / ".alchemy").exists()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_text("this is not a database\n" * 100)
    store = SQLiteStore(path)
    with pytest.raises(StateError, match="cannot use the SQLite state store") as caught:
        run(store.load("app", "dev"))
    assert str(path) in str(caught.value)
    assert path.read_text() == "this is not a database\n" * 100  # untouched


def test_a_damaged_snapshot_in_a_database_names_the_stage_and_changes_nothing(
    tmp_path: Path,
) -> None:
    from alchemy_nb.errors import StateCorruptError

    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    run(store.checkpoint(StageState("app", "dev", {"a": {"kind": "k", "status": "created"}})))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE alchemy_snapshots SET doc = \'{"resources": {"a": 1}, "meta": {}}\'')
    conn.close()
    again = SQLiteStore(path)
    with pytest.raises(StateCorruptError, match="resource record is damaged") as caught:
        run(again.load("app", "dev"))
    assert f"{again.location}, app 'app', stage 'dev', resource 'a'" in str(caught.value)
    again.close()


def test_a_sqlite_schema_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    run(store.append("app", "dev", [{"t": "meta", "key": "k", "value": 1}]))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alchemy_schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    again = SQLiteStore(path)
    with pytest.raises(StateError, match=f"schema is version {SCHEMA_VERSION + 1}, newer"):
        run(again.load("app", "dev"))
    again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM alchemy_schema").fetchone() == (
            SCHEMA_VERSION + 1,
        )
    conn.close()


def test_an_older_sqlite_schema_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    old = SQLiteStore(tmp_path / "state.db")
    old._conn = sqlite3.connect(old.path, isolation_level=None, check_same_thread=False)
    old._finalizer = __import__("weakref").finalize(old, old._conn.close)
    old._ensure_schema(upto=1)  # what the first release of the SQLite store created
    run(old.append("app", "dev", [{"t": "meta", "key": "k", "value": 1}]))
    assert old.schema_version() == 1
    old.close()
    store = SQLiteStore(tmp_path / "state.db")
    assert run(store.load("app", "dev")).meta == {"k": 1}
    assert store.schema_version() == SCHEMA_VERSION
    store.doc_put("app", "gates", "g1", {"id": "g1"})  # version 2's tables exist
    assert store.doc_get("app", "gates", "g1") == {"id": "g1"}
    store.close()


@PG
def test_an_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://me:hunter2@127.0.0.1:{port}/st", connect_timeout=3)
    with pytest.raises(StateError, match="cannot connect to the PostgreSQL state store") as caught:
        run(store.load("app", "dev"))
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message
    assert "Fix: check that the server runs" in message


@PG
def test_wrong_postgres_credentials_are_a_clear_error(
    pg_cluster: Cluster, pg_url: str, tmp_path: Path
) -> None:
    url = pg_cluster.url(pg_url.rsplit("/", 1)[1], password="wrong-password")
    write_program(tmp_path, PROGRAM)
    done = cli(tmp_path, "deploy", "--state", url, "--json")
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr
    assert "wrong-password" not in done.stderr + done.stdout
    assert '"type": "StateError"' in done.stdout
    assert not (tmp_path / "out").exists()  # nothing deployed without state
    store = PostgresStore(pg_url)
    assert run(store.stages("bad")) == []
    store.close()


@PG
def test_a_postgres_schema_from_a_newer_version_is_refused_and_an_older_one_migrated(
    pg_cluster: Cluster, pg_url: str
) -> None:
    import psycopg

    old = PostgresStore(pg_url)
    old._conn = old._open()
    old._finalizer = __import__("weakref").finalize(old, old._conn.close)
    old._ensure_schema(upto=1)
    run(old.append("app", "dev", [{"t": "meta", "key": "k", "value": 1}]))
    old.close()
    store = PostgresStore(pg_url)
    assert run(store.load("app", "dev")).meta == {"k": 1}
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE alchemy_schema SET version = %s", (SCHEMA_VERSION + 1,))
    newer = PostgresStore(pg_url)
    with pytest.raises(StateError, match="newer than this alchemy-nb knows"):
        run(newer.load("app", "dev"))
    newer.close()


@PG
def test_a_lock_session_the_server_ended_is_replaced(pg_url: str) -> None:
    import psycopg

    store = PostgresStore(pg_url)

    async def lock_once() -> str:
        async with store.lock("app", "dev", operation="deploy", timeout=5) as info:
            return info.id

    first = run(lock_once())
    kept = store._idle[0].info.backend_pid
    with psycopg.connect(pg_url, autocommit=True) as admin:  # e.g. a server restart
        admin.execute("SELECT pg_terminate_backend(%s)", (kept,))
    second = run(lock_once())
    assert second != first
    assert store._idle[0].info.backend_pid != kept
    store.close()


@pytest.mark.parametrize("command", ["status", "read"])
def test_a_read_only_command_never_creates_a_sqlite_database(tmp_path: Path, command: str) -> None:
    write_program(tmp_path, PROGRAM)
    done = cli(tmp_path, command, "--state", "sqlite:///stat.db")  # meant state.db
    assert done.returncode == 2, done.stderr
    assert f"there is no state database at {tmp_path / 'stat.db'}" in done.stderr
    assert "a deploy creates the database" in done.stderr
    assert not (tmp_path / "stat.db").exists()
    assert cli(tmp_path, "deploy", "--state", "sqlite:///state.db").returncode == 0
    shown = cli(tmp_path, command, "--state", "sqlite:///state.db")
    assert shown.returncode == 0, shown.stderr
