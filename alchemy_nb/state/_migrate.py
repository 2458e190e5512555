"""Copying an app's state between stores, and exporting it as readable JSON.

``migrate`` copies resources, stage metadata, releases (with their files), stage
histories, gates and the ledger of one stage or all, from one store to another
(``alchemy-nb state migrate --to URL``). Every check happens before the first write:
the source's ledger chain must verify, the target must not hold different state for a
copied stage (unless forced) and its ledger must be a prefix of the source's. Each stage
is copied under both stores' stage locks, so no deploy changes it meanwhile; the target's
chain is verified again at the end.

The chain check itself belongs to the promotion layer: callers pass ``verify``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, LedgerError
from ._protocol import DOC_KINDS, StageState, StateStore

__all__ = ["EXPORT_FORMAT", "MigrationReport", "export_state", "migrate"]

EXPORT_FORMAT = "alchemy-nb/export@1"

Verify = Callable[[StateStore], Awaitable[tuple[bool, str]]]
"""``(ok, description)`` of a store's ledger chain for the app."""


@dataclass
class MigrationReport:
    """What a migration copied."""

    app: str
    source: str
    target: str
    stages: list[str] = field(default_factory=list)
    resources: int = 0
    releases: int = 0
    gates: int = 0
    ledger_copied: int = 0
    ledger_total: int = 0
    source_chain: str = ""
    target_chain: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        return (
            f"copied {self.app} stages {', '.join(self.stages) or '(none)'}: "
            f"{self.resources} resource(s), {self.releases} release(s), {self.gates} gate(s), "
            f"{self.ledger_copied} new ledger event(s) ({self.ledger_total} in all) "
            f"from {self.source} to {self.target}; target chain: {self.target_chain}"
        )


async def _all_stages(store: StateStore, app: str) -> list[str]:
    return sorted(set(await store.stages(app)) | set(store.doc_keys(app, "stages")))


async def _chosen_stages(store: StateStore, app: str, stage: str | None) -> list[str]:
    known = await _all_stages(store, app)
    if stage is None:
        return known
    if stage not in known:
        raise ConfigError(
            f"stage {stage!r} of app {app!r} has no state",
            where=store.location,
            fix="stages with state: " + (", ".join(known) or "none"),
        )
    return [stage]


def _promotion_of(store: StateStore, app: str, stages: list[str] | None) -> dict[str, Any]:
    """The stage histories, gates and releases that belong to ``stages`` (None: all)."""
    stage_docs = {
        name: doc
        for name in store.doc_keys(app, "stages")
        if stages is None or name in stages
        if (doc := store.doc_get(app, "stages", name)) is not None
    }
    gates = {
        key: gate
        for key in store.doc_keys(app, "gates")
        if (gate := store.doc_get(app, "gates", key)) is not None
        and (stages is None or gate.get("stage") in stages)
    }
    if stages is None:
        wanted = set(store.doc_keys(app, "releases"))
    else:
        wanted = {g["release"] for g in gates.values() if g.get("release")}
        for doc in stage_docs.values():
            wanted.update(e["release"] for e in doc.get("history", []) if e.get("release"))
            if doc.get("current"):
                wanted.add(doc["current"])
    releases = {key: rel for key in sorted(wanted) if (rel := store.doc_get(app, "releases", key))}
    return {"stages": stage_docs, "gates": gates, "releases": releases}


def _events_of_stages(events: list[dict[str, Any]], stages: list[str] | None) -> list[Any]:
    return [e for e in events if stages is None or e.get("stage") in (None, *stages)]


