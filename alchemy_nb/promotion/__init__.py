"""Promotion: releases, gates, promotion between stages, and the audit ledger."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
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
    from ._policy import (
        CEDAR_SCHEMA,
        POLICY_ACTIONS,
        Decision,
        Enforcement,
        PlanDecision,
        Policies,
        PolicyAction,
        load_policies,
        mandatory_denials,
    )

__all__ = [
    "CEDAR_SCHEMA",
    "Decision",
    "EVENT_KINDS",
    "Enforcement",
    "Event",
    "EventKind",
    "Ledger",
    "Outcome",
    "POLICY_ACTIONS",
    "Pipeline",
    "PlanDecision",
    "Policies",
    "PolicyAction",
    "ProbeResult",
    "Verification",
    "event_hash",
    "event_title",
    "load_policies",
    "mandatory_denials",
    "resolve_actor",
    "to_atom",
    "to_rss",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "._policy": [
            "CEDAR_SCHEMA",
            "Decision",
            "Enforcement",
            "POLICY_ACTIONS",
            "PlanDecision",
            "Policies",
            "PolicyAction",
            "load_policies",
            "mandatory_denials",
        ],
        "._ledger": [
            "EVENT_KINDS",
            "Event",
            "EventKind",
            "Ledger",
            "Verification",
            "event_hash",
            "event_title",
            "to_atom",
            "to_rss",
        ],
        "._pipeline": ["Outcome", "Pipeline", "ProbeResult", "resolve_actor"],
    },
)
