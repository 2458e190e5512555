"""Resources: typed props, typed outputs and a small provider protocol.

A resource kind is three classes in one file: frozen pydantic props, an outputs model,
and a provider with ``create / update / delete`` (plus optional ``read`` and ``diff``).
The kind class ties them together::

    class FileProps(Props):
        path: Input[str]
        content: Input[str] = ""

    class FileOutputs(Outputs):
        path: str
        content: str

    class FileProvider(Provider[FileProps, FileOutputs]):
        replace_on = frozenset({"path"})
        async def create(self, ctx, props): ...
        async def update(self, ctx, old, props, outputs): ...
        async def delete(self, ctx, props, outputs): ...

    class File(Resource[FileProps, FileOutputs]):
        kind = "fs::File"
        props_model = FileProps
        outputs_model = FileOutputs
        provider = FileProvider
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from .._repr import Displayed
from ..errors import ConfigError

if TYPE_CHECKING:
    from ._app import Stage

__all__ = [
    "Declarations",
    "Diff",
    "Input",
    "Outputs",
    "Props",
    "Provider",
    "Ref",
    "Resource",
    "ResourceContext",
    "ResourceHandle",
    "kind_registry",
]

HOOKS = "alchemy_nb.hooks"
HOOK_ERRORS = "alchemy_nb.hook_errors"
"""Key in a pydantic serialization context: ``{type: function}`` for secrets, refs and
resources, so ``model_dump`` can seal, hash or mask them."""


def serializer(kind: type, fallback: Any) -> Any:
    """A pydantic plain serializer that asks the context's hooks, else uses ``fallback``."""
    from pydantic_core import core_schema

    def serialize(value: Any, info: Any) -> Any:
        hooks = info.context.get(HOOKS) if info.context else None
        hook = hooks.get(kind) if hooks else None
        if hook is None:
            return fallback(value)
        try:
            return hook(value)
        except Exception as exc:  # pydantic wraps it; keep the original for the caller
            info.context.setdefault(HOOK_ERRORS, []).append(exc)
            raise

    return core_schema.plain_serializer_function_ser_schema(
        serialize, info_arg=True, when_used="always"
    )


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Props(BaseModel):
    """Base of every resource's input props: frozen, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Outputs(BaseModel):
    """Base of every resource's outputs: what the provider reports after create/update."""

    model_config = ConfigDict(frozen=True, extra="ignore")


P = TypeVar("P", bound=Props)
O = TypeVar("O", bound=Outputs)  # noqa: E741
T = TypeVar("T")


class _Referable:
    """Something a prop may point at: a declared resource, or one loaded from state.

    Subclasses have an ``id`` and a ``kind``."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.is_instance_schema(
            _Referable,
            serialization=serializer(_Referable, lambda r: {"@resource": r.id}),
        )


class Ref:
    """A lazy reference to one output of another resource; resolved at apply time.

    ``Worker(..., vars={"PATH": file.path})`` makes the worker depend on ``file``.
    """

    __slots__ = ("name", "resource")

    def __init__(self, resource: Resource[Any, Any], name: str) -> None:
        self.resource = resource
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.resource.id}.{self.name}: known after apply>"

    def __str__(self) -> str:
        raise ConfigError(
            f"{self!r} has no value yet, so it cannot be formatted into a string",
            where=f"resource {self.resource.id!r}",
            fix="pass the reference itself as a prop; the engine resolves it at apply time",
        )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.is_instance_schema(cls, serialization=serializer(Ref, lambda r: repr(r)))


Input = Union[T, Ref]  # noqa: UP007 - a generic alias: Input[str] is str | Ref
"""A prop that takes a value or a reference to another resource's output."""


@dataclass(frozen=True)
class ResourceHandle(_Referable, Displayed):
    """A resource as state remembers it: id, kind and outputs (for delete and read)."""

    id: str
    kind: str
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceContext:
    """What a provider call knows about where it runs."""

    app: str
    stage: str
    id: str
    kind: str
    phase: str
    root: Path
    log: Any = None
    target: str = "local"
    """Where the stage's resources run: ``local`` (this machine) or ``cloudflare``."""
    data_root: Path | None = None
    """Where local data lives (``<data_root>/.alchemy``); default: ``root``. Differs from
    ``root`` when a stored release's sources are deployed."""
    stage_vars: Mapping[str, str] = field(default_factory=dict)
    """The stage's configured vars: every Worker gets them as plain-text bindings."""
    resuming: bool = False
    """This create finishes one a killed run started: a resource found under its name is
    most likely the one that run made, and is adopted."""

    @property
    def fqn(self) -> str:
        """The resource's full name: ``app/stage/id``."""
        return f"{self.app}/{self.stage}/{self.id}"

    @property
    def physical_name(self) -> str:
        """The deterministic name a cloud resource gets: ``{app}-{id}-{stage}``."""
        return "-".join(
            re.sub(r"[^A-Za-z0-9_-]", "-", part).lower() for part in (self.app, self.id, self.stage)
        )

    def resolve_path(self, path: str) -> Path:
        """A source path from props (code, migrations), relative to the app's folder (or
        to the release's copy of it)."""
        return Path(os.path.join(self.root, path))  # an absolute path wins the join

    def resolve_output(self, path: str) -> Path:
        """A path the resource writes, relative to the app's real folder (never into a
        release's copy of the sources)."""
        # os.path.join, then one Path: a provider may call this for each of thousands of
        # resources, and pathlib's joining costs more than the write it leads to
        return Path(os.path.join(self.data_root or self.root, path))


