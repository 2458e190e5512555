"""`App` and `Stage`: the front of the engine."""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._repr import Displayed
from ..errors import ConfigError
from ._plan import Phase, Plan, RunResult

if TYPE_CHECKING:
    from .._config import AppConfig
    from ..state import LockInfo, StateStore
    from ._run import Reporter, Run

__all__ = ["App", "Stage", "StageStatus", "default_stage"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
F = TypeVar("F", bound=Callable[..., Any])


def default_stage() -> str:
    """``STAGE``, then ``ALCHEMY_STAGE``, then ``dev``."""
    return os.environ.get("STAGE") or os.environ.get("ALCHEMY_STAGE") or "dev"


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"invalid {what} name {name!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
            fix=f"rename the {what}, e.g. 'dev' or 'my-app'",
        )
    return name


@dataclass(frozen=True)
class StageSettings:
    """What the stage configuration says about one stage, for the engine."""

    target: str
    vars: dict[str, str]


@dataclass(frozen=True)
class Stage(Displayed):
    """A stage of an app (``dev``, ``staging``, ``prod``) in one phase; programs receive it."""

    app: App
    name: str
    phase: Phase = Phase.UP

    def __repr__(self) -> str:
        return f"Stage({self.app.name}/{self.name}, phase={self.phase.value})"


@dataclass
class StageStatus(Displayed):
    """What state knows about a stage: its resources, its lock, unfinished work."""

    app: str
    stage: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    lock: LockInfo | None = None
    interrupted: bool = False
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "stage": self.stage,
            "resources": self.resources,
            "lock": self.lock.to_json() if self.lock else None,
            "interrupted": self.interrupted,
            "outputs": self.outputs,
        }


