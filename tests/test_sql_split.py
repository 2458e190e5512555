"""One statement splitter serves every D1 path: migrations (deploy and `alchemy-nb d1`),
`d1 execute` and `DB.exec` in a worker."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from alchemy_nb.cloudflare._d1 import run_migrations
from alchemy_nb.cloudflare._sql import split_statements


def test_statements_sharing_a_line_are_split() -> None:
    assert split_statements("CREATE TABLE a (x); CREATE TABLE b (y);") == [
        "CREATE TABLE a (x);",
        "CREATE TABLE b (y);",
    ]


def test_semicolons_in_strings_and_trigger_bodies_stay_put() -> None:
    script = (
        "INSERT INTO t VALUES ('a;b');\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n"
        "  UPDATE t SET v = 'x;y'; DELETE FROM u;\n"
        "END;\n"
    )
    parts = split_statements(script)
    assert parts[0] == "INSERT INTO t VALUES ('a;b');"
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")
    assert len(parts) == 2


def test_comment_only_pieces_are_dropped_and_a_last_statement_needs_no_semicolon() -> None:
    script = "-- the schema\nCREATE TABLE a (x);\n-- done\n;\nSELECT 1"
    assert split_statements(script) == ["-- the schema\nCREATE TABLE a (x);", "SELECT 1"]


def test_a_migration_with_two_statements_on_a_line_applies(tmp_path: Path) -> None:
    migration = tmp_path / "0001_init.sql"
    migration.write_text("CREATE TABLE a (x); INSERT INTO a VALUES (1);\n")

    def failed(path: Path, error: sqlite3.Error, stays_at: str) -> Exception:
        return AssertionError(f"{path.name}: {error}")

    with closing(sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)) as conn:
        assert run_migrations(conn, [migration], "d1_migrations", failed) == ["0001_init.sql"]
        assert conn.execute("SELECT x FROM a").fetchall() == [(1,)]
        assert run_migrations(conn, [migration], "d1_migrations", failed) == []


def test_a_failing_statement_rolls_the_whole_file_back(tmp_path: Path) -> None:
    migration = tmp_path / "0001_init.sql"
    migration.write_text("CREATE TABLE a (x); INSERT INTO nowhere VALUES (1);\n")

    def failed(path: Path, error: sqlite3.Error, stays_at: str) -> Exception:
        return RuntimeError(f"{path.name} failed ({error}); the database stays at {stays_at}")

    with closing(sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)) as conn:
        with pytest.raises(RuntimeError, match=r"0001_init\.sql failed .*no such table: nowhere"):
            run_migrations(conn, [migration], "d1_migrations", failed)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "a" not in tables