@dataclass(frozen=True)
class Diff:
    """What a provider's ``diff`` says about a change of props."""

    changed: bool = True
    replace: bool = False
    reason: str = ""


class Provider(Generic[P, O]):
    """The lifecycle of one resource kind. Bodies reconcile: observe, ensure, return.

    ``create`` may find the thing already there (a re-run after a crash) and must then
    adopt it; ``delete`` of something already gone succeeds.
    """

    replace_on: ClassVar[frozenset[str]] = frozenset()
    """Prop names whose change forces replacement instead of an update."""

    delete_first: ClassVar[bool] = False
    """Replace by deleting the old resource first (for kinds whose names must be unique)."""

    async def create(self, ctx: ResourceContext, props: P) -> O:
        raise NotImplementedError

    async def update(self, ctx: ResourceContext, old: P, props: P, outputs: O | None) -> O:
        """Change the resource in place. The default replaces it."""
        raise NotImplementedError

    async def delete(self, ctx: ResourceContext, props: P, outputs: O | None) -> None:
        raise NotImplementedError

    async def read(self, ctx: ResourceContext, props: P, outputs: O) -> O | None:
        """The live outputs, or None when the resource is gone. The default trusts state."""
        return outputs

    def diff(self, old: P, new: P) -> Diff | None:
        """Optional: judge a change of props yourself. None means "use the field diff"."""
        return None

    def fingerprint(self, ctx: ResourceContext, props: P) -> str | None:
        """Optional: extra content that belongs in the digest (e.g. a worker's code hash)."""
        return None

    def artifacts(self, ctx: ResourceContext, props: P) -> list[Path]:
        """Optional: the files this resource reads (code, migrations). A release stores
        them, so promoting or rolling back never reads the working tree."""
        return []

    def check(self, ctx: ResourceContext, props: P, outputs: O | None) -> str | None:
        """Optional, for resources on this machine: a cheap look at whether an unchanged
        resource still runs as recorded. A reason string makes the plan update it anyway
        (e.g. a local worker whose process is gone after a reboot); None means fine."""
        return None


