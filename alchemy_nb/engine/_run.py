"""One run of a program against one stage: plan, apply (``up``), ``read`` and ``destroy``.

The order of work that makes a run crash-safe:

1. take the stage lock, load state (snapshot + journal replay);
2. run the program to learn what is declared, and plan against state;
3. for each resource, in dependency order and at most ``concurrency`` at once:
   journal an *intent* record (``creating`` / ``updating`` / ``replacing`` /
   ``deleting``), fsync, call the provider, journal the *result*, fsync;
4. only when every resource succeeded, finalize: delete orphans (in state, no longer
   declared) and the old halves of replacements, in reverse dependency order;
5. checkpoint (compact the journal into the snapshot), release the lock.

A run killed anywhere leaves intents that the next run sees and finishes; providers
reconcile (a create that finds its resource adopts it, a delete of nothing succeeds).
Journal writes from concurrent resources are grouped into one fsync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import os
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from .._canonical import canonical_json, digest, walk
from .._secret import MASK, Secret
from ..errors import (
    AlchemyError,
    ConfigError,
    DeployError,
    PlanError,
    ProgramError,
    ProviderError,
    SecretError,
    StateError,
)
from ..state import Entry, StageState, StateStore
from ._plan import (
    UNKNOWN,
    Action,
    Change,
    FieldChange,
    Phase,
    Plan,
    ResourceResult,
    ResourceStatus,
    RunResult,
)
from ._resource import (
    HOOK_ERRORS,
    HOOKS,
    Declarations,
    Outputs,
    Props,
    Provider,
    Ref,
    Resource,
    ResourceContext,
    ResourceHandle,
    _declaring,
    _Referable,
    kind_registry,
)

if TYPE_CHECKING:
    from ._app import App, Stage

__all__ = ["Reporter", "Run"]

Reporter = Callable[..., None]
"""Receives progress events: ``reporter(event, **data)``. Events: ``lock.wait``,
``lock.takeover``, ``recover``, ``run.start`` (``phase``, ``changes``: a list of
``(id, kind, action)``), ``resource.start``, ``resource.done``, ``resource.failed``, then
``run.done`` (``result`` or, for a plan, ``plan``) or ``run.failed`` (``result``)."""

# Record statuses as the plain strings state holds (an enum member's .value is a descriptor
# call, and a run reads them thousands of times).
CREATING, CREATED = ResourceStatus.CREATING.value, ResourceStatus.CREATED.value
UPDATING, UPDATED = ResourceStatus.UPDATING.value, ResourceStatus.UPDATED.value
REPLACING, DELETING = ResourceStatus.REPLACING.value, ResourceStatus.DELETING.value
SETTLED = (CREATED, UPDATED)
_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


def _now() -> str:
    """The time in UTC to the second, as records carry it."""
    return _utc_text(int(time.time()))


@functools.lru_cache(maxsize=1)  # a run stamps many records within the same second
def _utc_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def _default_reporter(phase: str, app: str, stage: str) -> Reporter:
    """Logging, plus a progress display in a notebook or on a terminal (never elsewhere)."""
    from .._repr import progress_reporter

    progress = progress_reporter(phase, app, stage)
    if progress is None:
        return _log_reporter

    def report(event: str, **data: Any) -> None:
        progress(event, **data)
        _log_reporter(event, **data)

    return report


def _log_reporter(event: str, **data: Any) -> None:
    """Without a reporter, what a person should know still reaches ``logging``."""
    import logging

    log = logging.getLogger("alchemy_nb")
    if event == "lock.takeover":
        log.warning("took over a lock whose holder is gone: %s", data["holder"].describe())
    elif event == "lock.wait":
        log.info("waiting for the stage lock: %s", data["holder"].describe())
    elif event == "recover":
        log.warning("resuming an interrupted run (%d journal entries)", data["entries"])
    elif event == "resource.failed":
        log.error("%s %s failed: %s", data["kind"], data["id"], data["error"])
    elif event == "resource.note":
        log.warning("%s %s: %s", data["kind"], data["id"], data["note"])


class _GroupJournal:
    """Ordered journal writes, grouped so that concurrent resources share one fsync.

    Intents (``sync=True``, the default) are on disk and fsynced before the caller goes on
    to call a provider. Results (``sync=False``) are written at once, so they survive the
    process being killed, and are fsynced by the next intent or the checkpoint; if the
    machine itself loses them, the intent they followed makes the next run redo the
    (idempotent) operation.
    """

    def __init__(
        self,
        store: StateStore,
        state: StageState,
        before: Callable[[], list[Entry]] | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.before = before
        self._pending: list[tuple[list[Entry], asyncio.Future[None], bool]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, *entries: Entry, sync: bool = True) -> None:
        if self.before is not None:  # e.g. new secret parameters, before the first sealed value
            entries = (*self.before(), *entries)
        for entry in entries:
            self.state.apply(entry)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((list(entries), fut, sync))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def put(self, rid: str, record: dict[str, Any], *, sync: bool = True) -> None:
        await self.write({"t": "put", "id": rid, "rec": record}, sync=sync)

    async def delete(self, rid: str) -> None:
        await self.write({"t": "del", "id": rid}, sync=False)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self.store.append(
                        self.state.app,
                        self.state.stage,
                        [e for es, _, _ in batch for e in es],
                        sync=any(sync for _, _, sync in batch),
                    )
                except BaseException as exc:
                    for _, fut, _ in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, fut, _ in batch:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self._flusher = None


class _Limiter:
    """At most ``n`` holders at once, first come first served.

    Like ``asyncio.Semaphore``, but O(1) per acquire with thousands waiting (3.11's
    ``Semaphore.locked`` scans every waiter, on every acquire).
    """

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # it was handed to us as we were cancelled: pass it on
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to the next in line
                return
        self._free += 1


class _OutputTable:
    """Outputs by resource id; state JSON is decoded only when someone reads it."""

    def __init__(self, decode: Callable[[Any], Any]) -> None:
        self._decode = decode
        self._raw: dict[str, Any] = {}
        self._values: dict[str, dict[str, Any]] = {}

    def set_raw(self, rid: str, raw: Any) -> None:
        self._raw[rid] = raw
        self._values.pop(rid, None)

    def set(self, rid: str, values: dict[str, Any]) -> None:
        self._values[rid] = values
        self._raw.pop(rid, None)

    def forget(self, rid: str) -> None:
        self._raw.pop(rid, None)
        self._values.pop(rid, None)

    def __contains__(self, rid: object) -> bool:
        return rid in self._values or rid in self._raw

    def get(self, rid: str) -> dict[str, Any] | None:
        if rid not in self._values:
            if rid not in self._raw:
                return None
            self._values[rid] = self._decode(self._raw.pop(rid))
        return self._values[rid]

    def __getitem__(self, rid: str) -> dict[str, Any]:
        values = self.get(rid)
        if values is None:
            raise KeyError(rid)
        return values


class Run:
    """Everything one run of one phase on one stage needs; used by :class:`App`."""

    def __init__(
        self,
        app: App,
        stage: Stage,
        store: StateStore,
        *,
        concurrency: int,
        password: str | None,
        reporter: Reporter | None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(
                f"concurrency must be at least 1, not {concurrency}",
                fix="pass concurrency=16 or more",
            )
        self.app = app
        self.stage = stage
        self.store = store
        self.concurrency = concurrency
        self.password = password
        self.report = reporter or _default_reporter(stage.phase.value, app.name, stage.name)
        self.settings = app.settings(stage.name)
        self.state = StageState(app.name, stage.name)
        self._box: Any = None
        self._plan_box: Any = None
        self._secret_seen = False
        self._unsaved_meta: list[Entry] = []
        self.delete_errors: dict[str, BaseException] = {}
        self._providers: dict[type[Any], Provider[Any, Any]] = {}
        self.declared: dict[str, Resource[Any, Any]] = {}
        self.program_outputs: Any = None
        self.known = _OutputTable(self.decode)
        self._prepared: dict[str, tuple[Props, str, Props, list[FieldChange]]] = {}
        self._bodies: dict[str, str] = {}  # canonical props of plain resources, by id
        self._ctx_template: ResourceContext | None = None
        self._state_hooks: dict[type, Callable[[Any], Any]] | None = None
        self._ctx_from: tuple[Any, ...] = ()
        self._drifted: set[str] = set()
        self.wrote = False

    # ------------------------------------------------------------------ where
    def where(self, rid: str | None = None, kind: str | None = None) -> str:
        name = f"{self.app.name}/{self.stage.name}" + (f"/{rid}" if rid else "")
        if kind:
            name += f" ({kind})"
        return f"{name}, phase {self.stage.phase.value}"

    def ctx(self, rid: str, kind: str) -> ResourceContext:
        template = self._ctx_template
        made_from = self._ctx_from
        if (
            template is None
            or made_from[0] is not self.settings
            or made_from[1] is not self.app.root
            or made_from[2] is not self.app.data_root
        ):
            template = self._ctx_template = ResourceContext(
                app=self.app.name,
                stage=self.stage.name,
                id="",
                kind="",
                phase=self.stage.phase.value,
                root=self.app.root,
                log=self.report,
                target=self.settings.target,
                data_root=self.app.data_root,
                stage_vars=self.settings.vars,
            )
            self._ctx_from = (self.settings, self.app.root, self.app.data_root)
        # The template with this resource's id and kind: a copy of its fields, which is a
        # fifth of the cost of a frozen dataclass's __init__ (one per resource adds up).
        ctx: ResourceContext = object.__new__(ResourceContext)
        ctx.__dict__.update(template.__dict__, id=rid, kind=kind)
        return ctx

    # ---------------------------------------------------------------- program
    async def run_program(self) -> None:
        """Run the app's program for the stage and collect what it declares."""
        program = self.app.program_function
        if program is None:
            raise ConfigError(
                f"app {self.app.name!r} has no program",
                where=self.where(),
                fix="decorate a function of the stage with @app.program",
            )
        declarations = Declarations(self.stage)
        token = _declaring.set(declarations)
        try:
            result = program(self.stage)
            if inspect.isawaitable(result):
                result = await result
        except AlchemyError:
            raise
        except Exception as exc:
            raise ProgramError(
                f"the program raised {type(exc).__name__}: {exc}",
                where=f"{_user_frame(exc)}, app {self.app.name}, stage {self.stage.name}, "
                f"phase {self.stage.phase.value}",
                fix="fix the program (run with --debug to see the whole traceback); "
                "nothing was changed",
            ) from exc
        finally:
            _declaring.reset(token)
        if result is not None and not isinstance(result, Mapping):
            raise ConfigError(
                f"the program returned {type(result).__name__}; it must return a dict of "
                "outputs or None",
                where=self.where(),
                fix="return e.g. {'url': api.url}",
            )
        self.declared = declarations.resources
        self.program_outputs = dict(result or {})
        for res in self.declared.values():
            for dep in res.dependencies():
                if self.declared.get(dep.id) is not dep:
                    raise ConfigError(
                        f"resource {res.id!r} refers to {dep.id!r}, which this program run "
                        "did not declare",
                        where=self.where(res.id, res.kind),
                        fix="declare every resource inside the program that uses it",
                    )

    def artifact_files(self) -> list[Path]:
        """Every file the declared resources read (worker code, migrations), sorted."""
        files: set[Path] = set()
        for res in self.declared.values():
            provider = self.provider(type(res))
            if type(provider).artifacts is not Provider.artifacts:
                files.update(provider.artifacts(self.ctx(res.id, res.kind), res.props))
        return sorted(files)

    # ----------------------------------------------------------------- secrets
    def box(self, *, create: bool) -> Any:
        if self._box is not None:
            return self._box
        from ..state._crypto import SecretBox

        params = self.state.meta.get("secrets")
        if params is None and not create:
            raise SecretError(
                "state holds a sealed secret but no secret parameters",
                where=self.where(),
                fix="restore the stage's state.json",
            )
        if not self.password:
            raise SecretError(
                "this stage uses secrets, and no password is set to seal or open them",
                where=self.where(),
                fix="export ALCHEMY_PASSWORD=... (the same password every run), or pass "
                "password= to App",
            )
        if params is not None:
            self._box = SecretBox.open(self.password, params, where=self.where())
        else:
            self._box = SecretBox.create(self.password)
            self._unsaved_meta.append({"t": "meta", "key": "secrets", "value": self._box.params})
        return self._box

    def _take_unsaved_meta(self) -> list[Entry]:
        entries, self._unsaved_meta = self._unsaved_meta, []
        return entries

    def journal(self) -> _GroupJournal:
        return _GroupJournal(self.store, self.state, before=self._before_write)

    def _before_write(self) -> list[Entry]:
        self.wrote = True
        return self._take_unsaved_meta()

    # ---------------------------------------------------------------- encoding
    def encode_state(self, value: Any) -> Any:
        """Props or outputs as state stores them: secrets sealed, resources as links."""
        if self._state_hooks is None:

            def secret(s: Secret) -> Any:
                return {"@secret": self.box(create=True).seal(s.reveal())}

            def ref(r: Ref) -> Any:
                raise StateError(f"unresolved reference {r!r} reached state", where=self.where())

            self._state_hooks = {Secret: secret, _Referable: _resource_link, Ref: ref}
        return encode(value, self._state_hooks)

    def encode_digest(self, value: Any, *, declared: bool = False) -> Any:
        """The form that is hashed: secrets as keyed macs, defaults left out."""

        def resource(r: Any) -> Any:
            if declared:
                return {"@resource": r.id}
            outputs = self.known.get(r.id)
            return {"@resource": r.id, "outputs": UNKNOWN if outputs is None else outputs}

        def ref(r: Ref) -> Any:
            return {"@ref": f"{r.resource.id}.{r.name}"} if declared else UNKNOWN

        def secret(s: Secret) -> Any:
            self._secret_seen = True
            box = self.plan_box() if declared else self.box(create=True)
            return {"@secret": box.mac(s.reveal())}

        return encode(value, {Secret: secret, _Referable: resource, Ref: ref}, skip_defaults=True)

    def plan_box(self) -> Any:
        """The box for secrets in a plan's declared digests: stable across runs."""
        if self._plan_box is None:
            from ..state._crypto import SecretBox

            self.box(create=True)  # the same checks: a password is set, and it is the right one
            assert self.password is not None
            self._plan_box = SecretBox.for_plans(
                self.password, f"{self.app.name}/{self.stage.name}"
            )
        return self._plan_box

    @staticmethod
    def encode_display(value: Any) -> Any:
        """The form people see: secrets masked, unknown values marked."""
        return encode(value, _DISPLAY_HOOKS)

    def decode(self, value: Any) -> Any:
        """State JSON back to Python: sealed secrets opened, resource links as handles."""
        if isinstance(value, dict):
            if len(value) == 1 and "@secret" in value:
                return Secret(self.box(create=False).open_value(value["@secret"]))
            if len(value) == 1 and "@resource" in value:
                rid = value["@resource"]
                rec = self.state.records.get(rid, {})
                return ResourceHandle(
                    rid, rec.get("kind", ""), self.known.get(rid) or rec.get("outputs") or {}
                )
            return {k: self.decode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        return value

    def props_from_state(self, cls: type[Resource[Any, Any]], data: Any) -> Props:
        decoded = self.decode(data or {})
        try:
            return cls.props_model.model_validate(decoded)
        except ValidationError:  # the kind's props changed shape since: keep what we have
            return cls.props_model.model_construct(**decoded)

    def outputs_from_state(self, cls: type[Resource[Any, Any]], data: Any) -> Outputs | None:
        if not data:
            return None
        decoded = self.decode(data)
        try:
            return cls.outputs_model.model_validate(decoded)
        except ValidationError:
            return cls.outputs_model.model_construct(**decoded)

    def resource_digest(
        self, res: Resource[Any, Any], props: Props, body: str | None = None
    ) -> str:
        provider = self.provider(type(res))
        extra = ""
        if type(provider).fingerprint is not Provider.fingerprint:
            extra = provider.fingerprint(self.ctx(res.id, res.kind), props) or ""
        if body is None:
            body = canonical_json(self.encode_digest(props))
        return digest(res.kind, body, extra)

    def provider(self, cls: type[Resource[Any, Any]]) -> Provider[Any, Any]:
        if cls not in self._providers:
            self._providers[cls] = cls.provider()
        return self._providers[cls]

    # ------------------------------------------------------------------- refs
    def resolve(self, res: Resource[Any, Any]) -> Props | None:
        """The props with every ref replaced by its value; None if a value is unknown."""
        deps = list(res.dependencies())
        if not deps:
            declared: Props = res.props
            return declared
        if any(d.id not in self.known for d in deps):
            return None
        try:
            resolved: Props = type(res).props_model.model_validate(self._substitute(res.props))
            return resolved
        except ValidationError as exc:
            raise ConfigError(
                f"a resolved reference does not fit the props of {res.kind}: {exc}",
                where=self.where(res.id, res.kind),
                fix="pass a reference to an output of the right type",
            ) from None

    def _substitute(self, value: Any) -> Any:
        if isinstance(value, Ref):
            return self.known[value.resource.id][value.name]
        if isinstance(value, BaseModel):
            return {n: self._substitute(getattr(value, n)) for n in type(value).model_fields}
        if isinstance(value, dict):
            return {k: self._substitute(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._substitute(v) for v in value)
        return value

    def _set_outputs(self, res: Resource[Any, Any] | None, rid: str, outputs: Any) -> None:
        """Record outputs: a model from a provider now, or state JSON decoded on first use."""
        if isinstance(outputs, BaseModel):
            values = outputs.__dict__.copy()  # dict(outputs), without its generator
            if outputs.__pydantic_extra__:
                values.update(outputs.__pydantic_extra__)
            self.known.set(rid, values)
            if res is not None:
                res.outputs = outputs
            return
        self.known.set_raw(rid, outputs or {})
        if res is not None:
            model = type(res).outputs_model
            res.load_outputs(lambda: model.model_validate(self.known[rid]))

    # ------------------------------------------------------------------- plan
    def compute_plan(self) -> Plan:
        changes: list[Change] = []
        records = self.state.records
        for rid, rec in records.items():  # outputs of what state already has
            if rec.get("status") in SETTLED and rec.get("outputs") is not None:
                self.known.set_raw(rid, rec["outputs"])
        planned: dict[str, Action] = {}
        for rid, res in self.declared.items():
            change = self._plan_one(rid, res, records.get(rid), planned)
            planned[rid] = change.action
            if change.action is not Action.NOOP:
                self.known.forget(rid)  # changing: its outputs are not known yet
            changes.append(change)
        for rid in self._delete_order([r for r in records if r not in self.declared]):
            rec = records[rid]
            changes.append(
                Change(
                    rid,
                    rec.get("kind", "?"),
                    Action.DELETE,
                    reason="no longer declared",
                    deps=tuple(rec.get("deps", [])),
                )
            )
        return Plan(
            self.app.name, self.stage.name, Phase.UP, tuple(changes), self.state.fingerprint()
        )

    def _plan_one(
        self,
        rid: str,
        res: Resource[Any, Any],
        rec: dict[str, Any] | None,
        planned: dict[str, Action],
    ) -> Change:
        deps = tuple(d.id for d in res.dependencies())
        self._secret_seen = False
        declared_body = canonical_json(self.encode_digest(res.props, declared=True))
        same_body = not deps and not self._secret_seen  # else the digest forms differ
        declared = digest(res.kind, declared_body)
        if same_body:
            self._bodies[rid] = declared_body  # a create's digest needs it again

        def change(
            action: Action, reason: str = "", fields: tuple[FieldChange, ...] = ()
        ) -> Change:
            return Change(rid, res.kind, action, reason, fields, deps, declared)

        if rec is None:
            return change(Action.CREATE)
        if rec.get("kind") != res.kind:
            raise ConfigError(
                f"resource {rid!r} is a {rec.get('kind')} in state but declared as {res.kind}",
                where=self.where(rid, res.kind),
                fix="give the new resource another id (the old one is then deleted), or "
                "destroy the old one first",
            )
        status = rec.get("status")
        if status == CREATING:
            return change(Action.CREATE, "finishing an interrupted create")
        if status == DELETING:
            return change(Action.CREATE, "re-creating after an interrupted delete")
        props = self.resolve(res)
        dig = None
        if props is not None:
            body = declared_body if same_body else None
            dig = self.resource_digest(res, props, body)
            if status in SETTLED and dig == rec.get("digest"):
                drift = self._check(res, props, rec)
                if drift is None:
                    reason = "finishing a replacement" if rec.get("replaced") else ""
                    return change(Action.NOOP, reason)
                old = self.props_from_state(type(res), rec.get("props"))
                self._prepared[rid] = (props, dig, old, [])
                self._drifted.add(rid)
                return change(Action.UPDATE, drift)
        cls = type(res)
        old = self.props_from_state(cls, rec.get("props"))
        fields = self._field_changes(cls, old, props if props is not None else res.props)
        if props is not None and dig is not None:
            self._prepared[rid] = (props, dig, old, fields)
        action, why = self._update_or_replace(cls, old, props, fields)
        if status in (UPDATING, REPLACING):
            why = f"finishing an interrupted {status.removesuffix('ing')}e"
        elif props is None and not fields:
            why = "depends on " + ", ".join(d for d in deps if planned.get(d) != Action.NOOP)
        return change(action, why, tuple(fields))

    def _check(self, res: Resource[Any, Any], props: Props, rec: dict[str, Any]) -> str | None:
        provider = self.provider(type(res))
        if type(provider).check is Provider.check:
            return None  # the common case: no look at all
        outputs = self.outputs_from_state(type(res), rec.get("outputs"))
        return provider.check(self.ctx(res.id, res.kind), props, outputs)

    def _update_or_replace(
        self,
        cls: type[Resource[Any, Any]],
        old: Props,
        new: Props | None,
        fields: list[FieldChange],
    ) -> tuple[Action, str]:
        provider = self.provider(cls)
        forced = [f.path for f in fields if f.forces_replacement]
        if forced:
            return Action.REPLACE, f"{', '.join(forced)} cannot change in place"
        if new is not None:
            verdict = provider.diff(old, new)
            if verdict is not None and verdict.replace:
                return Action.REPLACE, verdict.reason or "the provider replaces on this change"
        if type(provider).update is Provider.update:
            return Action.REPLACE, f"{cls.kind} cannot be updated in place"
        return Action.UPDATE, ""

    def _field_changes(
        self, cls: type[Resource[Any, Any]], old: Props, new: Props
    ) -> list[FieldChange]:
        replace_on = self.provider(cls).replace_on
        before_d, after_d = self.encode_digest(old), self.encode_digest(new)
        before_v, after_v = self.encode_display(old), self.encode_display(new)
        out: list[FieldChange] = []
        for name in sorted(set(before_d) | set(after_d)):
            b, a = before_d.get(name), after_d.get(name)
            if b == a:
                continue
            if (
                isinstance(b, dict)
                and isinstance(a, dict)
                and not _is_marker(b)
                and not _is_marker(a)
            ):
                bv, av = before_v.get(name) or {}, after_v.get(name) or {}
                for key in sorted(set(b) | set(a)):
                    if b.get(key) != a.get(key):
                        out.append(
                            FieldChange(
                                f"{name}.{key}", bv.get(key), av.get(key), name in replace_on
                            )
                        )
            else:
                out.append(
                    FieldChange(
                        name,
                        before_v.get(name),
                        after_v.get(name),
                        name in replace_on and a != UNKNOWN,
                    )
                )
        return out

    def _dependents(self, rids: list[str]) -> dict[str, list[str]]:
        """For each of ``rids``, the others among them that depend on it."""
        chosen = set(rids)
        dependents: dict[str, list[str]] = {rid: [] for rid in rids}
        for rid in rids:
            for dep in self.state.records[rid].get("deps", []):
                if dep in chosen and dep != rid:
                    dependents[dep].append(rid)
        return dependents

    def _delete_order(self, rids: list[str]) -> list[str]:
        """Dependents first: a resource comes after everything that depends on it."""
        dependents = self._dependents(rids)
        waiting = {rid: len(dependents[rid]) for rid in rids}
        deps_of: dict[str, list[str]] = {rid: [] for rid in rids}
        for dep, users in dependents.items():
            for user in users:
                deps_of[user].append(dep)
        ready = deque(rid for rid in rids if waiting[rid] == 0)
        order: list[str] = []
        while ready:
            rid = ready.popleft()
            order.append(rid)
            for dep in deps_of[rid]:
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    ready.append(dep)
        if len(order) < len(rids):  # a cycle in damaged state: keep the rest as listed
            placed = set(order)
            order.extend(rid for rid in rids if rid not in placed)
        return order

    # ------------------------------------------------------------------ apply
    async def apply(self, plan: Plan) -> RunResult:
        journal = self.journal()
        semaphore = _Limiter(self.concurrency)
        result = RunResult(
            self.app.name,
            self.stage.name,
            Phase.UP,
            plan_digest=plan.digest,
            recovered=self.state.replayed > 0,
        )
        by_id = {c.id: c for c in plan.changes}
        changes = [(c.id, c.kind, c.action.value) for c in plan.changes]
        self.report("run.start", phase="up", changes=changes)
        done: dict[str, asyncio.Event] = {}
        failed: dict[str, BaseException] = {}

        async def one(res: Resource[Any, Any], change: Change) -> None:
            try:
                for dep in change.deps:
                    if dep in done:
                        await done[dep].wait()
                bad = [d for d in change.deps if d in failed]
                if bad:
                    raise ProviderError(
                        f"skipped: dependency {', '.join(bad)} failed",
                        where=self.where(res.id, res.kind),
                    )
                action = await self._apply_one(res, journal, semaphore)
                result.resources.append(ResourceResult(res.id, res.kind, action))
            except Exception as exc:
                failed[res.id] = exc
                result.resources.append(
                    ResourceResult(res.id, res.kind, change.action, ok=False, error=str(exc))
                )
                self.report("resource.failed", id=res.id, kind=res.kind, error=str(exc))
            finally:
                done[res.id].set()

        tasks = []
        for rid, res in self.declared.items():
            change = by_id[rid]
            if change.action is Action.NOOP and not self.state.records[rid].get("replaced"):
                self._set_outputs(res, rid, self.state.records[rid].get("outputs"))
                result.resources.append(ResourceResult(rid, res.kind, Action.NOOP))
                continue
            done[rid] = asyncio.Event()
            tasks.append((res, change))
        await asyncio.gather(*(one(res, change) for res, change in tasks))

        if failed:
            await self._checkpoint()
            self.report("run.failed", result=result)
            raise self._deploy_error(result, failed, "up")
        orphans = [c.id for c in plan.changes if c.action is Action.DELETE]
        await self._delete_many(orphans, journal, semaphore, result, full=True)
        pending = [rid for rid in self.declared if self.state.records.get(rid, {}).get("replaced")]
        await self._delete_many(pending, journal, semaphore, result, full=False)
        self.finish_outputs(result)
        if self.state.meta.get("outputs") != result.outputs_stored:
            await journal.write({"t": "meta", "key": "outputs", "value": result.outputs_stored})
        await self._checkpoint()
        if self.delete_errors:
            self.report("run.failed", result=result)
            raise self._deploy_error(result, self.delete_errors, "up")
        self.report("run.done", result=result)
        return result

    async def _apply_one(
        self, res: Resource[Any, Any], journal: _GroupJournal, semaphore: _Limiter
    ) -> Action:
        rid, cls = res.id, type(res)
        rec = self.state.records.get(rid)
        prepared = self._prepared.pop(rid, None)  # the plan already resolved and compared
        if prepared is not None:
            props, dig, old, fields = prepared
        else:
            resolved = self.resolve(res)
            if resolved is None:  # cannot happen: dependencies are done
                raise ProviderError(f"unresolved references in {rid!r}", where=self.where(rid))
            body = self._bodies.pop(rid, None) if resolved is res.props else None
            props, dig = resolved, self.resource_digest(res, resolved, body)
        status = rec.get("status") if rec else None
        drifted = rid in self._drifted
        if rec is not None and status in SETTLED and rec.get("digest") == dig and not drifted:
            self._set_outputs(res, rid, rec.get("outputs"))
            return Action.NOOP
        provider = self.provider(cls)
        ctx = self.ctx(rid, res.kind)
        if status == CREATING:  # the create may have happened
            ctx = dataclasses.replace(ctx, resuming=True)
        stored = self.encode_state(props)
        deps = [d.id for d in res.dependencies()]
        now = _now()
        base = {
            "kind": res.kind,
            "deps": deps,
            "created": (rec or {}).get("created", now),
            "updated": now,
        }
        replaced = list((rec or {}).get("replaced", []))
        if replaced:
            base["replaced"] = replaced

        if rec is None or status in (CREATING, DELETING):
            action = Action.CREATE
        else:
            if prepared is None:
                old = self.props_from_state(cls, rec.get("props"))
                fields = self._field_changes(cls, old, props)
            verdict = provider.diff(old, props)
            if verdict is not None and not verdict.changed and status in SETTLED:
                await journal.put(
                    rid, {**rec, "props": stored, "digest": dig, "updated": now}, sync=False
                )
                self._set_outputs(res, rid, rec.get("outputs"))
                return Action.NOOP
            action, _ = self._update_or_replace(cls, old, props, fields)

        verb = str(action)  # a StrEnum's str is its value
        self.report("resource.start", id=rid, kind=res.kind, action=verb)
        creating = {
            **base,
            "status": CREATING,
            "props": stored,
            "digest": None,
            "outputs": None,
        }  # the intent before a provider create
        if action is Action.CREATE:
            await journal.put(
                rid,
                creating,
            )
            outputs = await self._call(
                semaphore, rid, res.kind, "create", provider.create(ctx, props)
            )
            final = CREATED
        elif action is Action.UPDATE:
            assert rec is not None
            await journal.put(
                rid,
                {**rec, "status": UPDATING, "next": stored, "updated": now},
            )
            old_outputs = self.outputs_from_state(cls, rec.get("outputs"))
            outputs = await self._call(
                semaphore, rid, res.kind, "update", provider.update(ctx, old, props, old_outputs)
            )
            final = UPDATED
        else:
            assert rec is not None
            old_half = {"props": rec.get("props"), "outputs": rec.get("outputs")}
            await journal.put(
                rid,
                {**rec, "status": REPLACING, "next": stored, "updated": now},
            )
            if provider.delete_first:
                old_outputs = self.outputs_from_state(cls, rec.get("outputs"))
                await self._call(
                    semaphore, rid, res.kind, "delete", provider.delete(ctx, old, old_outputs)
                )
                await journal.put(
                    rid,
                    creating,
                )
            else:
                base["replaced"] = [*replaced, old_half]
            outputs = await self._call(
                semaphore, rid, res.kind, "create", provider.create(ctx, props)
            )
            final = CREATED
        if not isinstance(outputs, cls.outputs_model):
            raise ProviderError(
                f"the {res.kind} provider returned {type(outputs).__name__}, not "
                f"{cls.outputs_model.__name__}",
                where=self.where(rid, res.kind),
                fix="return the kind's outputs model",
            )
        await journal.put(
            rid,
            {
                **base,
                "status": final,
                "props": stored,
                "digest": dig,
                "outputs": self.encode_state(outputs),
            },
            sync=False,
        )
        self._set_outputs(res, rid, outputs)
        self.report("resource.done", id=rid, kind=res.kind, action=verb)
        return action

    async def _call(
        self, semaphore: _Limiter, rid: str, kind: str, op: str, call: Awaitable[Any]
    ) -> Any:
        async with semaphore:
            try:
                return await call
            except AlchemyError:
                raise
            except Exception as exc:
                raise ProviderError(
                    f"{op} failed: {type(exc).__name__}: {exc}",
                    where=self.where(rid, kind),
                    fix="fix the cause and run again; the run resumes where it stopped",
                ) from exc

    # ----------------------------------------------------------------- delete
    async def _delete_many(
        self,
        rids: list[str],
        journal: _GroupJournal,
        semaphore: _Limiter,
        result: RunResult,
        *,
        full: bool,
    ) -> None:
        """Delete records (full) or only the old halves of replacements, dependents first."""
        if not rids:
            return
        records = self.state.records
        done = {rid: asyncio.Event() for rid in rids}
        failed: set[str] = set()
        errors = self.delete_errors
        dependents = self._dependents(rids)

        async def one(rid: str) -> None:
            kind = records[rid].get("kind", "?")
            try:
                for other in dependents[rid]:
                    await done[other].wait()
                if any(o in failed for o in dependents[rid]):
                    raise ProviderError(
                        f"skipped: a dependent of {rid!r} could not be deleted",
                        where=self.where(rid, kind),
                    )
                await self._delete_one(rid, journal, semaphore, full=full)
                if full:
                    result.resources.append(ResourceResult(rid, kind, Action.DELETE))
            except Exception as exc:
                failed.add(rid)
                result.resources.append(
                    ResourceResult(rid, kind, Action.DELETE, ok=False, error=str(exc))
                )
                self.report("resource.failed", id=rid, kind=kind, error=str(exc))
                errors[rid] = exc
            finally:
                done[rid].set()

        await asyncio.gather(*(one(rid) for rid in rids))

    async def _delete_one(
        self, rid: str, journal: _GroupJournal, semaphore: _Limiter, *, full: bool
    ) -> None:
        rec = self.state.records[rid]
        kind = rec.get("kind", "?")
        cls = kind_registry.get(kind)
        if cls is None:
            raise ProviderError(
                f"unknown resource kind {kind!r}",
                where=self.where(rid, kind),
                fix="import the module that defines the kind in the program, or install the "
                "alchemy-nb extra that provides it",
            )
        provider = self.provider(cls)
        ctx = self.ctx(rid, kind)
        for half in list(rec.get("replaced", [])):
            props = self.props_from_state(cls, half.get("props"))
            outputs = self.outputs_from_state(cls, half.get("outputs"))
            await self._call(
                semaphore,
                rid,
                kind,
                "delete (old replaced resource)",
                provider.delete(ctx, props, outputs),
            )
            rec = dict(self.state.records[rid])
            rec["replaced"] = [h for h in rec.get("replaced", []) if h != half]
            if not rec["replaced"]:
                del rec["replaced"]
            await journal.put(rid, rec, sync=False)
        if not full:
            return
        self.report("resource.start", id=rid, kind=kind, action="delete")
        await journal.put(rid, {**rec, "status": DELETING, "updated": _now()})
        outputs = self.outputs_from_state(cls, rec.get("outputs"))
        shapes = [rec.get("props")]
        if rec.get("next") is not None and rec.get("next") != rec.get("props"):
            shapes.append(rec["next"])  # an interrupted update or replace: either may exist
        for shape in shapes:
            await self._call(
                semaphore,
                rid,
                kind,
                "delete",
                provider.delete(ctx, self.props_from_state(cls, shape), outputs),
            )
        await journal.delete(rid)
        self.report("resource.done", id=rid, kind=kind, action="delete")

    async def destroy(self) -> RunResult:
        journal = self.journal()
        semaphore = _Limiter(self.concurrency)
        result = RunResult(
            self.app.name, self.stage.name, Phase.DESTROY, recovered=self.state.replayed > 0
        )
        if self.state.meta.get("secrets") is not None:
            self.box(create=False)  # a missing or wrong password fails here, before any work
        for rid, rec in self.state.records.items():
            if rec.get("outputs") is not None:
                self.known.set_raw(rid, rec["outputs"])
        rids = self._delete_order(list(self.state.records))
        records = self.state.records
        changes = [(rid, records[rid].get("kind", "?"), "delete") for rid in rids]
        self.report("run.start", phase="destroy", changes=changes)
        await self._delete_many(rids, journal, semaphore, result, full=True)
        if self.delete_errors:
            await self._checkpoint()
            self.report("run.failed", result=result)
            raise self._deploy_error(result, self.delete_errors, "destroy")
        await self.store.drop(self.app.name, self.stage.name)
        self.report("run.done", result=result)
        return result

    def destroy_plan(self) -> Plan:
        records = self.state.records
        changes = tuple(
            Change(
                rid,
                records[rid].get("kind", "?"),
                Action.DELETE,
                reason="destroy",
                deps=tuple(records[rid].get("deps", [])),
            )
            for rid in self._delete_order(list(records))
        )
        return Plan(
            self.app.name, self.stage.name, Phase.DESTROY, changes, self.state.fingerprint()
        )

    # ------------------------------------------------------------------- read
    def read(self) -> RunResult:
        result = RunResult(self.app.name, self.stage.name, Phase.READ)
        missing = []
        for rid, res in self.declared.items():
            rec = self.state.records.get(rid)
            if rec is None or rec.get("status") not in SETTLED:
                missing.append(rid)
                continue
            self._set_outputs(res, rid, rec.get("outputs"))
            result.resources.append(ResourceResult(rid, res.kind, Action.NOOP))
        if missing:
            first = self.declared[missing[0]]
            raise StateError(
                f"{len(missing)} declared resource(s) are not deployed in stage "
                f"{self.stage.name!r}: {', '.join(missing)}",
                where=self.where(first.id, first.kind),
                fix=f"deploy the stage first: alchemy-nb deploy --stage {self.stage.name}",
            )
        self.finish_outputs(result)
        return result

    # ---------------------------------------------------------------- helpers
    def finish_outputs(self, result: RunResult) -> None:
        def ref(r: Ref) -> Any:
            return self.known[r.resource.id][r.name]

        resolved = self._substitute_outputs(self.program_outputs, ref)
        result.outputs = resolved
        result.outputs_masked = self.encode_display(resolved)
        result.outputs_stored = self.encode_state(resolved)

    def _substitute_outputs(self, value: Any, ref: Callable[[Ref], Any]) -> Any:
        if isinstance(value, Ref):
            return ref(value)
        if isinstance(value, Resource):
            return dict(self.known.get(value.id) or {})
        if isinstance(value, Mapping):
            return {str(k): self._substitute_outputs(v, ref) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._substitute_outputs(v, ref) for v in value]
        return value

    async def _checkpoint(self) -> None:
        if not self.wrote and not self.state.replayed:
            return  # nothing changed: the snapshot on disk is already this state
        if self.state.records:
            await self.store.checkpoint(self.state)
        else:
            await self.store.drop(self.app.name, self.stage.name)

    def _deploy_error(
        self, result: RunResult, failed: Mapping[str, BaseException], phase: str
    ) -> DeployError:
        names = sorted(failed)
        first_exc = failed[names[0]]
        first = first_exc.what if isinstance(first_exc, AlchemyError) else str(first_exc)
        return DeployError(
            f"{phase} of {self.app.name}/{self.stage.name} failed for {len(names)} "
            f"resource(s): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}; "
            f"first error: {first}",
            where=self.where(),
            fix="fix the cause and run again; finished work is kept and the rest resumes",
            failures=dict(failed),
            result=result,
        )

    def check_saved_plan(self, saved: Plan, current: Plan) -> None:
        if (saved.app, saved.stage, saved.phase) != (current.app, current.stage, current.phase):
            raise PlanError(
                f"the saved plan is for {saved.app}/{saved.stage} ({saved.phase.value}), not "
                f"{current.app}/{current.stage} ({current.phase.value})",
                where=self.where(),
                fix="pass the plan made for this stage",
            )
        if saved.base != current.base:
            raise PlanError(
                "the stage's state changed since the plan was made",
                where=self.where(),
                fix=f"make a new plan: alchemy-nb plan --stage {self.stage.name} --out FILE",
            )
        if saved.digest != current.digest:
            raise PlanError(
                "the program changed since the plan was made (its changes differ)",
                where=self.where(),
                fix=f"make a new plan: alchemy-nb plan --stage {self.stage.name} --out FILE",
            )


def _resource_link(resource: Any) -> dict[str, str]:
    return {"@resource": resource.id}


_DISPLAY_HOOKS: dict[type, Callable[[Any], Any]] = {
    Secret: lambda s: MASK,
    _Referable: lambda r: f"<{r.id}>",
    Ref: lambda r: UNKNOWN,
}


def encode(
    value: Any, hooks: dict[type, Callable[[Any], Any]], *, skip_defaults: bool = False
) -> Any:
    """JSON-ready data; pydantic models go through their (fast) serializer with our hooks."""
    if isinstance(value, BaseModel):
        context: dict[str, Any] = {HOOKS: hooks}
        try:
            return value.model_dump(mode="json", exclude_defaults=skip_defaults, context=context)
        except PydanticSerializationError:
            if context.get(HOOK_ERRORS):
                raise context[HOOK_ERRORS][0] from None
            raise
    return walk(value, hooks, skip_defaults=skip_defaults)


def _is_marker(value: Mapping[str, Any]) -> bool:
    return len(value) <= 2 and ("@secret" in value or "@resource" in value)


def _user_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if not frame.filename.startswith(_PACKAGE_DIR) and not frame.filename.startswith("<"):
            return f"{os.path.relpath(frame.filename)}:{frame.lineno} in {frame.name}"
    return "the program"
