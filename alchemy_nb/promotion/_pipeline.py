"""Releases, gates, promotion, health checks, rollback and holds for one app.

The flow the stage configuration describes::

    pipeline = Pipeline(app)
    staged = await pipeline.deploy("staging")              # a release, health-checked
    gate = await pipeline.request_gate("prod")              # for the release healthy there
    await pipeline.approve("prod", staged.release, actor="bob")
    await pipeline.promote("prod")                          # exactly that release

Every step is recorded in the ledger. A refusal raises :class:`GateError` listing every
unmet condition. A failed health check rolls back automatically to the last healthy
release and puts a hold on the bad one; a rollback is never rolled back.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import HealthProbe
from .._repr import Displayed
from ..engine import App, RunResult, load_program
from ..errors import ConfigError, DeployError, GateError
from ._records import Records, now_iso
from ._shown import Gate, History, Release, Releases

__all__ = ["Outcome", "Pipeline", "ProbeResult", "resolve_actor"]


def resolve_actor(explicit: str | None = None) -> str:
    """``--as NAME``, else ``ALCHEMY_ACTOR``, else ``GITHUB_ACTOR``, else the OS user."""
    if explicit is not None:
        name = explicit.strip()
        if not name:
            raise ConfigError("the actor name is empty", fix="pass --as NAME with a name")
        return name
    for var in ("ALCHEMY_ACTOR", "GITHUB_ACTOR"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return f"uid-{os.getuid()}"


def _in_git(root: Path) -> bool:
    return any((folder / ".git").exists() for folder in (root, *root.parents))


def _git(root: Path, *args: str) -> str | None:
    if not _in_git(root):
        return None
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _source(root: Path) -> dict[str, Any]:
    """Commit, branch and author of the working tree (git), or from the environment."""
    env = os.environ
    branch = env.get("ALCHEMY_BRANCH") or env.get("GITHUB_REF_NAME")
    author = env.get("ALCHEMY_ACTOR")
    commit = env.get("GITHUB_SHA")
    if not (branch and author and commit):
        # One git process for all three (a process costs more than the rest of a small
        # deploy): the last commit's hash and author, and the refs pointing at it, where
        # "HEAD -> NAME" names the branch checked out (a detached HEAD shows as "HEAD").
        head = _git(root, "log", "-1", "--format=%H%x00%an%x00%D")
        if head is not None:
            last, name, refs = [*head.split("\0"), "", ""][:3]
            checked_out = next(
                (r[len("HEAD -> ") :] for r in refs.split(", ") if r.startswith("HEAD -> ")),
                "HEAD",
            )
            branch = branch or checked_out
            author = author or name or None
            commit = commit or last or None
    return {"commit": commit, "branch": branch, "author": author or resolve_actor()}


@dataclass
class ProbeResult(Displayed):
    """One health probe's outcome."""

    worker: str
    url: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"worker": self.worker, "url": self.url, "ok": self.ok, "detail": self.detail}


@dataclass
class Outcome(Displayed):
    """What a deploy, promotion or rollback did."""

    action: str
    stage: str
    release: str
    healthy: bool
    probes: list[ProbeResult] = field(default_factory=list)
    rolled_back_to: str | None = None
    result: RunResult | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ok": self.healthy,
            "action": self.action,
            "stage": self.stage,
            "release": self.release,
            "healthy": self.healthy,
            "probes": [p.to_json() for p in self.probes],
            "rolled_back_to": self.rolled_back_to,
        }
        if self.result is not None:
            data["counts"] = self.result.counts
            data["outputs"] = self.result.outputs_masked
        return data


