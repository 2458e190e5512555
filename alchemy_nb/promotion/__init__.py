"""Promotion: releases, gates, promotion between stages, and the audit ledger."""

from ._ledger import (
    EVENT_KINDS,
    Event,
    EventKind,
    Ledger,
    Verification,
    event_hash,
    event_title,
    to_atom,
    to_rss,
)
from ._pipeline import Outcome, Pipeline, ProbeResult, resolve_actor

__all__ = [
    "EVENT_KINDS",
    "Event",
    "EventKind",
    "Ledger",
    "Outcome",
    "Pipeline",
    "ProbeResult",
    "Verification",
    "event_hash",
    "event_title",
    "resolve_actor",
    "to_atom",
    "to_rss",
]
