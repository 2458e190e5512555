"""Promotion: releases, gates, promotion between stages, and the audit ledger."""

import importlib
from typing import TYPE_CHECKING, Any

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

_LAZY = {
    "CEDAR_SCHEMA": "alchemy_nb.promotion._policy",
    "Decision": "alchemy_nb.promotion._policy",
    "EVENT_KINDS": "alchemy_nb.promotion._ledger",
    "Enforcement": "alchemy_nb.promotion._policy",
    "Event": "alchemy_nb.promotion._ledger",
    "EventKind": "alchemy_nb.promotion._ledger",
    "Ledger": "alchemy_nb.promotion._ledger",
    "Outcome": "alchemy_nb.promotion._pipeline",
    "POLICY_ACTIONS": "alchemy_nb.promotion._policy",
    "Pipeline": "alchemy_nb.promotion._pipeline",
    "PlanDecision": "alchemy_nb.promotion._policy",
    "Policies": "alchemy_nb.promotion._policy",
    "PolicyAction": "alchemy_nb.promotion._policy",
    "ProbeResult": "alchemy_nb.promotion._pipeline",
    "Verification": "alchemy_nb.promotion._ledger",
    "event_hash": "alchemy_nb.promotion._ledger",
    "event_title": "alchemy_nb.promotion._ledger",
    "load_policies": "alchemy_nb.promotion._policy",
    "mandatory_denials": "alchemy_nb.promotion._policy",
    "resolve_actor": "alchemy_nb.promotion._pipeline",
    "to_atom": "alchemy_nb.promotion._ledger",
    "to_rss": "alchemy_nb.promotion._ledger",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alchemy_nb.promotion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