class Declarations:
    """The resources one program run declared, in order. Ids are unique in it."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.resources: dict[str, Resource[Any, Any]] = {}

    def add(self, resource: Resource[Any, Any]) -> None:
        if resource.id in self.resources:
            other = self.resources[resource.id]
            raise ConfigError(
                f"resource id {resource.id!r} is declared twice ({other.kind} and {resource.kind})",
                where=f"{self.stage.app.name}/{self.stage.name}/{resource.id}, phase "
                f"{self.stage.phase}",
                fix="give each resource its own id within the program",
            )
        self.resources[resource.id] = resource


_declaring: contextvars.ContextVar[Declarations | None] = contextvars.ContextVar(
    "alchemy_nb_declaring", default=None
)


class _KindRegistry:
    """Resource kinds by name. Re-registering a kind (a re-run notebook cell) replaces it."""

    def __init__(self) -> None:
        self._kinds: dict[str, type[Resource[Any, Any]]] = {}
        # Our own providers register their kinds when their package is imported.
        self._packages = {"fs": "alchemy_nb.fs", "cloudflare": "alchemy_nb.cloudflare"}

    def register(self, cls: type[Resource[Any, Any]]) -> None:
        self._kinds[cls.kind] = cls

    def get(self, kind: str) -> type[Resource[Any, Any]] | None:
        package = self._packages.get(kind.partition("::")[0])
        if kind not in self._kinds and package is not None:
            import importlib

            module = importlib.import_module(package)
            for name in getattr(module, "__all__", ()):  # packages may load kinds lazily
                getattr(module, name)
        if kind not in self._kinds:
            self._load_entry_points()
        return self._kinds.get(kind)

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group="alchemy_nb.resources"):
            try:
                ep.load()
            except Exception:
                continue


kind_registry = _KindRegistry()


class Resource(_Referable, Displayed, Generic[P, O]):
    """A declared resource. Construct it inside a program; read its outputs as refs.

    ``File("greeting", path="out/hello.txt", content="hi")`` declares a file; its
    ``greeting.path`` is a reference to the output, usable as another resource's prop.
    """

    kind: ClassVar[str]
    props_model: ClassVar[type[Props]]
    outputs_model: ClassVar[type[Outputs]]
    provider: ClassVar[type[Provider[Any, Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            kind_registry.register(cls)

    def __init__(self, id: str, /, **props: Any) -> None:
        declaring = _declaring.get()
        where = f"{self.kind} {id!r}"
        if declaring is not None:
            stage = declaring.stage
            where = f"{stage.app.name}/{stage.name}/{id} ({self.kind}), phase {stage.phase}"
        if not isinstance(id, str) or not ID_PATTERN.match(id):
            raise ConfigError(
                f"invalid resource id {id!r}: an id is 1-128 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
                where=where,
                fix="rename the resource, e.g. 'my-file'",
            )
        if declaring is None:
            raise ConfigError(
                f"{self.kind} {id!r} was declared outside a program run",
                where=where,
                fix="declare resources inside a function registered with @app.program, "
                "then run app.plan/deploy (or the alchemy-nb CLI)",
            )
        self.id = id
        self.props: P = self._validate(props, where)  # type: ignore[assignment]
        self._outputs: O | None = None
        self._outputs_loader: Callable[[], O] | None = None
        declaring.add(self)

    @property
    def outputs(self) -> O | None:
        """The outputs once the resource is deployed (or read from state), else None."""
        if self._outputs is None and self._outputs_loader is not None:
            self._outputs = self._outputs_loader()
            self._outputs_loader = None
        return self._outputs

    @outputs.setter
    def outputs(self, value: O | None) -> None:
        self._outputs = value
        self._outputs_loader = None

    def load_outputs(self, loader: Callable[[], O]) -> None:
        """Set the outputs lazily: ``loader`` runs on first access."""
        self._outputs = None
        self._outputs_loader = loader

    @classmethod
    def _validate(cls, props: dict[str, Any], where: str) -> Props:
        try:
            return cls.props_model.model_validate(props)
        except ValidationError as exc:
            raise ConfigError(
                _explain(exc, cls.props_model, cls.kind),
                where=where,
                fix=_fix(exc, cls.props_model),
            ) from None

    def dependencies(self) -> tuple[Resource[Any, Any], ...]:
        """Resources this one's props point at (directly or through refs), each once."""
        deps: tuple[Resource[Any, Any], ...] | None = self.__dict__.get("_deps")
        if deps is None:  # props are frozen, so once is enough
            found: list[Resource[Any, Any]] = []
            _find_deps(self.props, found)
            deps = tuple({id(d): d for d in found}.values()) if found else ()
            self._deps = deps
        return deps

    def __getattr__(self, name: str) -> Ref:
        model = type(self).__dict__.get("outputs_model") or type(self).outputs_model
        if not name.startswith("_") and name in model.model_fields:
            return Ref(self, name)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}; its outputs are "
            f"{', '.join(model.model_fields)}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


_PLAIN = (str, int, float, bool, type(None))


def _find_deps(value: Any, found: list[Resource[Any, Any]]) -> None:
    """Append to ``found`` every resource ``value`` points at (directly or through refs)."""
    if isinstance(value, _PLAIN):
        return  # most props: nothing to look into
    if isinstance(value, Ref):
        found.append(value.resource)
    elif isinstance(value, Resource):
        found.append(value)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _find_deps(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _find_deps(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _find_deps(item, found)


def _explain(exc: ValidationError, model: type[Props], kind: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(props)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown prop {loc!r}")
        elif err["type"] == "missing":
            problems.append(f"missing required prop {loc!r}")
        else:
            problems.append(f"prop {loc!r}: {err['msg']}")
    return f"invalid props for {kind}: " + "; ".join(problems)


def _fix(exc: ValidationError, model: type[Props]) -> str:
    import difflib  # only for a misspelt prop

    known = list(model.model_fields)
    for err in exc.errors():
        if err["type"] == "extra_forbidden" and err["loc"]:
            close = difflib.get_close_matches(str(err["loc"][0]), known, n=1)
            if close:
                return f"did you mean {close[0]!r}? Known props: {', '.join(known)}"
    return f"known props: {', '.join(known)}"
