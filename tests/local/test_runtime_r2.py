"""R2 in a folder: objects, metadata, ranges, conditionals, listing, multipart, key safety."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_runtime import exercise, r2, run, serve, worker_config, write_worker

NOOP = "def on_fetch(request):\n    return None\n"
MiB = 1024 * 1024


def with_bucket(tmp_path: Path, check: Any) -> None:
    config = worker_config(write_worker(tmp_path / "src", NOOP), {"FILES": r2(tmp_path)})

    async def main() -> None:
        async with serve(config) as (_app, _client):
            await check(_app.env.FILES)

    run(main())


def js_headers(pairs: dict[str, str] | None = None) -> Any:
    import js

    return js.Headers.new(pairs)


def test_put_get_head_and_metadata(tmp_path: Path) -> None:
    async def check(bucket: Any) -> None:
        assert await bucket.get("missing") is None
        assert await bucket.head("missing") is None
        put = await bucket.put(
            "docs/readme.txt",
            "hello r2",
            {
                "httpMetadata": {"contentType": "text/plain", "cacheControl": "max-age=60"},
                "customMetadata": {"owner": "ada"},
            },
        )
        md5 = hashlib.md5(b"hello r2").hexdigest()
        assert (put.key, put.size, put.etag, put.httpEtag) == (
            "docs/readme.txt",
            8,
            md5,
            f'"{md5}"',
        )
        assert put.checksums.md5.to_bytes() == bytes.fromhex(md5)
        assert put.checksums.toJSON() == {"md5": md5}
        assert put.storageClass == "Standard"
        assert abs(put.uploaded.to_py() - datetime.now(UTC)) < timedelta(minutes=1)

        obj = await bucket.get("docs/readme.txt")
        assert obj.httpMetadata.contentType == "text/plain"
        assert obj.customMetadata.owner == "ada"
        assert obj.customMetadata.to_py() == {"owner": "ada"}
        assert obj.range is None
        assert await obj.text() == "hello r2"
        assert obj.bodyUsed
        with pytest.raises(Exception, match="Body has already been used"):
            await obj.text()
        assert (await (await bucket.get("docs/readme.txt")).arrayBuffer()).to_bytes() == b"hello r2"

        head = await bucket.head("docs/readme.txt")
        assert head.etag == md5
        assert not hasattr(head, "body")

        headers = js_headers()
        head.writeHttpMetadata(headers)
        assert headers.get("content-type") == "text/plain"
        assert headers.get("cache-control") == "max-age=60"
        plain: dict[str, str] = {}
        head.writeHttpMetadata(plain)
        assert plain == {"content-type": "text/plain", "cache-control": "max-age=60"}

        await bucket.put(
            "data.json",
            b'{"n": [1, 2]}',
            httpMetadata=js_headers({"Content-Type": "application/json"}),
        )
        data = await bucket.get("data.json")
        assert data.httpMetadata.contentType == "application/json"
        assert (await data.json()).n.to_py() == [1, 2]

        await bucket.put("empty", None)
        assert (await bucket.head("empty")).size == 0

        await bucket.delete("docs/readme.txt")
        assert await bucket.head("docs/readme.txt") is None
        await bucket.delete(["data.json", "empty", "never-existed"])
        assert (await bucket.list()).objects == []

    with_bucket(tmp_path, check)


def test_checksum_verification(tmp_path: Path) -> None:
    async def check(bucket: Any) -> None:
        good = hashlib.sha256(b"x").hexdigest()
        put = await bucket.put("k", "x", sha256=good)
        assert put.checksums.toJSON()["sha256"] == good
        with pytest.raises(Exception, match=r"put: The MD5 checksum you specified did not match"):
            await bucket.put("k", "x", md5="00" * 16)

    with_bucket(tmp_path, check)


def test_range_reads(tmp_path: Path) -> None:
    async def check(bucket: Any) -> None:
        await bucket.put("digits", "0123456789")

        async def read(options: Any) -> tuple[str, Any]:
            obj = await bucket.get("digits", options)
            return await obj.text(), obj.range.to_py() if obj.range is not None else None

        assert await read({"range": {"offset": 2, "length": 3}}) == (
            "234",
            {"offset": 2, "length": 3},
        )
        assert await read({"range": {"offset": 7}}) == ("789", {"offset": 7, "length": 3})
        assert await read({"range": {"length": 2}}) == ("01", {"offset": 0, "length": 2})
        assert await read({"range": {"suffix": 4}}) == ("6789", {"offset": 6, "length": 4})
        assert await read({"range": {"offset": 8, "length": 100}}) == (
            "89",
            {"offset": 8, "length": 2},
        )
        assert await read({"range": js_headers({"Range": "bytes=1-2"})}) == (
            "12",
            {"offset": 1, "length": 2},
        )
        assert (await read({"range": js_headers({"Range": "bytes=-3"})}))[0] == "789"
        with pytest.raises(
            Exception, match=r"get: The requested range is not satisfiable \(10039\)"
        ):
            await bucket.get("digits", range={"offset": 10})

    with_bucket(tmp_path, check)


def test_conditional_get_and_put(tmp_path: Path) -> None:
    async def check(bucket: Any) -> None:
        first = await bucket.put("k", "v1")
        etag = first.etag
        uploaded = first.uploaded.to_py()

        hit = await bucket.get("k", onlyIf={"etagMatches": etag})
        assert await hit.text() == "v1"
        miss = await bucket.get("k", onlyIf={"etagMatches": "nope"})
        assert miss is not None and not hasattr(miss, "body")  # metadata only
        assert miss.etag == etag
        assert not hasattr(await bucket.get("k", onlyIf={"etagDoesNotMatch": etag}), "body")
        assert hasattr(await bucket.get("k", onlyIf={"etagDoesNotMatch": "other"}), "body")
        later = uploaded + timedelta(hours=1)
        earlier = uploaded - timedelta(hours=1)
        assert hasattr(await bucket.get("k", onlyIf={"uploadedBefore": later}), "body")
        assert not hasattr(await bucket.get("k", onlyIf={"uploadedAfter": later}), "body")
        assert hasattr(await bucket.get("k", onlyIf={"uploadedAfter": earlier}), "body")
        assert not hasattr(
            await bucket.get("k", onlyIf=js_headers({"If-None-Match": f'"{etag}"'})), "body"
        )
        assert hasattr(
            await bucket.get("k", onlyIf=js_headers({"If-Match": f'W/"{etag}"'})), "body"
        )

        assert await bucket.put("k", "v2", onlyIf={"etagMatches": "stale"}) is None
        assert await (await bucket.get("k")).text() == "v1"
        replaced = await bucket.put("k", "v2", onlyIf={"etagMatches": etag})
        assert replaced is not None and replaced.etag != etag
        assert await bucket.put("new", "x", onlyIf={"etagDoesNotMatch": "*"}) is not None
        assert await bucket.put("new", "y", onlyIf={"etagDoesNotMatch": "*"}) is None

    with_bucket(tmp_path, check)


def test_list_with_prefix_delimiter_cursor_and_include(tmp_path: Path) -> None:
    keys = [
        "a.txt",
        "photos/2024/1.jpg",
        "photos/2024/2.jpg",
        "photos/2025/1.jpg",
        "photos/x.jpg",
        "z",
    ]

    async def check(bucket: Any) -> None:
        for key in keys:
            await bucket.put(
                key, key, customMetadata={"k": key}, httpMetadata={"contentType": "x/y"}
            )

        everything = await bucket.list()
        assert [o.key for o in everything.objects] == keys
        assert everything.truncated is False
        assert everything.delimitedPrefixes == []
        assert everything.objects[0].customMetadata.to_py() == {}  # not included

        top = await bucket.list(delimiter="/")
        assert [o.key for o in top.objects] == ["a.txt", "z"]
        assert top.delimitedPrefixes == ["photos/"]

        photos = await bucket.list(prefix="photos/", delimiter="/", include=["customMetadata"])
        assert [o.key for o in photos.objects] == ["photos/x.jpg"]
        assert photos.delimitedPrefixes == ["photos/2024/", "photos/2025/"]
        assert photos.objects[0].customMetadata.k == "photos/x.jpg"
        assert photos.objects[0].httpMetadata.to_py() == {}

        seen_objects: list[str] = []
        seen_prefixes: list[str] = []
        cursor = None
        while True:
            page = await bucket.list(
                {"prefix": "photos/", "delimiter": "/", "limit": 1, "cursor": cursor}
            )
            seen_objects += [o.key for o in page.objects]
            seen_prefixes += list(page.delimitedPrefixes)
            if not page.truncated:
                break
            cursor = page.cursor
        assert seen_prefixes == ["photos/2024/", "photos/2025/"]
        assert seen_objects == ["photos/x.jpg"]

        paged: list[str] = []
        cursor = None
        while True:
            page = await bucket.list(limit=2, cursor=cursor)
            paged += [o.key for o in page.objects]
            if not page.truncated:
                assert "cursor" not in page
                break
            cursor = page.cursor
        assert paged == keys

        after = await bucket.list(startAfter="photos/2025/1.jpg")
        assert [o.key for o in after.objects] == ["photos/x.jpg", "z"]
        with pytest.raises(
            Exception, match=r"MaxKeys params must be positive integer <= 1000. \(10022\)"
        ):
            await bucket.list(limit=0)

    with_bucket(tmp_path, check)


def test_key_limits_and_path_like_keys(tmp_path: Path) -> None:
    weird = ["../../etc/x", "/abs/file", "a\x00b", "..", ".", "dir/../../escape"]

    async def check(bucket: Any) -> None:
        await bucket.put("k" * 1024, "fits")
        assert await (await bucket.get("k" * 1024)).text() == "fits"
        with pytest.raises(
            Exception, match=r"put: The specified object name is not valid. \(10020\)"
        ):
            await bucket.put("k" * 1025, "too long")
        with pytest.raises(Exception, match=r"get: The specified object name is not valid"):
            await bucket.get("é" * 513)
        for key in weird:
            await bucket.put(key, f"value {key!r}")
        for key in weird:
            assert await (await bucket.get(key)).text() == f"value {key!r}"
        listed = sorted(o.key for o in (await bucket.list()).objects)
        assert listed == sorted([*weird, "k" * 1024])

    with_bucket(tmp_path, check)
    files = [
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and "src" not in p.parts
    ]
    for path in files:
        parts = path.parts
        assert parts[0] == "files"
        if parts[1] == "blobs":
            assert re.fullmatch(r"[0-9a-f]{2}", parts[2])
            assert re.fullmatch(r"[0-9a-f]{64}", parts[3])
        else:
            assert parts[1] in {"r2.sqlite", "r2.sqlite-wal", "r2.sqlite-shm"}
    assert not (tmp_path / "etc").exists()
    assert not Path("/abs/file").exists()
    assert not (tmp_path / "escape").exists()


def test_identical_contents_are_stored_once_and_removed_with_the_last_reference(
    tmp_path: Path,
) -> None:
    async def check(bucket: Any) -> None:
        await bucket.put("a", "same")
        await bucket.put("b", "same")
        blobs = list((tmp_path / "files" / "blobs").rglob("*/*"))
        assert len(blobs) == 1
        await bucket.delete("a")
        assert blobs[0].exists()
        await bucket.put("b", "different")
        assert not blobs[0].exists()
        assert len(list((tmp_path / "files" / "blobs").rglob("*/*"))) == 1

    with_bucket(tmp_path, check)


def test_multipart_upload(tmp_path: Path) -> None:
    part1, part2, part3 = b"a" * (5 * MiB), b"b" * (5 * MiB), b"tail"

    async def check(bucket: Any) -> None:
        upload = await bucket.createMultipartUpload(
            "big.bin", httpMetadata={"contentType": "application/octet-stream"}
        )
        uploaded = [
            await upload.uploadPart(1, part1),
            await upload.uploadPart(2, part2),
            await upload.uploadPart(3, part3),
        ]
        assert uploaded[0].partNumber == 1
        resumed = bucket.resumeMultipartUpload("big.bin", upload.uploadId)
        obj = await resumed.complete(uploaded)
        assert obj.size == len(part1) + len(part2) + len(part3)
        assert obj.etag.endswith("-3")
        full = await bucket.get("big.bin")
        data = (await full.arrayBuffer()).to_bytes()
        assert data == part1 + part2 + part3
        assert full.httpMetadata.contentType == "application/octet-stream"
        middle = await bucket.get("big.bin", range={"offset": 5 * MiB - 2, "length": 4})
        assert await middle.text() == "aabb"
        with pytest.raises(Exception, match="multipart upload does not exist"):
            await upload.uploadPart(4, b"late")

        small = await bucket.createMultipartUpload("small.bin")
        parts = [await small.uploadPart(1, b"tiny"), await small.uploadPart(2, b"end")]
        with pytest.raises(
            Exception, match=r"smaller than the minimum allowed object size. \(10011\)"
        ):
            await small.complete(parts)
        with pytest.raises(Exception, match=r"parts could not be found. \(10025\)"):
            await small.complete([{"partNumber": 1, "etag": "wrong"}])
        await small.abort()
        assert await bucket.head("small.bin") is None
        with pytest.raises(Exception, match="Part number must be between 1 and 10000"):
            await small.uploadPart(0, b"x")

    with_bucket(tmp_path, check)
    blobs = list((tmp_path / "files" / "blobs").rglob("*/*"))
    assert len(blobs) == 1  # the parts' contents went away with the upload


WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            key = request.url.split("/files/", 1)[1]
            if request.method == "PUT":
                obj = await self.env.FILES.put(key, await request.bytes(),
                                               httpMetadata=request.headers)
                return Response(obj.httpEtag, status=201)
            obj = await self.env.FILES.get(key, range=request.js_object.headers)
            if obj is None:
                return Response("not found", status=404)
            headers = {"etag": obj.httpEtag}
            obj.writeHttpMetadata(headers)
            return Response(obj.body, status=206 if obj.range else 200, headers=headers)
"""


def test_r2_objects_served_by_a_worker(tmp_path: Path) -> None:
    big = bytes(range(256)) * (8 * 1024)  # 2 MiB: streamed from the file in chunks

    async def check(app: Any, client: httpx.AsyncClient) -> None:
        response = await client.put(
            "/files/pic.png", content=big, headers={"content-type": "image/png"}
        )
        assert response.status_code == 201
        response = await client.get("/files/pic.png")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-length"] == str(len(big))
        assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])
        assert response.content == big
        ranged = await client.get("/files/pic.png", headers={"range": "bytes=256-511"})
        assert ranged.status_code == 206
        assert ranged.content == bytes(range(256))
        assert (await client.get("/files/none")).status_code == 404

    exercise(tmp_path, WORKER, check, {"FILES": r2(tmp_path)})