class App(Displayed):
    """An app: a name, a program (a function of the stage), and state beside the code.

    Example::

        app = alchemy_nb.App("hello")

        @app.program
        def infra(stage):
            greeting = File("greeting", path="out/hello.txt", content=f"hi {stage.name}")
            return {"path": greeting.path}

        result = await app.deploy("dev")     # in a notebook: top-level await
        print(result.outputs)

    ``root`` is the app's folder (default: the folder of the file that creates the app,
    else the current directory); relative paths and ``.alchemy/`` state live there.
    ``state`` is a store or a state URL (``sqlite:///state.db``,
    ``postgresql://deploy@db/alchemy``); by default ``$ALCHEMY_STATE_URL``, else the files.
    """

    def __init__(
        self,
        name: str,
        *,
        root: str | Path | None = None,
        state: StateStore | str | None = None,
        password: str | None = None,
        concurrency: int = 32,
        lock_timeout: float = 60.0,
        target: str = "local",
    ) -> None:
        self.name = _check_name("app", name)
        self.target = target
        caller = sys._getframe(1).f_globals
        if root is None:
            file = caller.get("__file__")
            root = Path(file).resolve().parent if file else Path.cwd()
        self.root = Path(root).resolve()
        self.data_root = self.root
        """Where ``.alchemy/`` (state and local data) and ``alchemy_nb.toml`` live."""
        self._config: Any = None
        self.release_vars: dict[str, str] = {}
        """Vars a release deploy gives every Worker (``ALCHEMY_RELEASE``)."""
        self._state: StateStore | None = None
        if state is not None:
            self.state = state
        self.password = password
        self.concurrency = concurrency
        self.lock_timeout = lock_timeout
        self.program_function: Callable[[Stage], Any] | None = None
        self._ran_as_script = False
        if _is_script_main(caller):
            self._script_file = str(Path(caller["__file__"]).resolve())
            atexit.register(self._run_at_exit)

    def __repr__(self) -> str:
        return f"App({self.name!r}, root={str(self.root)!r})"

    @property
    def state(self) -> StateStore:
        """The state store: the one given (a store or a state URL such as
        ``sqlite:///state.db``), else ``$ALCHEMY_STATE_URL``'s, else files under
        ``<data_root>/.alchemy``."""
        if self._state is None:
            from ..state import store_from_env

            self._state = store_from_env(self.data_root / ".alchemy")
        return self._state

    @state.setter
    def state(self, store: StateStore | str) -> None:
        if isinstance(store, str):
            from ..state import open_store

            store = open_store(store)
        self._state = store

    @property
    def config(self) -> AppConfig:
        """The stage configuration (``alchemy_nb.toml`` or ``[tool.alchemy-nb]``)."""
        if self._config is None:
            from .._config import load_config

            self._config = load_config(self.data_root)
        return self._config  # type: ignore[no-any-return]

    def settings(self, stage: str) -> StageSettings:
        """Where ``stage`` deploys and the vars its workers get."""
        if self.config.stages:
            conf = self.config.stage(stage)
            return StageSettings(conf.target, {**conf.vars, **self.release_vars})
        return StageSettings(self.target, dict(self.release_vars))

    def program(self, fn: F) -> F:
        """Register the program: a function (or coroutine function) of the :class:`Stage`.

        Registering again (a re-run notebook cell) replaces the previous program.
        """
        if not callable(fn):
            raise ConfigError(
                "@app.program decorates a function of the stage",
                fix="write `@app.program` above `def infra(stage): ...`",
            )
        self.program_function = fn
        return fn

    def stage(self, name: str | None = None, phase: Phase | str = Phase.UP) -> Stage:
        """The stage named ``name`` (default: ``STAGE``, ``ALCHEMY_STAGE``, then ``dev``)."""
        return Stage(self, _check_name("stage", name or default_stage()), Phase(phase))

    def _run(
        self,
        stage: str | None,
        phase: Phase,
        *,
        concurrency: int | None = None,
        password: str | None = None,
        reporter: Reporter | None = None,
    ) -> Run:
        from ._run import Run

        return Run(
            self,
            self.stage(stage, phase),
            self.state,
            concurrency=concurrency or self.concurrency,
            password=password or self.password or os.environ.get("ALCHEMY_PASSWORD"),
            reporter=reporter,
        )

    async def plan(
        self,
        stage: str | None = None,
        *,
        destroy: bool = False,
        password: str | None = None,
        prepare: Callable[[list[Path]], Awaitable[None]] | None = None,
    ) -> Plan:
        """What ``deploy`` (or, with ``destroy=True``, ``destroy``) would do; changes nothing.
        ``prepare`` works as for :meth:`deploy`."""
        run = self._run(stage, Phase.PLAN, password=password)
        run.report("run.start", phase="plan", changes=[])
        run.state = await self.state.load(self.name, run.stage.name)
        if destroy:
            plan = run.destroy_plan()
        else:
            await run.run_program()
            if prepare is not None:
                await prepare(run.artifact_files())
                run.settings = self.settings(run.stage.name)
            plan = run.compute_plan()
        run.report("run.done", plan=plan)
        return plan

    async def deploy(
        self,
        stage: str | None = None,
        *,
        plan: Plan | None = None,
        concurrency: int | None = None,
        password: str | None = None,
        lock_timeout: float | None = None,
        reporter: Reporter | None = None,
        prepare: Callable[[list[Path]], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Phase ``up``: create, update and replace what changed, then delete orphans.

        Given a saved ``plan``, applies exactly it, or raises :class:`PlanError` when the
        program or the state changed since it was computed. ``prepare``, if given, gets
        the files the declared resources read once the program ran and before anything
        is planned (the promotion layer stores them as a release there).
        """
        run = self._run(
            stage, Phase.UP, concurrency=concurrency, password=password, reporter=reporter
        )
        async with self._locked(run, "deploy", lock_timeout):
            await run.run_program()
            if prepare is not None:
                await prepare(run.artifact_files())
                run.settings = self.settings(run.stage.name)  # prepare may add release vars
            current = run.compute_plan()
            if plan is not None:
                run.check_saved_plan(plan, current)
            return await run.apply(current)

    async def read(self, stage: str | None = None, *, password: str | None = None) -> RunResult:
        """Phase ``read``: run the program and take every output from state; writes nothing."""
        run = self._run(stage, Phase.READ, password=password)
        run.state = await self.state.load(self.name, run.stage.name)
        await run.run_program()
        return run.read()

    async def destroy(
        self,
        stage: str | None = None,
        *,
        plan: Plan | None = None,
        concurrency: int | None = None,
        password: str | None = None,
        lock_timeout: float | None = None,
        reporter: Reporter | None = None,
    ) -> RunResult:
        """Phase ``destroy``: delete every resource of the stage, dependents first."""
        run = self._run(
            stage, Phase.DESTROY, concurrency=concurrency, password=password, reporter=reporter
        )
        async with self._locked(run, "destroy", lock_timeout):
            if plan is not None:
                run.check_saved_plan(plan, run.destroy_plan())
            return await run.destroy()

    async def status(self, stage: str | None = None) -> StageStatus:
        """The stage's resources as state knows them, its lock, and unfinished work."""
        name = self.stage(stage).name
        state = await self.state.load(self.name, name)
        from .._secret import MASK

        resources = [
            {
                "id": rid,
                "kind": rec.get("kind"),
                "status": rec.get("status"),
                "updated": rec.get("updated"),
            }
            for rid, rec in sorted(state.records.items())
        ]
        interrupted = state.replayed > 0 or any(
            r["status"] not in ("created", "updated") for r in resources
        )
        outputs = _mask_stored(state.meta.get("outputs") or {}, MASK)
        return StageStatus(
            self.name,
            name,
            resources,
            await self.state.current_lock(self.name, name),
            interrupted,
            outputs,
        )

    def _locked(self, run: Run, operation: str, timeout: float | None) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def hold() -> Any:
            async with self.state.lock(
                self.name,
                run.stage.name,
                operation=operation,
                timeout=self.lock_timeout if timeout is None else timeout,
                on_wait=lambda holder: run.report("lock.wait", holder=holder),
                on_takeover=lambda holder: run.report("lock.takeover", holder=holder),
            ):
                run.state = await self.state.load(self.name, run.stage.name)
                if run.state.replayed:
                    run.report("recover", entries=run.state.replayed)
                yield

        return hold()

    # ----------------------------------------------------------- script edge
    def run(self, phase: str | None = None, stage: str | None = None) -> RunResult:
        """Run one phase synchronously, for ``python alchemy_run.py``.

        ``phase`` defaults to ``PHASE`` (``up``, ``read`` or ``destroy``; default ``up``),
        ``stage`` to ``STAGE``/``ALCHEMY_STAGE``/``dev``.
        """
        self._ran_as_script = True
        chosen = (phase or os.environ.get("PHASE") or "up").lower()
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "up": lambda: self.deploy(stage),
            "deploy": lambda: self.deploy(stage),
            "read": lambda: self.read(stage),
            "destroy": lambda: self.destroy(stage),
            "plan": lambda: self.plan(stage),
        }
        if chosen not in actions:
            raise ConfigError(
                f"unknown PHASE {chosen!r}", fix="set PHASE to up, read, destroy or plan"
            )
        return asyncio.run(actions[chosen]())  # type: ignore[arg-type]

    def _run_at_exit(self) -> None:
        """``python alchemy_run.py`` without an explicit ``app.run()``: run the phase.

        At interpreter exit no new threads may start, so the phase runs in a child
        process (the ``alchemy-nb`` command on this same file) and its exit code is ours.
        """
        if self._ran_as_script or self.program_function is None or _script_failed[0]:
            return
        import subprocess

        phase = (os.environ.get("PHASE") or "up").lower()
        command = {
            "up": "deploy",
            "deploy": "deploy",
            "read": "read",
            "destroy": "destroy",
            "plan": "plan",
        }.get(phase)
        sys.stdout.flush()
        sys.stderr.flush()
        if command is None:
            sys.stderr.write(
                f"error: unknown PHASE {phase!r}. Fix: set PHASE to up, read, destroy or plan.\n"
            )
            os._exit(2)
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "alchemy_nb",
                command,
                "--program",
                self._script_file,
                "--stage",
                default_stage(),
            ]
        )
        if code:
            os._exit(code)


_script_failed = [False]


def _is_script_main(caller: dict[str, Any]) -> bool:
    """True when the app is created by a file run as ``python file.py`` (not a notebook)."""
    if caller.get("__name__") != "__main__" or not caller.get("__file__"):
        return False
    if "ipykernel" in sys.modules or sys.flags.interactive or hasattr(sys, "ps1"):
        return False
    previous = sys.excepthook

    def hook(*args: Any) -> None:
        _script_failed[0] = True
        previous(*args)

    if not getattr(sys.excepthook, "_alchemy_nb", False):
        hook._alchemy_nb = True  # type: ignore[attr-defined]
        sys.excepthook = hook
    return True


def _mask_stored(value: Any, mask: str) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "@secret" in value:
            return mask
        return {k: _mask_stored(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_stored(v, mask) for v in value]
    return value
