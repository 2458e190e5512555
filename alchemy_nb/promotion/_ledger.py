"""The audit ledger: an append-only, hash-chained record of everything promotion does.

Every plan, deploy, gate request, approval, rejection, promotion, rollback, hold and
policy decision of an app is one event, kept in the app's state store::

    {"seq": 3, "id": "5be1c0a9d2f4", "time": "2026-11-26T01:45:09.123456Z",
     "actor": "alice", "kind": "promotion", "app": "hello", "stage": "prod",
     "release": "3f9a0c1...", "data": {...}, "prev": "sha256:<hash of event 2>",
     "hash": "sha256:<sha256 of this event's canonical JSON without "hash">"}

``seq`` counts from 1 and ``prev`` links each event to the one before it ("" for the
first), so :meth:`Ledger.verify` detects an edited field (the event's hash no longer
matches), a deleted event (a gap in ``seq`` and a broken link), an inserted one (a
duplicate ``seq`` or a broken link, even when the forger recomputed its own hash) and
reordered events, and names the first bad one.

What a chain alone cannot detect, honestly stated: removing events from the *end* (what
is left is a shorter, intact chain), and rewriting one event and every event after it
with recomputed hashes. Both are caught by remembering the ledger's head elsewhere (a
published feed, a commit, a ticket) and passing it back: ``verify(anchor=head)`` fails
unless that event is still in the chain.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast, get_args

from .._canonical import canonical_json
from .._repr import Displayed
from .._secret import Secret
from ..errors import ConfigError, LedgerError, SecretError
from ..state import StateStore
from ._shown import Timeline

if TYPE_CHECKING:
    from xml.etree import ElementTree as ET

__all__ = [
    "EVENT_KINDS",
    "Event",
    "EventKind",
    "Ledger",
    "Verification",
    "event_hash",
    "event_title",
    "to_atom",
    "to_rss",
]

EventKind = Literal[
    "plan",
    "deploy",
    "gate.request",
    "approval",
    "rejection",
    "promotion",
    "rollback",
    "hold",
    "hold.release",
    "policy",
    "health",
    "canary",
]
"""What an event records."""

EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
"""Every event kind, in the order above."""


class Event(TypedDict):
    """One ledger event, exactly as stored (a plain JSON object).

    Example::

        event = await ledger.record("approval", actor="bob", stage="prod", release=rid)
        event["seq"], event["hash"]
    """

    seq: int
    id: str
    time: str
    actor: str
    kind: str
    app: str
    stage: str | None
    release: str | None
    data: dict[str, Any]
    prev: str
    hash: str


_APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # as App names are checked

_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "seq": int,
    "id": str,
    "time": str,
    "actor": str,
    "kind": str,
    "app": str,
    "stage": (str, type(None)),
    "release": (str, type(None)),
    "data": dict,
    "prev": str,
    "hash": str,
}


def event_hash(event: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical JSON of ``event`` without its ``hash`` field.

    Example::

        assert event_hash(event) == event["hash"]   # the event is as recorded
    """
    body = {k: v for k, v in event.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class Verification(Displayed):
    """The result of :meth:`Ledger.verify`.

    ``ok`` is True when the chain is intact. ``count`` is the number of events (damaged
    lines included). ``first_bad`` is the position of the first bad event, which in an
    intact ledger is its ``seq`` and, in the file store, its line; it is None when the
    ledger is fine or no single event can be blamed (a missing anchor). ``reason`` says
    what is wrong, ``head`` is the hash of the last event (keep it to pass back as
    ``anchor`` later).

    Example::

        result = await ledger.verify()
        if not result.ok:
            print(f"event {result.first_bad}: {result.reason}")
    """

    ok: bool
    count: int
    first_bad: int | None = None
    reason: str = ""
    head: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description, as ``alchemy-nb ledger verify --json`` prints it."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people."""
        if self.ok:
            return f"ledger OK: {self.count} events, head {self.head or '(empty)'}"
        at = f" at event {self.first_bad}" if self.first_bad is not None else ""
        return f"ledger FAILED verification{at}: {self.reason}"


class Ledger(Displayed):
    """The audit ledger of one app, kept in its state store.

    Example::

        ledger = Ledger(app.state, "hello")
        await ledger.record("promotion", actor="alice", stage="prod", release=rid)
        assert (await ledger.verify()).ok
    """

    def __init__(
        self, store: StateStore, app: str, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        if not isinstance(app, str) or not _APP_NAME.fullmatch(app):
            raise ConfigError(
                f"{app!r} is not an app name",
                where="Ledger(store, app)",
                fix="pass the app's name: letters, digits, '_', '.' and '-', at most 63",
            )
        self.store = store
        self.app = app
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"Ledger(app={self.app!r}, store={self.store.location!r})"

    async def record(
        self,
        kind: EventKind,
        *,
        actor: str,
        stage: str | None = None,
        release: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append an event and return it, durable and linked to the one before.

        Everything is checked before anything is written: an unknown ``kind``, an empty
        ``actor`` or ``data`` that is not a JSON object is a ``ConfigError``, a
        :class:`~alchemy_nb.Secret` anywhere in ``data`` a ``SecretError`` (the ledger is
        published as a feed). A ledger whose last event is damaged refuses new events
        with ``LedgerError``: run :meth:`verify` to find the damage.

        Example::

            await ledger.record("approval", actor="bob", stage="prod", release=rid,
                                data={"comment": "looks good"})
        """
        where = f"ledger of app {self.app!r}, {kind!r} event"
        if kind not in EVENT_KINDS:
            raise ConfigError(
                f"unknown ledger event kind {kind!r}",
                where=where,
                fix="use one of " + ", ".join(EVENT_KINDS),
            )
        if not isinstance(actor, str) or not actor.strip():
            raise ConfigError(
                "a ledger event needs an actor (who did it)",
                where=where,
                fix="pass actor=NAME; the CLI takes --as NAME, else ALCHEMY_ACTOR, "
                "else GITHUB_ACTOR, else the OS user",
            )
        for name, value in (("stage", stage), ("release", release)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"{name} must be a non-empty string or None, not {value!r}", where=where
                )
        body = _json_object(data, where)
        actor = actor.strip()

        def build(last: dict[str, Any] | None) -> dict[str, Any]:
            seq, prev = 1, ""
            if last is not None:
                seq, prev = self._follow(last)
            event: dict[str, Any] = {
                "seq": seq,
                "id": uuid.uuid4().hex[:12],
                "time": _iso(self._clock()),
                "actor": actor,
                "kind": kind,
                "app": self.app,
                "stage": stage,
                "release": release,
                "data": body,
                "prev": prev,
            }
            event["hash"] = event_hash(event)
            return event

        return cast(Event, await self.store.ledger_append(self.app, build))

    def _follow(self, last: dict[str, Any]) -> tuple[int, str]:
        """The seq and prev of the event after ``last``; refuses to extend a damaged tail."""
        problem = _malformed(last)
        if problem is None and event_hash(last) != last["hash"]:
            problem = f"event {last['seq']} does not match its hash (it was edited)"
        if problem is not None:
            raise LedgerError(
                f"the ledger's last event is damaged, so nothing more can be recorded: {problem}",
                where=f"ledger of app {self.app!r} in {self.store.location}",
                fix="run `alchemy-nb ledger verify`, then restore the ledger from a backup",
            )
        return last["seq"] + 1, last["hash"]

    async def events(self, stage: str | None = None, kind: EventKind | None = None) -> Timeline:
        """The events, oldest first, optionally only one stage's or one kind's.

        Events are returned as stored; :meth:`verify` says whether to trust them. A line
        that cannot be read at all is a ``LedgerError`` naming it.

        Example::

            approvals = await ledger.events(stage="prod", kind="approval")
        """
        if kind is not None and kind not in EVENT_KINDS:
            raise ConfigError(
                f"unknown ledger event kind {kind!r}", fix="use one of " + ", ".join(EVENT_KINDS)
            )
        found = Timeline()
        for entry in await self.store.ledger_read(self.app):
            damage = _damaged(entry)
            if damage is not None:
                raise LedgerError(
                    f"the ledger is damaged: {damage}",
                    where=f"ledger of app {self.app!r}",
                    fix="run `alchemy-nb ledger verify`, then restore the ledger from a backup",
                )
            if stage is not None and entry.get("stage") != stage:
                continue
            if kind is not None and entry.get("kind") != kind:
                continue
            found.append(cast(Event, entry))
        return found

    async def verify(self, *, anchor: str | None = None) -> Verification:
        """Check the whole chain and name the first bad event; never raises on damage.

        Detects an edited field, a deleted, inserted or moved event, and a line that is
        not an event. With ``anchor`` (the ``head`` of an earlier verification), also
        detects events removed from the end or a rewritten tail, which a chain alone
        cannot (see the module docs).

        Example::

            result = await ledger.verify()
            print(result.describe())   # ledger OK: 12 events, head sha256:...
        """
        entries = await self.store.ledger_read(self.app)
        count = len(entries)
        bad = _first_bad(entries, self.app)
        if bad is not None:
            position, reason = bad
            return Verification(ok=False, count=count, first_bad=position, reason=reason)
        head = entries[-1]["hash"] if entries else ""
        if anchor is not None and anchor != "" and all(e["hash"] != anchor for e in entries):
            return Verification(
                ok=False,
                count=count,
                reason=f"no event has the anchor hash {anchor}: events were removed from "
                "the end of the ledger, or it was rewritten",
                head=head,
            )
        return Verification(ok=True, count=count, head=head)


def _first_bad(entries: list[dict[str, Any]], app: str) -> tuple[int, str] | None:
    """(position, reason) of the first event that breaks the chain, or None.

    Positions count from 1; in an intact ledger an event's position is its ``seq``.
    """
    prev_hash = ""
    for index, entry in enumerate(entries):
        pos = index + 1
        damage = _damaged(entry)
        if damage is not None:
            return pos, f"line {pos} is not an event: {damage}"
        problem = _malformed(entry)
        if problem is not None:
            return pos, f"line {pos} is not a well-formed event: {problem}"
        seq = entry["seq"]
        if event_hash(entry) != entry["hash"]:
            return pos, (
                f"line {pos} (event {seq}) was edited or forged: its content does not "
                "match its hash"
            )
        if seq > pos:
            later = [i + 1 for i, e in enumerate(entries[pos:], start=pos) if _get(e, "seq") == pos]
            if later:
                return pos, (
                    f"events are out of order: line {pos} holds event {seq}, "
                    f"event {pos} is at line {later[0]}"
                )
            return pos, f"event {pos} is missing (deleted): line {pos} holds event {seq}"
        if seq < pos:
            if entry["prev"] == _hash_before(entries, pos - 1):
                return pos - 1, (
                    f"line {pos - 1} was inserted: the event after it (event {seq}) links "
                    "straight to the event before it"
                )
            return pos, f"line {pos} holds event {seq} again: it was inserted or moved"
        if entry["app"] != app:
            return pos, f"event {pos} belongs to app {entry['app']!r}, not {app!r}"
        if entry["prev"] != prev_hash:
            if pos == 1:
                return pos, "event 1 links to an earlier event, but it is the first"
            if pos < len(entries) and _get(entries[pos], "prev") == entry["hash"]:
                # the next event vouches for this one, so the one before it changed
                return pos - 1, (
                    f"event {pos - 1} was rewritten: event {pos} recorded a different hash for it"
                )
            return pos, (
                f"event {pos} does not link to event {pos - 1}: it was forged or "
                f"rewritten, or event {pos - 1} was"
            )
        prev_hash = entry["hash"]
    return None


def _hash_before(entries: list[dict[str, Any]], pos: int) -> Any:
    """The hash an event at ``pos`` links to: that of the event at pos - 1 ("" for 1)."""
    return "" if pos <= 1 else _get(entries[pos - 2], "hash")


def _get(entry: Mapping[str, Any], key: str) -> Any:
    return entry.get(key)


def _damaged(entry: Mapping[str, Any]) -> str | None:
    """The store's reason when ``entry`` is its placeholder for an unreadable line."""
    if len(entry) == 1 and "damaged" in entry:
        return str(entry["damaged"])
    return None


def _malformed(entry: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of ``entry``, or None."""
    damage = _damaged(entry)
    if damage is not None:
        return damage
    missing = sorted(set(_FIELD_TYPES) - set(entry))
    if missing:
        return "missing " + ", ".join(missing)
    extra = sorted(set(entry) - set(_FIELD_TYPES))
    if extra:
        return "unexpected " + ", ".join(extra)
    for name, expected in _FIELD_TYPES.items():
        value = entry[name]
        if not isinstance(value, expected) or isinstance(value, bool):
            return f"{name} has the wrong type ({type(value).__name__})"
    if entry["seq"] < 1:
        return f"seq {entry['seq']} is not positive"
    return None


def _json_object(data: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """``data`` as a plain JSON object, refusing secrets and values JSON cannot hold."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"ledger data must be a dict, not {type(data).__name__}",
            where=where,
            fix="pass data={...}",
        )
    _refuse_secrets(data, "data", where)
    try:
        text = json.dumps(dict(data), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"ledger data must be JSON ({exc})",
            where=where,
            fix="pass only strings, numbers, booleans, None, lists and dicts with string keys",
        ) from None
    body: dict[str, Any] = json.loads(text)
    return body


def _refuse_secrets(value: Any, path: str, where: str) -> None:
    if isinstance(value, Secret):
        raise SecretError(
            f"{path} is a Secret, and the ledger is published in plain text",
            where=where,
            fix="record that a secret changed (its name), never the secret itself",
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_secrets(key, f"a key of {path}", where)
            _refuse_secrets(item, f"{path}[{key!r}]", where)
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            _refuse_secrets(item, f"{path}[{i}]", where)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ConfigError("the ledger clock must return an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ----------------------------------------------------------------------------- feeds

ATOM = "http://www.w3.org/2005/Atom"
_EPOCH = "1970-01-01T00:00:00Z"
_PREPOSITIONS = {"deploy": "to", "promotion": "to", "hold": "on", "hold.release": "on"}


def event_title(event: Mapping[str, Any]) -> str:
    """A one-line title for feeds and timelines.

    Example::

        event_title(event)   # 'promotion of 3f9a0c1 to prod by alice'
    """
    title = str(event.get("kind", "event"))
    if event.get("release"):
        title += f" of {_short(str(event['release']))}"
    if event.get("stage"):
        title += f" {_PREPOSITIONS.get(title.split()[0], 'for')} {event['stage']}"
    return f"{title} by {event.get('actor', '?')}"


def _short(release: str) -> str:
    bare = release.split(":", 1)[-1]
    if len(bare) > 7 and all(c in "0123456789abcdef" for c in bare):
        return bare[:7]
    return release


def _guid(event: Mapping[str, Any]) -> str:
    """A stable id: a UUID derived from the app and the event's hash."""
    name = f"alchemy-nb:ledger:{event.get('app', '')}:{event.get('hash', '')}"
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def _summary(event: Mapping[str, Any]) -> str:
    lines = [event_title(event) + "."]
    for key in ("seq", "time", "actor", "kind", "app", "stage", "release"):
        if event.get(key) is not None:
            lines.append(f"{key}: {event[key]}")
    lines.append(f"data: {canonical_json(event.get('data') or {})}")
    lines.append(f"hash: {event.get('hash', '')}")
    return "\n".join(lines)


def _time(event: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["time"])).astimezone(UTC)


def _rfc3339(event: Mapping[str, Any]) -> str:
    return _time(event).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _newest_first(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(events, key=lambda e: int(e.get("seq", 0)), reverse=True)


def _clean(text: str) -> str:
    """Text that XML 1.0 can hold: other control characters become U+FFFD."""
    return "".join(
        c
        if c in "\t\n\r"
        or ("\x20" <= c <= "\ud7ff")
        or ("\ue000" <= c <= "\ufffd")
        or c >= "\U00010000"
        else "\ufffd"
        for c in text
    )


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    from xml.etree import ElementTree as ET  # only feeds need it, not every deploy's record

    element = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _clean(text)
    return element


def to_rss(
    events: Iterable[Mapping[str, Any]],
    *,
    title: str,
    link: str,
    description: str | None = None,
) -> str:
    """The events as an RSS 2.0 document, newest first; the same events give the same text.

    Example::

        xml = to_rss(await ledger.events(stage="prod"), title="hello: prod",
                     link="https://example.com/hello")
    """
    from xml.etree import ElementTree as ET

    ordered = _newest_first(events)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = _add(rss, "channel")
    _add(channel, "title", title)
    _add(channel, "link", link)
    _add(channel, "description", description or f"Audit ledger: {title}")
    _add(channel, "generator", "alchemy-nb")
    if ordered:
        _add(channel, "lastBuildDate", format_datetime(_time(ordered[0]), usegmt=True))
    for event in ordered:
        item = _add(channel, "item")
        _add(item, "title", event_title(event))
        _add(item, "description", _summary(event))
        _add(item, "category", str(event.get("kind", "")))
        _add(item, "guid", _guid(event), isPermaLink="false")
        _add(item, "pubDate", format_datetime(_time(event), usegmt=True))
    return ET.tostring(rss, encoding="unicode", xml_declaration=True) + "\n"


def to_atom(
    events: Iterable[Mapping[str, Any]],
    *,
    title: str,
    link: str,
    feed_id: str,
) -> str:
    """The events as an Atom 1.0 document, newest first; the same events give the same text.

    ``feed_id`` is the feed's permanent IRI (for example ``urn:uuid:...`` or the feed's
    URL). An empty feed is dated 1970-01-01, so that the output stays deterministic.

    Example::

        xml = to_atom(await ledger.events(), title="hello", link="https://example.com",
                      feed_id="https://example.com/hello/ledger.atom")
    """
    from xml.etree import ElementTree as ET

    ordered = _newest_first(events)
    feed = ET.Element("feed", {"xmlns": ATOM})  # unprefixed tags in the Atom namespace
    _add(feed, "id", feed_id)
    _add(feed, "title", title)
    _add(feed, "updated", _rfc3339(ordered[0]) if ordered else _EPOCH)
    _add(feed, "link", href=link, rel="alternate")
    _add(feed, "generator", "alchemy-nb")
    for event in ordered:
        entry = _add(feed, "entry")
        _add(entry, "id", _guid(event))
        _add(entry, "title", event_title(event))
        _add(entry, "updated", _rfc3339(event))
        author = _add(entry, "author")
        _add(author, "name", str(event.get("actor", "")))
        _add(entry, "category", term=str(event.get("kind", "")))
        _add(entry, "content", _summary(event), type="text")
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"