class Pipeline:
    """Releases, gates, promotion and rollback of one app (see the module docstring)."""

    def __init__(self, app: App, *, password: str | None = None) -> None:
        self.app = app
        self.password = password
        self.records = Records(app.state, app.name, app.data_root)
        self._ledger: Any = None
        self._policies: Any = None

    # ---------------------------------------------------------------- helpers
    @property
    def config(self) -> Any:
        return self.app.config

    def _known_stage(self, stage: str) -> Any:
        if self.config.stages and stage not in self.config.stages:
            raise ConfigError(
                f"unknown stage {stage!r}",
                where=self.config.source,
                fix="stages in the configuration: " + ", ".join(sorted(self.config.stages)),
            )
        return self.config.stage(stage)

    async def _record(
        self,
        kind: str,
        *,
        actor: str,
        stage: str | None = None,
        release: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if self._ledger is None:
            from ._ledger import Ledger

            self._ledger = Ledger(self.app.state, self.app.name)
        await self._ledger.record(kind, actor=actor, stage=stage, release=release, data=data or {})

    def policies(self) -> Any:
        if self._policies is None:
            from ._policy import load_policies

            self._policies = load_policies(self.app.data_root)
        return self._policies

    def _authorize(
        self, action: str, actor: str, stage: str, release: dict[str, Any]
    ) -> tuple[bool, list[str], Any]:
        decision = self.policies().authorize(
            actor=actor,
            action=action,
            stage=stage,
            release=release["id"],
            release_author=release.get("author") or "",
            teams=dict(self.config.teams),
        )
        reasons = (
            []
            if decision.allowed
            else [
                f"policy denies {actor!r} to {action} stage {stage!r}"
                + (
                    f" ({'; '.join(decision.reasons)})"
                    if getattr(decision, "reasons", None)
                    else ""
                )
            ]
        )
        return decision.allowed, reasons, decision

    def _release_files(self, artifacts: list[Path]) -> tuple[dict[str, bytes], dict[str, Any]]:
        root = self.app.root
        program = _program_file(self.app)
        paths = {program, *artifacts}
        # a state database beside the program is not part of a release (and reading its
        # files would drop this process's SQLite locks on them)
        db = getattr(self.app.state, "path", None)
        state_files = {Path(f"{db}{end}").resolve() for end in ("", "-wal", "-shm", "-journal")}
        paths.update(  # what sits beside the program: modules it imports, files it reads
            p
            for p in program.parent.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.name not in _CONFIG_FILES
            and (db is None or p.resolve() not in state_files)
        )
        files: dict[str, bytes] = {}
        for path in sorted(paths):
            try:
                rel = path.resolve().relative_to(root)
            except ValueError:
                raise ConfigError(
                    f"{path} is outside the app's folder, so a release cannot store it",
                    where=str(root),
                    fix="keep the files resources read inside the app folder",
                ) from None
            files[str(rel)] = path.read_bytes()
        return files, {"program": str(program.relative_to(root)), **_source(root)}

    async def plan(self, stage: str) -> Any:
        """What ``deploy`` would do to ``stage``, with the release's vars as a deploy has
        them (so ``deploy --plan`` of this plan matches); stores nothing."""
        app = self.app
        saved_root, saved_vars = app.root, app.release_vars

        async def prepare(artifacts: list[Path]) -> None:
            files, _ = self._release_files(artifacts)
            app.release_vars = {"ALCHEMY_RELEASE": self.records.release_id(files)[:12]}

        try:
            return await app.plan(stage, password=self.password, prepare=prepare)
        finally:
            app.root, app.release_vars = saved_root, saved_vars

    def _release_app(self, release: dict[str, Any]) -> App:
        """The app as the release defines it, its sources from the release's files, its state
        and local data the real ones."""
        tree = self.records.tree(release)
        app = load_program(tree / release["program"])
        app.data_root = self.app.data_root
        app._state = self.app.state
        app._config = self.app.config
        app.password = self.password or self.app.password
        app.release_vars = {"ALCHEMY_RELEASE": str(release["id"])[:12]}
        return app

    # ---------------------------------------------------------------- deploy
    async def deploy(self, stage: str, *, actor: str | None = None, **options: Any) -> Outcome:
        """Deploy the working tree to ``stage`` as a release, then check its health.

        The program runs once: the files its resources read are stored as the release,
        and the resources are then deployed from the release's copy of them.
        """
        who = resolve_actor(actor)
        self._known_stage(stage)
        app = self.app
        saved_root, saved_vars = app.root, app.release_vars
        made: dict[str, Any] = {}

        async def prepare(artifacts: list[Path]) -> None:
            release = self.records.store_release(*self._release_files(artifacts))
            hold = self.records.stage(stage).get("hold")
            if hold and hold.get("release") == release["id"]:
                raise GateError(
                    f"release {release['id'][:12]} is on hold in stage {stage!r}: "
                    f"{hold.get('reason', 'it was rolled back')}",
                    fix="change the code, or lift the hold: "
                    f"alchemy-nb hold release --stage {stage}",
                    unmet=[f"release {release['id'][:12]} is held in {stage}"],
                )
            made["release"] = release
            app.root = self.records.tree(release)  # providers read the release's copy
            app.release_vars = {"ALCHEMY_RELEASE": str(release["id"])[:12]}

        async with self.records.stage_lock(stage):
            try:
                result = await app.deploy(stage, prepare=prepare, password=self.password, **options)
            except DeployError as exc:
                if "release" in made:
                    await self._record(
                        "deploy",
                        actor=who,
                        stage=stage,
                        release=made["release"]["id"],
                        data={"ok": False, "error": exc.what},
                    )
                raise
            finally:
                app.root, app.release_vars = saved_root, saved_vars
            return await self._after_deploy(stage, made["release"], who, "deploy", result)

    async def _deploy_release(
        self,
        stage: str,
        release: dict[str, Any],
        actor: str,
        action: str,
        options: dict[str, Any],
        plan: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> Outcome:
        app = self._release_app(release)
        try:
            result = await app.deploy(stage, plan=plan, **options)
        except DeployError as exc:
            await self._record(
                action,
                actor=actor,
                stage=stage,
                release=release["id"],
                data={"ok": False, "error": exc.what},
            )
            raise
        return await self._after_deploy(stage, release, actor, action, result, extra)

    async def _after_deploy(
        self,
        stage: str,
        release: dict[str, Any],
        actor: str,
        action: str,
        result: RunResult,
        extra: dict[str, Any] | None = None,
    ) -> Outcome:
        """Record the deploy, check health, and roll back automatically if it failed."""
        await self._record(
            action,
            actor=actor,
            stage=stage,
            release=release["id"],
            data={
                "ok": True,
                "counts": result.counts,
                "plan_digest": result.plan_digest,
                **(extra or {}),
            },
        )
        probes = await self.check_health(stage)
        healthy = all(p.ok for p in probes)
        if probes:  # nothing to record when the stage has no probes
            await self._record(
                "health",
                actor=actor,
                stage=stage,
                release=release["id"],
                data={"healthy": healthy, "probes": [p.to_json() for p in probes]},
            )
        self._push_history(stage, release, actor, action, healthy)
        outcome = Outcome(action, stage, release["id"], healthy, probes, result=result)
        if not healthy and action != "rollback":
            outcome.rolled_back_to = await self._auto_rollback(stage, release, actor, probes)
        return outcome

    def _push_history(
        self, stage: str, release: dict[str, Any], actor: str, action: str, healthy: bool
    ) -> None:
        data = self.records.stage(stage)
        data["history"].append(
            {
                "release": release["id"],
                "at": now_iso(),
                "actor": actor,
                "action": action,
                "healthy": healthy,
            }
        )
        data["current"] = release["id"]
        self.records.save_stage(stage, data)

    # ---------------------------------------------------------------- health
    async def check_health(self, stage: str) -> list[ProbeResult]:
        """Run the stage's probes, each retried until it passes or its deadline passes."""
        probes = self.config.stage(stage).health
        if not probes:
            return []
        state = await self.app.state.load(self.app.name, stage)
        return list(await asyncio.gather(*(self._probe(state, p) for p in probes)))

    async def _probe(self, state: Any, probe: HealthProbe) -> ProbeResult:
        record = state.records.get(probe.worker) or {}
        base = (record.get("outputs") or {}).get("url")
        if not base:
            return ProbeResult(
                probe.worker, "", False, f"no deployed worker {probe.worker!r} in this stage"
            )
        url = base.rstrip("/") + probe.path
        deadline = time.monotonic() + probe.deadline
        detail = ""
        while True:
            status, body = await asyncio.to_thread(_get, url)
            if status == probe.expect_status and (
                probe.expect_body is None or probe.expect_body in body
            ):
                return ProbeResult(probe.worker, url, True, f"{status}")
            detail = (
                f"got {status}, expected {probe.expect_status}"
                if status != probe.expect_status
                else f"body lacks {probe.expect_body!r}"
            )
            if time.monotonic() >= deadline:
                return ProbeResult(probe.worker, url, False, detail)
            await asyncio.sleep(0.2)

    # -------------------------------------------------------------- rollback
    def _last_healthy(self, stage: str, exclude: str) -> str | None:
        for entry in reversed(self.records.stage(stage)["history"]):
            if entry["healthy"] and entry["release"] != exclude:
                return str(entry["release"])
        return None

    async def _auto_rollback(
        self, stage: str, bad: dict[str, Any], actor: str, probes: list[ProbeResult]
    ) -> str | None:
        target = self._last_healthy(stage, bad["id"])
        reason = "health check failed: " + "; ".join(
            f"{p.worker} {p.url}: {p.detail}" for p in probes if not p.ok
        )
        if target is None:
            await self._record(
                "rollback",
                actor=actor,
                stage=stage,
                release=bad["id"],
                data={
                    "automatic": True,
                    "done": False,
                    "reason": reason + "; no earlier healthy release to roll back to",
                },
            )
            return None
        await self._rollback_to(
            stage,
            self.records.release(target),
            actor,
            reason=reason,
            automatic=True,
            force=True,
            bad=bad["id"],
        )
        return target

    async def canary(
        self,
        stage: str,
        percent: float,
        *,
        worker: str | None = None,
        message: str | None = None,
        actor: str | None = None,
    ) -> tuple[str, Any]:
        """Send ``percent`` of a Worker's traffic on a cloudflare-target ``stage`` to the
        version its last deploy made, the rest to the version before it (a gradual
        deployment); ``100`` finishes the rollout, ``0`` sends everything back. Recorded
        in the ledger as a ``canary`` event with the stage's current release. Returns the
        script name and the :class:`~alchemy_nb.cloudflare.api.WorkerDeployment`.

        Example::

            await pipeline.deploy("prod")                  # the new version, at 100%
            await pipeline.canary("prod", 10, worker="api")
            ...                                            # watch its errors, then
            await pipeline.canary("prod", 100, worker="api")
        """
        who = resolve_actor(actor)
        self._known_stage(stage)
        from ..cloudflare.api import canary

        async with self.records.stage_lock(stage):
            script, deployment = await canary(
                self.app, stage, percent, worker=worker, message=message
            )
            await self._record(
                "canary",
                actor=who,
                stage=stage,
                release=self.records.stage(stage).get("current"),
                data={"script": script, "percent": percent, **deployment.to_json()},
            )
        return script, deployment

    async def rollback(
        self, stage: str, *, to: str | None = None, force: bool = False, actor: str | None = None
    ) -> Outcome:
        """Deploy an earlier release of ``stage`` (default: the last healthy one before the
        current) and put a hold on the current one."""
        who = resolve_actor(actor)
        self._known_stage(stage)
        data = self.records.stage(stage)
        current = data.get("current")
        if current is None:
            raise GateError(
                f"stage {stage!r} has no release to roll back from",
                fix=f"deploy it first: alchemy-nb deploy --stage {stage}",
            )
        target_id = self.records.release(to)["id"] if to else self._last_healthy(stage, current)
        if target_id is None:
            raise GateError(
                f"stage {stage!r} has no earlier healthy release",
                unmet=["no healthy release before the current one"],
                fix="name one with --to ID (see alchemy-nb history)",
            )
        allowed, reasons, _ = self._authorize("rollback", who, stage, self.records.release(current))
        if not allowed:
            raise GateError(f"rollback of {stage!r} refused", unmet=reasons)
        async with self.records.stage_lock(stage):
            return await self._rollback_to(
                stage,
                self.records.release(target_id),
                who,
                reason="manual",
                automatic=False,
                force=force,
                bad=current,
            )

    async def _rollback_to(
        self,
        stage: str,
        target: dict[str, Any],
        actor: str,
        *,
        reason: str,
        automatic: bool,
        force: bool,
        bad: str,
    ) -> Outcome:
        crossed = _migrations(self.records.release(bad)) - _migrations(target)
        if crossed and not force:
            raise GateError(
                f"rollback of {stage!r} to {target['id'][:12]} would cross schema migrations",
                unmet=[
                    f"migration {m} is applied and the target release lacks it"
                    for m in sorted(crossed)
                ],
                fix="migrations are forward-only; pass --force to roll back the code anyway",
            )
        data = self.records.stage(stage)
        data["hold"] = {
            "release": bad,
            "reason": f"rolled back: {reason}",
            "at": now_iso(),
            "actor": actor,
        }
        self.records.save_stage(stage, data)
        await self._record("hold", actor=actor, stage=stage, release=bad, data={"reason": reason})
        return await self._deploy_release(
            stage,
            target,
            actor,
            "rollback",
            {},
            extra={"from": bad, "automatic": automatic, "reason": reason, "forced": bool(crossed)},
        )

    async def release_hold(self, stage: str, *, actor: str | None = None) -> dict[str, Any]:
        """Lift the stage's hold, so its held release may be deployed again."""
        who = resolve_actor(actor)
        self._known_stage(stage)
        data = self.records.stage(stage)
        hold = data.get("hold")
        if not hold:
            raise GateError(f"stage {stage!r} has no hold", fix="nothing to do")
        data["hold"] = None
        self.records.save_stage(stage, data)
        await self._record("hold.release", actor=who, stage=stage, release=hold["release"])
        return hold  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- gates
    def healthy_release(self, stage: str) -> str | None:
        """The release serving ``stage`` if its last deploy was healthy."""
        data = self.records.stage(stage)
        if data["history"] and data["history"][-1]["healthy"]:
            return str(data["history"][-1]["release"])
        return None

    def _default_release(self, stage: str, release: str | None) -> dict[str, Any]:
        if release:
            return self.records.release(release)
        source = self._known_stage(stage).promote_from
        if source is None:
            raise ConfigError(
                f"stage {stage!r} has no promote_from",
                where=self.config.source,
                fix=f"set stages.{stage}.promote_from, or pass --release ID",
            )
        healthy = self.healthy_release(source)
        if healthy is None:
            raise GateError(
                f"no healthy release in {source!r} to promote to {stage!r}",
                unmet=[f"{source} has no healthy release"],
                fix=f"deploy {source} first: alchemy-nb deploy --stage {source}",
            )
        return self.records.release(healthy)

    async def _plan_digest(self, stage: str, release: dict[str, Any]) -> tuple[str, Any]:
        plan = await self._release_app(release).plan(stage, password=self.password)
        return plan.digest, plan

    async def request_gate(
        self, stage: str, *, release: str | None = None, actor: str | None = None
    ) -> Gate:
        """Ask for approval to promote ``release`` (default: healthy in ``promote_from``)."""
        who = resolve_actor(actor)
        conf = self._known_stage(stage)
        rel = self._default_release(stage, release)
        digest, _ = await self._plan_digest(stage, rel)
        now = time.time()
        gate = {
            "id": secrets.token_hex(4),
            "stage": stage,
            "release": rel["id"],
            "plan_digest": digest,
            "requested_by": who,
            "requested_at": now_iso(now),
            "requested_ts": now,
            "wait_until": now + conf.wait_timer,
            "expires_at": now + conf.approval_expiry,
            "approvals": [],
            "rejections": [],
            "status": "open",
        }
        self.records.save_gate(gate)
        await self._record(
            "gate.request",
            actor=who,
            stage=stage,
            release=rel["id"],
            data={"gate": gate["id"], "plan_digest": digest},
        )
        return Gate(gate)

    def open_gate(self, stage: str, release: str) -> Gate | None:
        """The open gate for (``release``, ``stage``), if one was requested."""
        found = [
            g
            for g in self.records.gates(stage)
            if g["release"] == release and g["status"] == "open"
        ]
        return Gate(found[-1]) if found else None

    async def approve(
        self, stage: str, release: str, *, actor: str | None = None, comment: str = ""
    ) -> Gate:
        """Approve the open gate for (``release``, ``stage``)."""
        return await self._decide(stage, release, actor, comment, approve=True)

    async def reject(
        self, stage: str, release: str, *, actor: str | None = None, comment: str = ""
    ) -> Gate:
        """Reject (and close) the open gate for (``release``, ``stage``)."""
        return await self._decide(stage, release, actor, comment, approve=False)

    async def _decide(
        self, stage: str, release: str, actor: str | None, comment: str, *, approve: bool
    ) -> Gate:
        who = resolve_actor(actor)
        conf = self._known_stage(stage)
        rel = self.records.release(release)
        verb = "approve" if approve else "reject"
        async with self.records.stage_lock(stage):
            gate = self.open_gate(stage, rel["id"])
            if gate is None:
                raise GateError(
                    f"there is no open gate for release {rel['id'][:12]} to {stage!r}",
                    unmet=["no open gate (it was never requested, or it is closed)"],
                    fix=f"request one: alchemy-nb gate request --stage {stage} "
                    f"--release {rel['id'][:12]}",
                )
            unmet = []
            if approve and conf.prevent_self_review and who == rel.get("author"):
                unmet.append(
                    f"{who} wrote this release and may not approve it (prevent_self_review)"
                )
            if approve and any(a["actor"] == who for a in gate["approvals"]):
                unmet.append(f"{who} has already approved this gate")
            _, reasons, _ = self._authorize(verb, who, stage, rel)
            unmet += reasons
            if unmet:
                raise GateError(f"{verb} by {who!r} refused", unmet=unmet)
            entry = {"actor": who, "at": now_iso(), "comment": comment}
            if approve:
                gate["approvals"].append(entry)
            else:
                gate["rejections"].append(entry)
                gate["status"] = "rejected"
            self.records.save_gate(gate)
        await self._record(
            "approval" if approve else "rejection",
            actor=who,
            stage=stage,
            release=rel["id"],
            data={"gate": gate["id"], "comment": comment},
        )
        return gate

    def gate_unmet(
        self, gate: dict[str, Any] | None, stage: str, release: dict[str, Any], plan_digest: str
    ) -> list[str]:
        """Every condition the gate does not meet yet (empty: satisfied)."""
        conf = self.config.stage(stage)
        if conf.required_reviewers == 0:
            return []
        if gate is None:
            return [
                f"no approved gate for release {release['id'][:12]} to {stage} "
                f"(alchemy-nb gate request --stage {stage})"
            ]
        unmet = []
        now = time.time()
        approvers = {a["actor"] for a in gate["approvals"]}
        if conf.prevent_self_review:
            approvers.discard(release.get("author"))
        if len(approvers) < conf.required_reviewers:
            unmet.append(
                f"{len(approvers)} of {conf.required_reviewers} required approvals "
                "from distinct reviewers who are not the author"
            )
        if gate["rejections"]:
            unmet.append(f"rejected by {gate['rejections'][-1]['actor']}")
        if now < gate["wait_until"]:
            unmet.append(f"wait timer: {int(gate['wait_until'] - now)} s left")
        if now >= gate["expires_at"]:
            unmet.append("the approval has expired")
        if gate["plan_digest"] != plan_digest:
            unmet.append(
                "the plan changed since the gate was requested (new code, config "
                "or target state): request a new gate"
            )
        return unmet

    # -------------------------------------------------------------- promote
    async def promote(
        self, stage: str, *, release: str | None = None, actor: str | None = None
    ) -> Outcome:
        """Deploy exactly ``release`` (default: the one healthy in ``promote_from``) to
        ``stage`` with its overlay, if every condition holds; else list what is unmet."""
        who = resolve_actor(actor)
        conf = self._known_stage(stage)
        rel = self._default_release(stage, release)
        source = conf.promote_from
        unmet: list[str] = []
        if source is None:
            unmet.append(f"stage {stage!r} has no promote_from")
        elif self.healthy_release(source) != rel["id"]:
            unmet.append(f"release {rel['id'][:12]} is not the healthy release of {source!r}")
        hold = self.records.stage(stage).get("hold")
        if hold and hold.get("release") == rel["id"]:
            unmet.append(f"release {rel['id'][:12]} is on hold in {stage!r}")
        if conf.allowed_branches and rel.get("branch") not in conf.allowed_branches:
            unmet.append(
                f"release branch {rel.get('branch')!r} is not one of "
                f"{', '.join(conf.allowed_branches)}"
            )
        _, reasons, _ = self._authorize("promote", who, stage, rel)
        unmet += reasons
        async with self.records.stage_lock(stage):
            digest, plan = await self._plan_digest(stage, rel)
            decisions = self.policies().check_plan(plan.to_json(), stage=stage)
            if decisions:
                await self._record(
                    "policy",
                    actor=who,
                    stage=stage,
                    release=rel["id"],
                    data={"decisions": [d.to_json() for d in decisions]},
                )
            for d in decisions:
                if d.blocking:
                    unmet += [f"policy {d.policy}: {m}" for m in d.denials]
            gate = self.open_gate(stage, rel["id"])
            unmet += self.gate_unmet(gate, stage, rel, digest)
            if unmet:
                await self._record(
                    "promotion",
                    actor=who,
                    stage=stage,
                    release=rel["id"],
                    data={"ok": False, "unmet": unmet},
                )
                raise GateError(f"promotion of {rel['id'][:12]} to {stage!r} refused", unmet=unmet)
            if gate is not None:
                gate["status"] = "used"
                self.records.save_gate(gate)
            return await self._deploy_release(stage, rel, who, "promotion", {}, plan=plan)

    # -------------------------------------------------------------- history
    def release(self, ref: str) -> Release:
        """A release by id or unambiguous id prefix (4+ hex digits)."""
        return Release(self.records.release(ref))

    def releases(self, stage: str | None = None) -> Releases:
        """Releases by stage: id, stage, healthy, author, created_at, branch, commit."""
        out = []
        for name in [stage] if stage else self.records.stages():
            seen: set[str] = set()
            for entry in reversed(self.records.stage(name)["history"]):
                if entry["release"] in seen:
                    continue
                seen.add(entry["release"])
                rel = self.records.release(entry["release"])
                out.append(
                    {
                        "id": rel["id"],
                        "stage": name,
                        "healthy": entry["healthy"],
                        "author": rel.get("author"),
                        "created_at": rel["created_at"],
                        "deployed_at": entry["at"],
                        "branch": rel.get("branch"),
                        "commit": rel.get("commit"),
                        "action": entry["action"],
                    }
                )
        return Releases(out)

    def history(self, stage: str | None = None) -> History:
        """Deploys, promotions and rollbacks of ``stage`` (default: every stage), oldest first."""
        out = []
        for name in [stage] if stage else self.records.stages():
            for entry in self.records.stage(name)["history"]:
                out.append({"stage": name, **entry})
        return History(sorted(out, key=lambda e: e["at"]))


_CONFIG_FILES = {"alchemy_nb.toml"}  # the stage configuration is not part of a release


def _program_file(app: App) -> Path:
    import sys

    for module in list(sys.modules.values()):
        # the module's own namespace: getattr would run module __getattr__ hooks (copier's warns)
        namespace = getattr(module, "__dict__", {})
        if namespace.get("app") is app and namespace.get("__file__"):
            return Path(module.__file__).resolve()  # type: ignore[arg-type]
    raise ConfigError(
        f"the program file of app {app.name!r} is unknown",
        fix="load the app with alchemy_nb.load_program(path)",
    )


def _migrations(release: dict[str, Any]) -> set[str]:
    return {
        Path(rel).name
        for rel in release["files"]
        if rel.endswith(".sql") and "migrations" in Path(rel).parts
    }


def _get(url: str) -> tuple[int, str]:
    import urllib.error  # only health probes need HTTP
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(65536).decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)
