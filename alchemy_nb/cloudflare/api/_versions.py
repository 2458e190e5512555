"""Worker versions and deployments on the Cloudflare target.

A *version* is one upload of a Worker's code and configuration; a *deployment* says which
versions serve the script's traffic: one at 100%, or two sharing it (a gradual
deployment, for canaries). The engine's deploy uploads a version and deploys it at 100%;
a rollback deploys the earlier version again (nothing is uploaded). :func:`split` moves
traffic between two versions by hand, or from a promotion step.

Example::

    from alchemy_nb.cloudflare.api import active_deployment, list_versions, split

    versions = await list_versions("myapp-api-prod")          # newest first
    await split("myapp-api-prod", {versions[1].id: 90, versions[0].id: 10})
    print((await active_deployment("myapp-api-prod")).split)   # {old: 90.0, new: 10.0}
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ._client import CloudflareClient, CloudflareError, client_for

__all__ = [
    "WorkerDeployment",
    "WorkerVersion",
    "active_deployment",
    "canary",
    "check_split",
    "deploy_split",
    "list_deployments",
    "list_versions",
    "split",
]

MAX_VERSIONS_PER_DEPLOYMENT = 2


@dataclass(frozen=True)
class WorkerVersion:
    """One version of a Worker script: its id, number (1, 2, ...) and annotations."""

    id: str
    number: int
    created_on: str = ""
    message: str = ""
    tag: str = ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        text = f"version {self.number} {self.id}" + (f" ({self.message})" if self.message else "")
        return {"text/plain": text, "text/html": f"<code>{html.escape(text)}</code>"}


@dataclass(frozen=True)
class WorkerDeployment:
    """One deployment: ``split`` maps each version id to its share of traffic (percent)."""

    id: str
    split: dict[str, float] = field(default_factory=dict)
    created_on: str = ""
    source: str = ""
    message: str = ""

    @property
    def serving(self) -> str:
        """The version id with the largest share of traffic."""
        return max(self.split.items(), key=lambda kv: kv[1])[0] if self.split else ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for ``--json``."""
        return {
            "id": self.id,
            "split": dict(self.split),
            "created_on": self.created_on,
            "source": self.source,
            "message": self.message,
        }

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        parts = ", ".join(f"{v}: {p:g}%" for v, p in self.split.items())
        text = f"deployment {self.id}: {parts}"
        return {"text/plain": text, "text/html": f"<code>{html.escape(text)}</code>"}


def _where(script: str) -> str:
    return f"Worker {script!r} on the cloudflare target"


def _deployment(item: Mapping[str, Any]) -> WorkerDeployment:
    return WorkerDeployment(
        id=str(item.get("id", "")),
        split={
            str(v["version_id"]): float(v["percentage"])
            for v in item.get("versions") or []
            if isinstance(v, Mapping)
        },
        created_on=str(item.get("created_on", "")),
        source=str(item.get("source", "")),
        message=str((item.get("annotations") or {}).get("workers/message", "")),
    )


def check_split(script: str, percentages: Mapping[str, float]) -> dict[str, float]:
    """The split as Cloudflare takes it, or a ConfigError naming the worker: one version
    at 100%, or two whose percentages (each at least 0.01) add up to 100."""
    where = _where(script)
    if not 1 <= len(percentages) <= MAX_VERSIONS_PER_DEPLOYMENT:
        raise ConfigError(
            f"a deployment of {script!r} names one or two versions, not {len(percentages)}",
            where=where,
            fix="give {old_version: 90, new_version: 10}, or {version: 100}",
        )
    clean: dict[str, float] = {}
    for version, percent in percentages.items():
        if not isinstance(version, str) or not version:
            raise ConfigError(
                f"a version id of {script!r} must be a non-empty string, not {version!r}",
                where=where,
                fix="use the ids from list_versions() or outputs.versions",
            )
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise ConfigError(
                f"the percentage of version {version} must be a number, not {percent!r}",
                where=where,
                fix="give a number from 0.01 to 100",
            )
        if not 0.01 <= percent <= 100:
            raise ConfigError(
                f"the percentage of version {version} is {percent:g}; it must be from 0.01 to 100",
                where=where,
                fix="give each version a share from 0.01 to 100, adding up to 100",
            )
        clean[version] = float(percent)
    total = sum(clean.values())
    if abs(total - 100) > 1e-6:
        raise ConfigError(
            f"the percentages for {script!r} add up to {total:g}, not 100",
            where=where,
            fix="make the shares add up to 100, e.g. {old: 90, new: 10}",
        )
    return clean


async def deploy_split(
    client: CloudflareClient,
    script_path: str,
    script: str,
    percentages: Mapping[str, float],
    *,
    where: str | None = None,
    message: str | None = None,
) -> WorkerDeployment:
    """Create a deployment of ``script`` (at ``script_path``) with this split, as given;
    a refusal is a :class:`CloudflareError` naming the worker and Cloudflare's code."""
    body: dict[str, Any] = {
        "strategy": "percentage",
        "versions": [{"version_id": v, "percentage": p} for v, p in percentages.items()],
    }
    if message:
        body["annotations"] = {"workers/message": message[:50]}
    try:
        result = await client.call(
            "POST", f"{script_path}/deployments", json=body, where=where or _where(script)
        )
    except CloudflareError as exc:
        if exc.status in (401, 403, 429) or exc.status >= 500:
            raise  # the client's own message (token, rate limit, outage) says it best
        fix = {
            10007: "check the version ids (alchemy_nb.cloudflare.api.list_versions) and the "
            "script name",
            10021: "give one version at 100%, or two whose percentages add up to 100",
        }.get(exc.code, exc.fix or "see Cloudflare's message")
        raise CloudflareError(
            f"the deployment of Worker {script!r} was refused (HTTP {exc.status}, Cloudflare "
            f"error {exc.code}: {exc.message})",
            status=exc.status,
            code=exc.code,
            message=exc.message,
            where=where or _where(script),
            fix=fix,
        ) from None
    return _deployment(result or {})


