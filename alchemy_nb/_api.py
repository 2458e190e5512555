"""Module-level verbs: ``await alchemy_nb.deploy(app, "dev")`` and friends."""

from __future__ import annotations

from typing import Any

from .engine import App, Plan, RunResult

__all__ = ["deploy", "destroy", "plan", "read"]


async def plan(app: App, stage: str | None = None, **options: Any) -> Plan:
    """What ``deploy`` would do to ``stage``. Same as ``await app.plan(stage)``."""
    return await app.plan(stage, **options)


async def deploy(app: App, stage: str | None = None, **options: Any) -> RunResult:
    """Phase ``up`` on ``stage``. Same as ``await app.deploy(stage)``."""
    return await app.deploy(stage, **options)


async def read(app: App, stage: str | None = None, **options: Any) -> RunResult:
    """Phase ``read`` on ``stage``. Same as ``await app.read(stage)``."""
    return await app.read(stage, **options)


async def destroy(app: App, stage: str | None = None, **options: Any) -> RunResult:
    """Phase ``destroy`` on ``stage``. Same as ``await app.destroy(stage)``."""
    return await app.destroy(stage, **options)
