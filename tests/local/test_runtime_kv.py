"""KV on SQLite: values, types, TTLs, metadata, listing, key limits, path-like keys."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_runtime import exercise, kv, run, serve, worker_config, write_worker

NOOP = "def on_fetch(request):\n    return None\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def with_kv(tmp_path: Path, check: Any) -> None:
    config = worker_config(write_worker(tmp_path / "src", NOOP), {"KV": kv(tmp_path)})

    async def main() -> None:
        async with serve(config) as (app, _client):
            await check(app.env.KV)

    run(main())


def test_put_get_delete_and_types(tmp_path: Path) -> None:
    async def check(store: Any) -> None:
        assert await store.get("missing") is None
        await store.put("text", "héllo")
        assert await store.get("text") == "héllo"
        await store.put("json", '{"a": [1, 2], "b": {"c": true}}')
        value = await store.get("json", type="json")
        assert (value.a.to_py(), value["b"].c, value.to_py()["b"]) == ([1, 2], True, {"c": True})
        assert (await store.get("json", "json")).a[0] == 1
        assert (await store.get("json", {"type": "json"})).to_py()["a"] == [1, 2]
        await store.put("bytes", b"\x00\x01\xff")
        buffer = await store.get("bytes", type="arrayBuffer")
        assert buffer.to_bytes() == b"\x00\x01\xff"
        assert buffer.byteLength == 3
        stream = await store.get("bytes", type="stream")
        assert b"".join([chunk async for chunk in stream]) == b"\x00\x01\xff"
        await store.delete("text")
        await store.delete("never-existed")
        assert await store.get("text") is None
        with pytest.raises(Exception, match="Unknown response type"):
            await store.get("json", type="yaml")
        with pytest.raises(Exception, match="KV put\\(\\) accepts only strings"):
            await store.put("n", 42)
        many = await store.get(["json", "missing"], type="json")
        assert many.get("json").b.c is True
        assert many.get("missing") is None

    with_kv(tmp_path, check)


def test_metadata(tmp_path: Path) -> None:
    async def check(store: Any) -> None:
        await store.put("k", "v", metadata={"owner": "ada", "tags": ["x"]})
        found = await store.getWithMetadata("k")
        assert found.value == "v"
        assert found.metadata.to_py() == {"owner": "ada", "tags": ["x"]}
        assert found.metadata.owner == "ada"
        missing = await store.getWithMetadata("nope")
        assert (missing.value, missing.metadata) == (None, None)
        with pytest.raises(Exception, match=r"413 Metadata length of \d+ exceeds limit of 1024\."):
            await store.put("big", "v", metadata={"x": "y" * 1100})

    with_kv(tmp_path, check)


def test_expiration(tmp_path: Path) -> None:
    clock = Clock()

    async def check(store: Any) -> None:
        store.now = clock
        await store.put("short", "v", expirationTtl=60)
        await store.put("abs", "v", {"expiration": clock.now + 120})
        await store.put("forever", "v")
        listed = await store.list()
        expirations = {k.name: k.to_py().get("expiration") for k in listed["keys"]}
        assert expirations == {"abs": clock.now + 120, "forever": None, "short": clock.now + 60}
        clock.now += 59
        assert await store.get("short") == "v"
        clock.now += 1
        assert await store.get("short") is None
        assert [k.name for k in (await store.list()).keys] == ["abs", "forever"]
        clock.now += 60
        assert await store.get("abs") is None
        assert await store.get("forever") == "v"

        with pytest.raises(
            Exception,
            match=re.escape(
                "KV PUT failed: 400 Invalid expiration_ttl of 30."
                " Expiration TTL must be at least 60."
            ),
        ):
            await store.put("k", "v", expirationTtl=30)
        with pytest.raises(Exception, match="Please specify integer greater than 0"):
            await store.put("k", "v", expirationTtl=0)
        with pytest.raises(
            Exception,
            match=r"Invalid expiration of \S+\. Please specify integer greater than the current",
        ):
            await store.put("k", "v", expiration=clock.now - 1)
        with pytest.raises(Exception, match="at least 60 seconds in the future"):
            await store.put("k", "v", expiration=clock.now + 10)

    with_kv(tmp_path, check)


def test_list_prefix_and_pagination(tmp_path: Path) -> None:
    async def check(store: Any) -> None:
        for i in range(25):
            await store.put(f"user:{i:02d}", str(i), metadata={"i": i} if i % 2 else None)
        await store.put("other", "x")
        await store.put("user", "exact prefix is not a match of user:")

        first = await store.list(prefix="user:", limit=10)
        assert [k.name for k in first["keys"]] == [f"user:{i:02d}" for i in range(10)]
        assert first.list_complete is False
        assert first.keys[1].metadata.to_py() == {"i": 1}
        assert "metadata" not in first.keys[0]
        names: list[str] = [k.name for k in first.keys]
        cursor = first.cursor
        while cursor:
            page = await store.list({"prefix": "user:", "limit": 10, "cursor": cursor})
            names += [k.name for k in page.keys]
            cursor = page.cursor if not page.list_complete else None
        assert names == [f"user:{i:02d}" for i in range(25)]
        last = await store.list(prefix="user:", limit=10, cursor=page.to_py().get("cursor") or "")
        assert "cursor" not in page  # a complete page has no cursor
        assert len(last.keys) == 10  # an empty cursor starts over

        everything = await store.list()
        assert len(everything.keys) == 27
        assert everything.list_complete is True
        with pytest.raises(Exception, match="Invalid key_count_limit of 1001"):
            await store.list(limit=1001)

    with_kv(tmp_path, check)


def test_key_limits(tmp_path: Path) -> None:
    async def check(store: Any) -> None:
        await store.put("k" * 512, "fits")
        assert await store.get("k" * 512) == "fits"
        with pytest.raises(
            Exception,
            match=re.escape(
                "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512."
            ),
        ):
            await store.put("k" * 513, "too long")
        with pytest.raises(Exception, match="KV GET failed: 414 UTF-8 encoded length of 514"):
            await store.get("é" * 257)
        with pytest.raises(Exception, match=r"Key name cannot be empty\."):
            await store.put("", "v")
        with pytest.raises(Exception, match=r'"\.\." is not allowed as a key name\.'):
            await store.get("..")

    with_kv(tmp_path, check)


def test_path_like_keys_stay_opaque(tmp_path: Path) -> None:
    keys = ["../../etc/x", "/abs/path", "a\x00b", "a\x00c", "..\\win", "~/.ssh/id"]

    async def check(store: Any) -> None:
        for key in keys:
            await store.put(key, f"value of {key!r}")
        for key in keys:
            assert await store.get(key) == f"value of {key!r}"
        assert sorted(k.name for k in (await store.list()).keys) == sorted(keys)
        assert [k.name for k in (await store.list(prefix="a\x00")).keys] == ["a\x00b", "a\x00c"]

    with_kv(tmp_path, check)
    created = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "src" not in p.parts}
    assert created <= {"kv.sqlite", "kv.sqlite-wal", "kv.sqlite-shm"}
    assert not (tmp_path.parent / "etc").exists()
    assert not os.path.exists("/abs/path")


WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            key = request.url.split("/kv/", 1)[1]
            if request.method == "PUT":
                await self.env.CACHE.put(key, await request.text(), expirationTtl=3600)
                return Response(None, status=204)
            value = await self.env.CACHE.get(key)
            return Response("not found", status=404) if value is None else Response(value)
"""


def test_kv_through_a_worker(tmp_path: Path) -> None:
    async def check(app: Any, client: httpx.AsyncClient) -> None:
        assert (await client.get("/kv/hello")).status_code == 404
        assert (await client.put("/kv/hello", content="world")).status_code == 204
        response = await client.get("/kv/hello")
        assert (response.status_code, response.text) == (200, "world")

    exercise(tmp_path, WORKER, check, {"CACHE": kv(tmp_path)})