async def migrate(
    source: StateStore,
    target: StateStore,
    app: str,
    *,
    stage: str | None = None,
    force: bool = False,
    verify: Verify,
    timeout: float = 60.0,
) -> MigrationReport:
    """Copy ``app``'s state (one ``stage``, or all) from ``source`` to ``target``."""
    if source.location == target.location:
        raise ConfigError(
            "the source and target stores are the same",
            where=source.location,
            fix="pass another URL to --to",
        )
    report = MigrationReport(app, source.location, target.location)
    stages = await _chosen_stages(source, app, stage)
    ok, report.source_chain = await verify(source)
    if not ok:
        raise LedgerError(
            f"the source ledger does not verify: {report.source_chain}",
            where=source.location,
            fix="investigate the ledger (alchemy-nb ledger verify) before migrating it",
        )
    source_events = await source.ledger_read(app)
    target_events = await target.ledger_read(app)
    hashes = [e.get("hash") for e in source_events]
    if [e.get("hash") for e in target_events] != hashes[: len(target_events)]:
        raise LedgerError(
            "the target store already has a different ledger for this app",
            where=target.location,
            fix="migrate into a store without this app's ledger (or one that holds an "
            "earlier copy of it)",
        )
    promotion = _promotion_of(source, app, [stage] if stage else None)
    conflicts = []
    for kind in DOC_KINDS:
        for key, doc in promotion[kind].items():
            found = target.doc_get(app, kind, key)
            if found is not None and found != doc and kind != "releases":
                conflicts.append(f"{kind} record {key!r}")
    for name in stages:
        theirs = await target.load(app, name)
        if theirs.records and not force:
            ours = await source.load(app, name)
            if (theirs.records, theirs.meta) != (ours.records, ours.meta):
                conflicts.append(f"the resources of stage {name!r}")
    if conflicts and not force:
        raise ConfigError(
            "the target store already holds different state: " + "; ".join(conflicts),
            where=target.location,
            fix="pass --force to overwrite it with the source's",
        )

    # every check passed: write
    for name in stages:
        async with (
            source.lock(app, name, operation="migrate", timeout=timeout),
            target.lock(app, name, operation="migrate", timeout=timeout),
        ):
            state = await source.load(app, name)
            if state.records or state.meta:
                copy = StageState(app, name, dict(state.records), dict(state.meta))
                await target.checkpoint(copy)
            report.resources += len(state.records)
    for rel in promotion["releases"].values():
        for sha in rel.get("files", {}).values():
            data = source.blob_get(app, sha)
            if data is None:
                raise LedgerError(
                    f"release {rel['id'][:12]} lacks a file's contents (blob {sha})",
                    where=source.location,
                    fix="restore the source store from a backup",
                )
            target.blob_put(app, sha, data)
        target.doc_put(app, "releases", rel["id"], rel, create=True)
    for key, gate in promotion["gates"].items():
        target.doc_put(app, "gates", key, gate)
    for name, doc in promotion["stages"].items():
        target.doc_put(app, "stages", name, doc)
    report.releases = len(promotion["releases"])
    report.gates = len(promotion["gates"])
    report.stages = stages

    for event in source_events[len(target_events) :]:
        await target.ledger_append(app, _exactly(event, target.location))
        report.ledger_copied += 1
    report.ledger_total = len(source_events)
    ok, report.target_chain = await verify(target)
    if not ok:
        raise LedgerError(
            f"the copied ledger does not verify: {report.target_chain}",
            where=target.location,
            fix="the target changed during the migration; run it again",
        )
    return report


def _exactly(event: dict[str, Any], where: str) -> Callable[[dict[str, Any] | None], Any]:
    def build(last: dict[str, Any] | None) -> dict[str, Any]:
        if (last or {}).get("hash", "") != event.get("prev", ""):
            raise LedgerError(
                "the target ledger changed while it was being copied",
                where=where,
                fix="run the migration again",
            )
        return event

    return build


async def export_state(
    store: StateStore, app: str, *, stage: str | None = None, verify: Verify
) -> dict[str, Any]:
    """``app``'s state (one ``stage``, or all) as one readable JSON document.

    Secrets stay as the store keeps them: sealed."""
    stages = await _chosen_stages(store, app, stage)
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "app": app,
        "store": store.location,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": {},
    }
    for name in stages:
        state = await store.load(app, name)
        lock = await store.current_lock(app, name)
        doc["stages"][name] = {
            "resources": dict(sorted(state.records.items())),
            "meta": state.meta,
            "interrupted": state.replayed > 0,
            "lock": lock.to_json() if lock else None,
        }
    promotion = _promotion_of(store, app, [stage] if stage else None)
    doc["promotion"] = {
        "stages": promotion["stages"],
        "releases": promotion["releases"],
        "gates": sorted(promotion["gates"].values(), key=lambda g: g.get("requested_at", "")),
    }
    ok, chain = await verify(store)
    events = await store.ledger_read(app)
    doc["ledger"] = {
        "verified": ok,
        "chain": chain,
        "events": _events_of_stages(events, [stage] if stage else None),
    }
    return doc
