"""A test resource kind that records every provider call (a fake provider, not a mock)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from alchemy_nb import Input, Outputs, Props, Provider, Resource, ResourceContext, Secret


@dataclass
class Journal:
    """What the provider saw, in order; shared by every Thing of a test."""

    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    fail_on: set[str] = field(default_factory=set)

    def ops(self, op: str | None = None) -> list[str]:
        return [rid for o, rid, _ in self.calls if op is None or o == op]


JOURNAL = Journal()


class ThingProps(Props):
    value: Input[str] = ""
    tag: str = "a"
    sleep: float = 0.0
    token: Secret | None = None
    settings: dict[str, Input[str]] = {}


class ThingOutputs(Outputs):
    value: str
    name: str


class ThingProvider(Provider[ThingProps, ThingOutputs]):
    replace_on = frozenset({"tag"})

    async def _do(self, op: str, ctx: ResourceContext, props: ThingProps) -> None:
        JOURNAL.active += 1
        JOURNAL.max_active = max(JOURNAL.max_active, JOURNAL.active)
        try:
            JOURNAL.calls.append((op, ctx.id, props.value))
            if props.sleep:
                await asyncio.sleep(props.sleep)
            if f"{op}:{ctx.id}" in JOURNAL.fail_on:
                raise RuntimeError(f"{op} of {ctx.id} failed on purpose")
        finally:
            JOURNAL.active -= 1

    async def create(self, ctx: ResourceContext, props: ThingProps) -> ThingOutputs:
        await self._do("create", ctx, props)
        return ThingOutputs(value=str(props.value), name=ctx.physical_name)

    async def update(
        self, ctx: ResourceContext, old: ThingProps, props: ThingProps, outputs: ThingOutputs | None
    ) -> ThingOutputs:
        await self._do("update", ctx, props)
        return ThingOutputs(value=str(props.value), name=ctx.physical_name)

    async def delete(
        self, ctx: ResourceContext, props: ThingProps, outputs: ThingOutputs | None
    ) -> None:
        await self._do("delete", ctx, props)


class Thing(Resource[ThingProps, ThingOutputs]):
    kind = "test::Thing"
    props_model = ThingProps
    outputs_model = ThingOutputs
    provider = ThingProvider


class DeleteFirstProvider(ThingProvider):
    delete_first = True


class UniqueThing(Resource[ThingProps, ThingOutputs]):
    kind = "test::UniqueThing"
    props_model = ThingProps
    outputs_model = ThingOutputs
    provider = DeleteFirstProvider
