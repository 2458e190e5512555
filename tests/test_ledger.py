"""The audit ledger: a hash chain in real files, tampering named, concurrent appenders, feeds."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from conftest import run

import alchemy_nb.promotion
from alchemy_nb import Secret
from alchemy_nb.errors import ConfigError, LedgerError, SecretError
from alchemy_nb.promotion import (
    EVENT_KINDS,
    Event,
    Ledger,
    Verification,
    event_hash,
    event_title,
    to_atom,
    to_rss,
)
from alchemy_nb.state import FileStore, StateStore

APP = "shop"
RELEASE = "3f9a0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f"
ATOM = "{http://www.w3.org/2005/Atom}"


def ledger_in(tmp_path: Path, **kwargs: Any) -> Ledger:
    return Ledger(FileStore(tmp_path / ".alchemy"), APP, **kwargs)


def ledger_file(tmp_path: Path) -> Path:
    return tmp_path / ".alchemy" / APP / "ledger.jsonl"


def record_five(ledger: Ledger) -> list[Event]:
    """plan, deploy, gate.request, approval, promotion: a typical path to prod."""

    async def go() -> list[Event]:
        return [
            await ledger.record("plan", actor="alice", stage="prod", data={"changes": 2}),
            await ledger.record("deploy", actor="alice", stage="staging", release=RELEASE),
            await ledger.record("gate.request", actor="alice", stage="prod", release=RELEASE),
            await ledger.record(
                "approval", actor="bob", stage="prod", release=RELEASE, data={"comment": "ok"}
            ),
            await ledger.record("promotion", actor="alice", stage="prod", release=RELEASE),
        ]

    return run(go())


def lines_of(tmp_path: Path) -> list[str]:
    return ledger_file(tmp_path).read_text().splitlines()


def write_lines(tmp_path: Path, lines: list[str]) -> None:
    ledger_file(tmp_path).write_text("".join(line + "\n" for line in lines))


def forged(template: dict[str, Any], **changes: Any) -> str:
    """A line a forger would write: fields changed and its own hash recomputed."""
    event = {**template, **changes}
    event["hash"] = event_hash(event)
    return json.dumps(event)


# --------------------------------------------------------------------------- the chain


def test_the_store_follows_the_protocol(tmp_path: Path) -> None:
    store: StateStore = FileStore(tmp_path)
    assert run(store.ledger_read(APP)) == []


def test_events_form_a_hash_chain(tmp_path: Path) -> None:
    events = record_five(ledger_in(tmp_path))
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert events[0]["prev"] == ""
    for before, after in itertools.pairwise(events):
        assert after["prev"] == before["hash"]
    for event in events:
        assert event["hash"] == event_hash(event)
        assert event["hash"].startswith("sha256:")
        assert len(event["id"]) == 12
        int(event["id"], 16)
        assert event["time"].endswith("Z")
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
        assert event["app"] == APP
        assert sorted(event) == sorted(Event.__annotations__)
    assert len({e["id"] for e in events}) == 5
    # stored as written, one JSON object per line
    assert [json.loads(line) for line in lines_of(tmp_path)] == events
    assert run(ledger_in(tmp_path).events()) == events


def test_events_are_filtered_by_stage_and_kind(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    assert [e["kind"] for e in run(ledger.events(stage="prod"))] == [
        "plan",
        "gate.request",
        "approval",
        "promotion",
    ]
    assert [e["actor"] for e in run(ledger.events(kind="approval"))] == ["bob"]
    assert run(ledger.events(stage="staging", kind="approval")) == []


def test_verify_passes_on_a_fresh_and_an_empty_ledger(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    assert run(ledger.verify()) == Verification(ok=True, count=0)
    events = record_five(ledger)
    result = run(ledger.verify())
    assert result.ok
    assert (result.count, result.first_bad, result.reason) == (5, None, "")
    assert result.head == events[-1]["hash"]
    assert result.describe().startswith("ledger OK: 5 events")
    assert result.to_json()["ok"] is True


def test_every_event_kind_can_be_recorded(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    for kind in EVENT_KINDS:
        run(ledger.record(kind, actor="ci"))  # type: ignore[arg-type]
    assert [e["kind"] for e in run(ledger.events())] == list(EVENT_KINDS)
    assert run(ledger.verify()).ok


# ------------------------------------------------------------------------- tampering


def edit_field(lines: list[str]) -> list[str]:
    event = json.loads(lines[2])
    event["actor"] = "mallory"
    return [*lines[:2], json.dumps(event), *lines[3:]]


def edit_data(lines: list[str]) -> list[str]:
    return [*lines[:3], lines[3].replace('"ok"', '"LGTM"'), *lines[4:]]


def edit_and_rehash(lines: list[str]) -> list[str]:
    return [*lines[:1], forged(json.loads(lines[1]), actor="mallory"), *lines[2:]]


def delete_line(lines: list[str]) -> list[str]:
    return [*lines[:2], *lines[3:]]


def delete_first_line(lines: list[str]) -> list[str]:
    return lines[1:]


def insert_forged_with_own_hash(lines: list[str]) -> list[str]:
    """A forged approval placed as event 3: right seq, right prev, right own hash."""
    second = json.loads(lines[1])
    fake = forged(
        json.loads(lines[3]), seq=3, prev=second["hash"], actor="mallory", id="0badc0ffee00"
    )
    return [*lines[:2], fake, *lines[2:]]


def insert_forged_with_new_seq(lines: list[str]) -> list[str]:
    fake = forged(json.loads(lines[4]), seq=6, actor="mallory")
    return [*lines[:3], fake, *lines[3:]]


def insert_forged_with_wrong_link(lines: list[str]) -> list[str]:
    """Replaces event 3 with a self-consistent forgery that links nowhere."""
    fake = forged(json.loads(lines[2]), prev="sha256:" + "0" * 64, actor="mallory")
    return [*lines[:2], fake, *lines[3:]]


def swap_lines(lines: list[str]) -> list[str]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def move_line_to_end(lines: list[str]) -> list[str]:
    return [lines[0], *lines[2:], lines[1]]


def garble_line(lines: list[str]) -> list[str]:
    return [*lines[:3], lines[3][: len(lines[3]) // 2], *lines[4:]]


def blank_line(lines: list[str]) -> list[str]:
    return [*lines[:1], "", *lines[1:]]


def not_an_object(lines: list[str]) -> list[str]:
    return [*lines[:4], "[1, 2, 3]"]


def other_apps_event(lines: list[str]) -> list[str]:
    return [*lines[:1], forged(json.loads(lines[1]), app="other"), *lines[2:]]


def missing_field(lines: list[str]) -> list[str]:
    event = json.loads(lines[2])
    del event["actor"]
    return [*lines[:2], json.dumps(event), *lines[3:]]


@pytest.mark.parametrize(
    ("tamper", "first_bad", "words"),
    [
        (edit_field, 3, "edited"),
        (edit_data, 4, "edited"),
        (edit_and_rehash, 2, "event 2 was rewritten"),
        (delete_line, 3, "event 3 is missing"),
        (delete_first_line, 1, "event 1 is missing"),
        (insert_forged_with_own_hash, 3, "line 3 was inserted"),
        (insert_forged_with_new_seq, 4, "line 4 holds event 6"),
        (insert_forged_with_wrong_link, 3, "event 3 does not link to event 2"),
        (swap_lines, 2, "out of order: line 2 holds event 3, event 2 is at line 3"),
        (move_line_to_end, 2, "event 2 is at line 5"),
        (garble_line, 4, "ledger.jsonl:4 is not valid JSON"),
        (blank_line, 2, "ledger.jsonl:2 is blank"),
        (not_an_object, 5, "ledger.jsonl:5 is not a JSON object"),
        (other_apps_event, 2, "belongs to app 'other'"),
        (missing_field, 3, "missing actor"),
    ],
)
def test_tampering_is_detected_and_the_first_bad_event_named(
    tmp_path: Path, tamper: Callable[[list[str]], list[str]], first_bad: int, words: str
) -> None:
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    write_lines(tmp_path, tamper(lines_of(tmp_path)))

    result = run(ledger.verify())

    assert not result.ok
    assert result.first_bad == first_bad, result.reason
    assert words in result.reason
    assert f"at event {first_bad}" in result.describe()


def test_every_field_is_covered_by_the_hash(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    original = lines_of(tmp_path)
    changes = {
        "seq": 9,
        "id": "ffffffffffff",
        "time": "2020-01-01T00:00:00.000000Z",
        "actor": "eve",
        "kind": "rollback",
        "stage": "dev",
        "release": RELEASE,
        "data": {"changes": 3},
        "prev": "sha256:" + "1" * 64,
    }
    for name, value in changes.items():
        event = json.loads(original[0])
        event[name] = value
        write_lines(tmp_path, [json.dumps(event), *original[1:]])
        result = run(ledger.verify())
        assert (result.ok, result.first_bad) == (False, 1), name


def test_a_damaged_line_is_named_by_events_too(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    write_lines(tmp_path, garble_line(lines_of(tmp_path)))
    with pytest.raises(LedgerError, match=r"ledger\.jsonl:4 is not valid JSON"):
        run(ledger.events())


def test_a_chain_cannot_see_its_tail_cut_off_but_an_anchor_can(tmp_path: Path) -> None:
    """Deleting the last events leaves a shorter, intact chain: nothing in the file can
    tell. A head remembered elsewhere (``anchor``) does."""
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    head = run(ledger.verify()).head
    write_lines(tmp_path, lines_of(tmp_path)[:3])

    alone = run(ledger.verify())
    assert (alone.ok, alone.count) == (True, 3)  # the documented limit of a chain

    anchored = run(ledger.verify(anchor=head))
    assert not anchored.ok
    assert anchored.first_bad is None
    assert "removed from the end" in anchored.reason
    assert run(ledger.verify(anchor=alone.head)).ok


def test_recording_onto_a_tampered_last_event_is_refused(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    record_five(ledger)
    lines = lines_of(tmp_path)
    write_lines(tmp_path, [*lines[:4], lines[4].replace('"alice"', '"mallory"')])
    with pytest.raises(LedgerError, match="last event is damaged"):
        run(ledger.record("rollback", actor="alice", stage="prod"))
    assert len(lines_of(tmp_path)) == 5  # nothing appended


# ---------------------------------------------------------------------- crash, concurrency


def test_a_torn_last_line_is_ignored_and_dropped_before_appending(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    events = record_five(ledger)
    with ledger_file(tmp_path).open("ab") as fh:  # a crash mid-append: no newline
        fh.write(b'{"seq":6,"id":"torn-tail","time":"2026-')  # not hex: no hash holds it

    assert run(ledger.verify()) == Verification(ok=True, count=5, head=events[-1]["hash"])
    sixth = run(ledger.record("rollback", actor="alice", stage="prod", release=RELEASE))

    assert (sixth["seq"], sixth["prev"]) == (6, events[-1]["hash"])
    assert ledger_file(tmp_path).read_bytes().endswith(b"}\n")
    assert b"torn-tail" not in ledger_file(tmp_path).read_bytes()
    assert [json.loads(line) for line in lines_of(tmp_path)] == [*events, sixth]
    assert run(ledger.verify()).ok


def test_a_torn_only_line_leaves_an_empty_ledger(tmp_path: Path) -> None:
    ledger_file(tmp_path).parent.mkdir(parents=True)
    ledger_file(tmp_path).write_bytes(b'{"seq":1,"id"')
    ledger = ledger_in(tmp_path)
    assert run(ledger.verify()) == Verification(ok=True, count=0)
    first = run(ledger.record("plan", actor="alice"))
    assert (first["seq"], first["prev"]) == (1, "")
    assert lines_of(tmp_path) == [json.dumps(first, separators=(",", ":"))]


def test_long_lines_are_chained_across_read_chunks(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    big = {"notes": "x" * 200_000}
    for _ in range(3):
        run(ledger.record("plan", actor="alice", data=big))
    assert run(ledger.verify()) == Verification(
        ok=True, count=3, head=run(ledger.events())[-1]["hash"]
    )


def test_a_failing_build_writes_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)

    def build(last: dict[str, Any] | None) -> dict[str, Any]:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        run(store.ledger_append(APP, build))
    assert run(store.ledger_read(APP)) == []


def test_concurrent_appends_from_threads_never_fork_the_chain(tmp_path: Path) -> None:
    import asyncio

    ledger = ledger_in(tmp_path)

    async def many() -> list[Event]:
        return await asyncio.gather(
            *(ledger.record("health", actor=f"probe{i}", stage="dev") for i in range(40))
        )

    events = run(many())
    assert sorted(e["seq"] for e in events) == list(range(1, 41))
    result = run(ledger.verify())
    assert (result.ok, result.count) == (True, 40), result.reason


APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from alchemy_nb.promotion import Ledger
    from alchemy_nb.state import FileStore

    root, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Ledger(FileStore(root), "shop")
    print("ready", flush=True)
    sys.stdin.read()  # the start signal: stdin closed, every appender starts at once

    async def main() -> None:
        for i in range(n):
            await ledger.record("deploy", actor=who, stage="dev", data={"i": i})

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_concurrent_appends_from_eight_processes_make_one_chain(tmp_path: Path) -> None:
    root, writers, each = tmp_path / ".alchemy", 8, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(root), f"w{n}", str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()

    ledger = Ledger(FileStore(root), APP)
    result = run(ledger.verify())
    assert (result.ok, result.count) == (True, writers * each), result.reason
    events = run(ledger.events())
    assert [e["seq"] for e in events] == list(range(1, writers * each + 1))
    for n in range(writers):  # each writer's own events stay in its order
        assert [e["data"]["i"] for e in events if e["actor"] == f"w{n}"] == list(range(each))


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("actor", ["", "   ", "\n"])
def test_an_empty_actor_is_refused_and_nothing_recorded(tmp_path: Path, actor: str) -> None:
    ledger = ledger_in(tmp_path)
    with pytest.raises(ConfigError, match="needs an actor") as info:
        run(ledger.record("approval", actor=actor, stage="prod", release=RELEASE))
    assert "--as NAME" in str(info.value)
    assert not ledger_file(tmp_path).exists()


@pytest.mark.parametrize(
    "data",
    [
        {"token": Secret("hunter2")},
        {"nested": {"list": [1, Secret("hunter2", name="API_KEY")]}},
        {"tuple": ("a", Secret("hunter2"))},
    ],
)
def test_secrets_are_refused(tmp_path: Path, data: dict[str, Any]) -> None:
    ledger = ledger_in(tmp_path)
    with pytest.raises(SecretError, match="is a Secret"):
        run(ledger.record("deploy", actor="alice", stage="prod", data=data))
    assert not ledger_file(tmp_path).exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"when": datetime.now(UTC)}, "must be JSON"),
        ({"ratio": float("nan")}, "must be JSON"),
        (["not", "an", "object"], "must be a dict"),
    ],
)
def test_data_must_be_a_json_object(tmp_path: Path, data: Any, words: str) -> None:
    ledger = ledger_in(tmp_path)
    with pytest.raises(ConfigError, match=words):
        run(ledger.record("plan", actor="alice", data=data))
    assert not ledger_file(tmp_path).exists()


def test_data_is_stored_as_plain_json(tmp_path: Path) -> None:
    event = run(ledger_in(tmp_path).record("plan", actor=" alice ", data={"ids": ("a", "b")}))
    assert event["data"] == {"ids": ["a", "b"]}
    assert event["actor"] == "alice"
    assert run(ledger_in(tmp_path).verify()).ok


def test_unknown_kinds_and_bad_names_are_refused(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    with pytest.raises(ConfigError, match="unknown ledger event kind 'promote'"):
        run(ledger.record("promote", actor="alice"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown ledger event kind"):
        run(ledger.events(kind="approve"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="stage must be a non-empty string"):
        run(ledger.record("plan", actor="alice", stage=""))
    with pytest.raises(ConfigError, match="is not an app name"):
        Ledger(FileStore(tmp_path), "../escape")
    assert not ledger_file(tmp_path).exists()


# ----------------------------------------------------------------------------- feeds


def fixed_clock() -> Callable[[], datetime]:
    moments = iter(
        datetime(2026, 11, 26, 9, 0, tzinfo=UTC) + timedelta(minutes=i) for i in range(99)
    )
    return lambda: next(moments)


def test_titles_read_as_sentences(tmp_path: Path) -> None:
    events = record_five(ledger_in(tmp_path))
    assert [event_title(e) for e in events] == [
        "plan for prod by alice",
        "deploy of 3f9a0c1 to staging by alice",
        "gate.request of 3f9a0c1 for prod by alice",
        "approval of 3f9a0c1 for prod by bob",
        "promotion of 3f9a0c1 to prod by alice",
    ]


def test_rss_feed_is_valid_rss_2(tmp_path: Path) -> None:
    events = record_five(ledger_in(tmp_path, clock=fixed_clock()))
    text = to_rss(events, title="shop ledger", link="https://example.com/shop")

    rss = ET.fromstring(text)
    assert (rss.tag, rss.get("version")) == ("rss", "2.0")
    channel = rss.find("channel")
    assert channel is not None
    assert channel.findtext("title") == "shop ledger"
    assert channel.findtext("link") == "https://example.com/shop"
    assert channel.findtext("description")
    items = channel.findall("item")
    assert len(items) == 5
    newest = items[0]
    assert newest.findtext("title") == "promotion of 3f9a0c1 to prod by alice"
    guid = newest.find("guid")
    assert guid is not None
    assert guid.get("isPermaLink") == "false"
    assert guid.text and guid.text.startswith("urn:uuid:")
    assert len({item.findtext("guid") for item in items}) == 5
    pub = newest.findtext("pubDate")
    assert pub is not None
    assert parsedate_to_datetime(pub) == datetime(2026, 11, 26, 9, 4, tzinfo=UTC)
    assert text == to_rss(events, title="shop ledger", link="https://example.com/shop")


def test_atom_feed_is_valid_atom_1(tmp_path: Path) -> None:
    events = record_five(ledger_in(tmp_path, clock=fixed_clock()))
    text = to_atom(events, title="shop", link="https://example.com", feed_id="urn:x-shop:ledger")

    feed = ET.fromstring(text)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == "urn:x-shop:ledger"
    assert feed.findtext(f"{ATOM}title") == "shop"
    assert feed.findtext(f"{ATOM}updated") == "2026-11-26T09:04:00.000000Z"
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 5
    first = entries[-1]
    assert first.findtext(f"{ATOM}title") == "plan for prod by alice"
    assert first.findtext(f"{ATOM}updated") == "2026-11-26T09:00:00.000000Z"
    assert first.findtext(f"{ATOM}author/{ATOM}name") == "alice"
    ids = [entry.findtext(f"{ATOM}id") for entry in entries]
    assert all(i and i.startswith("urn:uuid:") for i in ids)
    assert len(set(ids)) == 5
    # the same event has the same id in both feeds
    rss = ET.fromstring(to_rss(events, title="t", link="l"))
    assert [item.findtext("guid") for item in rss.iter("item")] == ids
    assert text == to_atom(
        events, title="shop", link="https://example.com", feed_id="urn:x-shop:ledger"
    )


def test_feeds_of_awkward_text_and_of_nothing_still_parse(tmp_path: Path) -> None:
    ledger = ledger_in(tmp_path)
    run(ledger.record("rejection", actor="<bob> & \x07co", stage="prod", data={"why": "]]>\x00"}))
    events = run(ledger.events())
    for text in (
        to_rss(events, title="a & b", link="https://example.com"),
        to_atom(events, title="a & b", link="https://example.com", feed_id="urn:x:1"),
        to_rss([], title="empty", link="https://example.com"),
        to_atom([], title="empty", link="https://example.com", feed_id="urn:x:2"),
    ):
        ET.fromstring(text)


def test_the_promotion_package_has_a_sorted_all() -> None:
    module = alchemy_nb.promotion
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name
