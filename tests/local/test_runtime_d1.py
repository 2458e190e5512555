"""D1 on SQLite: statements, results, batches, scripts, errors, and JSON responses of rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_runtime import d1, exercise, run, serve, worker_config, write_worker

SETUP = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, score REAL, avatar BLOB);
INSERT INTO users (id, name, score) VALUES (1, 'ada', 9.5), (2, 'grace', 8.0);
"""

NOOP = "def on_fetch(request):\n    return None\n"


def with_db(tmp_path: Path, check: Any) -> None:
    config = worker_config(write_worker(tmp_path / "src", NOOP), {"DB": d1(tmp_path)})

    async def main() -> None:
        async with serve(config) as (app, _client):
            await app.env.DB.exec(SETUP)
            await check(app.env.DB)

    run(main())


def test_first_all_run_raw(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        row = await db.prepare("SELECT id, name FROM users WHERE id = ?").bind(1).first()
        assert (row.id, row["name"], row.to_py()) == (1, "ada", {"id": 1, "name": "ada"})
        assert await db.prepare("SELECT * FROM users WHERE id = ?").bind(99).first() is None
        assert (
            await db.prepare("SELECT name FROM users WHERE id = ?1").bind(2).first("name")
            == "grace"
        )

        result = await db.prepare("SELECT id, name FROM users ORDER BY id").all()
        assert result.success is True
        assert [r.name for r in result.results] == ["ada", "grace"]
        assert result.results.to_py() == [{"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}]
        assert result["meta"].rows_read == 2
        assert result.meta.changes == 0
        assert result.to_py()["results"][1]["name"] == "grace"

        inserted = await db.prepare("INSERT INTO users (name) VALUES (?)").bind("linus").run()
        assert inserted.success
        assert inserted.meta.changes == 1
        assert inserted.meta.last_row_id == 3
        assert inserted.meta.changed_db is True
        assert inserted.meta.rows_written == 1
        assert inserted.meta.duration >= 0
        assert inserted.meta.size_after > 0

        rows = await db.prepare("SELECT id, name FROM users ORDER BY id LIMIT 2").raw()
        assert rows.to_py() == [[1, "ada"], [2, "grace"]]
        with_names = await db.prepare("SELECT id FROM users ORDER BY id LIMIT 1").raw(
            columnNames=True
        )
        assert with_names.to_py() == [["id"], [1]]
        from_options = await db.prepare("SELECT id FROM users LIMIT 1").raw({"columnNames": True})
        assert from_options[0].to_py() == ["id"]

    with_db(tmp_path, check)


def test_bind_types(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        await (
            db.prepare("INSERT INTO users (id, name, score, avatar) VALUES (?, ?, ?, ?)")
            .bind(10, "blob", True, b"\x00\xff")
            .run()
        )
        row = await db.prepare("SELECT score, avatar FROM users WHERE id = 10").first()
        assert row.score == 1
        assert row.avatar.to_py() == [0, 255]  # BLOBs come back as arrays of bytes, as on D1
        with pytest.raises(Exception, match="D1_TYPE_ERROR: Type 'object' not supported"):
            db.prepare("SELECT ?").bind({"a": 1})

    with_db(tmp_path, check)


def test_errors_read_like_d1(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        with pytest.raises(Exception, match="no such table") as info:
            await db.prepare("SELECT * FROM nope").all()
        assert str(info.value) == "Error: D1_ERROR: no such table: nope: SQLITE_ERROR"
        assert info.value.message == "D1_ERROR: no such table: nope: SQLITE_ERROR"  # type: ignore[attr-defined]

        with pytest.raises(
            Exception, match=r"D1_ERROR: UNIQUE constraint failed: users\.name: SQLITE_CONSTRAINT$"
        ):
            await db.prepare("INSERT INTO users (name) VALUES ('ada')").run()
        with pytest.raises(Exception, match="D1_ERROR: Wrong number of parameter bindings"):
            await db.prepare("SELECT ?, ?").bind(1).all()
        with pytest.raises(Exception, match=r"D1_COLUMN_NOTFOUND: Column not found \(nope\)"):
            await db.prepare("SELECT id FROM users").first("nope")
        with pytest.raises(
            Exception, match=r'D1_EXEC_ERROR: Error in line 2: SELEC 1;: near "SELEC"'
        ):
            await db.exec("SELECT 1;\nSELEC 1;")

    with_db(tmp_path, check)


def test_batch_is_one_transaction(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        results = await db.batch(
            [
                db.prepare("INSERT INTO users (name) VALUES (?)").bind("a"),
                db.prepare("INSERT INTO users (name) VALUES (?)").bind("b"),
                db.prepare("SELECT count(*) AS n FROM users"),
            ]
        )
        assert len(results) == 3
        assert results[2].results[0].n == 4

        with pytest.raises(Exception, match="UNIQUE constraint failed"):
            await db.batch(
                [
                    db.prepare("INSERT INTO users (name) VALUES ('c')"),
                    db.prepare("INSERT INTO users (name) VALUES ('ada')"),
                ]
            )
        count = await db.prepare("SELECT count(*) AS n FROM users").first("n")
        assert count == 4  # 'c' was rolled back with the failing insert

    with_db(tmp_path, check)


def test_exec_runs_a_script(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        result = await db.exec(
            "CREATE TABLE t (x TEXT);\n"
            "INSERT INTO t VALUES ('a;b');\n"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = x || '!'; END;\n"
            "INSERT INTO t VALUES ('c')"
        )
        assert result.count == 4
        rows = await db.prepare("SELECT x FROM t ORDER BY rowid").raw()
        assert rows.to_py() == [["a;b!"], ["c!"]]

    with_db(tmp_path, check)


def test_session_and_dump(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        session = db.withSession("first-unconstrained")
        assert (await session.prepare("SELECT 1 AS one").first()).one == 1
        assert session.getBookmark().startswith("local-")
        dump = await db.dump()
        assert bytes(dump[:15]) == b"SQLite format 3"

    with_db(tmp_path, check)


def test_data_is_in_the_sqlite_file(tmp_path: Path) -> None:
    async def check(db: Any) -> None:
        await db.prepare("INSERT INTO users (name) VALUES (?)").bind("persisted").run()

    with_db(tmp_path, check)
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM users ORDER BY id")]
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert names == ["ada", "grace", "persisted"]
    assert journal == "wal"


WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            db = self.env.DB
            path = request.url.split("8787", 1)[1]
            if path == "/setup":
                await db.exec(
                    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
                    "INSERT INTO users VALUES (42, 'Zoë'), (43, 'Bo')"
                )
                return Response("ok")
            if path.startswith("/users/"):
                stmt = db.prepare("SELECT id, name FROM users WHERE id = ?")
                row = await stmt.bind(int(path[7:])).first()
                if row is None:
                    return Response.json({"error": "not found"}, status=404)
                return Response.json(row)
            if path == "/all":
                return Response.json((await db.prepare("SELECT * FROM users").all()).results)
            if path == "/wrapped":
                result = await db.prepare("SELECT * FROM users").all()
                return Response.json({"rows": result.results, "count": len(result.results)})
            try:
                await db.prepare("SELECT * FROM missing").all()
            except Exception as exc:
                return Response(str(exc), status=500)
"""


def test_rows_in_json_responses(tmp_path: Path) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/setup")).text == "ok"
        response = await client.get("/users/42")
        assert response.headers["content-type"] == "application/json"
        assert response.content == '{"id":42,"name":"Zoë"}'.encode()  # JS JSON: compact
        assert (await client.get("/users/7")).status_code == 404
        assert (await client.get("/all")).json() == [
            {"id": 42, "name": "Zoë"},
            {"id": 43, "name": "Bo"},
        ]
        wrapped = await client.get("/wrapped")
        assert wrapped.json() == {
            "rows": [{"id": 42, "name": "Zoë"}, {"id": 43, "name": "Bo"}],
            "count": 2,
        }
        error = await client.get("/error")
        assert error.text == "Error: D1_ERROR: no such table: missing: SQLITE_ERROR"

    exercise(tmp_path, WORKER, check, {"DB": d1(tmp_path)})