async def _script_path(client: CloudflareClient, script: str) -> str:
    return f"{await client.account_path(_where(script))}/workers/scripts/{script}"


async def list_versions(
    script: str, *, client: CloudflareClient | None = None
) -> list[WorkerVersion]:
    """The script's versions, newest first.

    Example::

        latest = (await list_versions("myapp-api-prod"))[0]
    """
    if client is None:
        async with client_for() as own:
            return await list_versions(script, client=own)
    path = await _script_path(client, script)
    result = await client.call("GET", f"{path}/versions", where=_where(script))
    versions = []
    for item in (result or {}).get("items") or []:
        notes = item.get("annotations") or {}
        versions.append(
            WorkerVersion(
                id=str(item.get("id", "")),
                number=int(item.get("number") or 0),
                created_on=str((item.get("metadata") or {}).get("created_on", "")),
                message=str(notes.get("workers/message", "")),
                tag=str(notes.get("workers/tag", "")),
            )
        )
    return versions


async def list_deployments(
    script: str, *, client: CloudflareClient | None = None
) -> list[WorkerDeployment]:
    """The script's deployments, newest (the one serving traffic) first."""
    if client is None:
        async with client_for() as own:
            return await list_deployments(script, client=own)
    path = await _script_path(client, script)
    result = await client.call("GET", f"{path}/deployments", where=_where(script))
    return [_deployment(d) for d in (result or {}).get("deployments") or []]


async def active_deployment(
    script: str, *, client: CloudflareClient | None = None
) -> WorkerDeployment | None:
    """The deployment serving the script's traffic now, or None."""
    deployments = await list_deployments(script, client=client)
    return deployments[0] if deployments else None


async def split(
    script: str,
    percentages: Mapping[str, float],
    *,
    message: str | None = None,
    client: CloudflareClient | None = None,
) -> WorkerDeployment:
    """Deploy versions of ``script`` with this share of traffic each (a gradual
    deployment): ``{old: 90, new: 10}`` for a canary, ``{new: 100}`` to finish it. The
    split is checked first (a ConfigError naming the worker, nothing sent); a version
    Cloudflare does not know is a :class:`CloudflareError` with its code.

    Example::

        await split("myapp-api-prod", {old_version: 90, new_version: 10}, message="canary")
    """
    clean = check_split(script, percentages)
    if client is None:
        async with client_for() as own:
            return await split(script, clean, message=message, client=own)
    path = await _script_path(client, script)
    return await deploy_split(client, path, script, clean, message=message)


async def canary(
    app: Any,
    stage: str,
    percent: float,
    *,
    worker: str | None = None,
    message: str | None = None,
) -> tuple[str, WorkerDeployment]:
    """Send ``percent`` of a Worker's traffic to the version its last deploy made and the
    rest to the version before it (a canary); ``percent=100`` finishes the rollout,
    ``percent=0`` sends everything back. ``worker`` is the Worker's id in the program
    (needed when the stage has more than one). Returns the script name and the new
    deployment. A later deploy of other code replaces the split with its own version at
    100%.

    Example::

        name, deployment = await canary(app, "prod", 10, worker="api")
        ...                                   # watch the new version's errors
        await canary(app, "prod", 100, worker="api")
    """
    where = f"canary of stage {stage!r} of app {app.name!r}"
    target = app.settings(stage).target
    if target != "cloudflare":
        raise ConfigError(
            f"stage {stage!r} deploys to the {target} target; canaries split traffic between "
            "Cloudflare Worker versions",
            where=where,
            fix='set target = "cloudflare" for the stage (or pick a cloudflare stage)',
        )
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ConfigError(
            f"the canary percentage must be a number from 0 to 100, not {percent!r}",
            where=where,
            fix="pass e.g. 10 (then 50, then 100 to finish)",
        )
    state = await app.state.load(app.name, stage)
    workers = {
        rid: rec.get("outputs") or {}
        for rid, rec in state.records.items()
        if rec.get("kind") == "cloudflare::Worker" and (rec.get("outputs") or {}).get("version")
    }
    if worker is None:
        if len(workers) != 1:
            names = ", ".join(sorted(workers)) or "none deployed"
            raise ConfigError(
                f"stage {stage!r} has {len(workers)} deployed Workers ({names}); say which",
                where=where,
                fix="pass the Worker's id (--worker ID)",
            )
        (worker,) = workers
    outputs = workers.get(worker)
    if outputs is None:
        raise ConfigError(
            f"no deployed Worker {worker!r} in stage {stage!r}",
            where=where,
            fix="deploy the stage first, or pick one of: " + (", ".join(sorted(workers)) or "-"),
        )
    script = str(outputs["name"])
    new = str(outputs["version"])
    versions = [str(v) for v in outputs.get("versions") or []]
    older = versions[: versions.index(new)] if new in versions else versions[:-1]
    if not older:
        raise ConfigError(
            f"Worker {script!r} has one version deployed by alchemy-nb; a canary needs the "
            "version before it too",
            where=where,
            fix="deploy the new code first (it becomes the canary's new version)",
        )
    old = older[-1]
    if percent >= 100:
        shares: dict[str, float] = {new: 100}
    elif percent <= 0:
        shares = {old: 100}
    else:
        shares = {old: 100 - float(percent), new: float(percent)}
    note = message or f"alchemy-nb canary {percent:g}%"
    return script, await split(script, shares, message=note)
