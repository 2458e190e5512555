"""Policies: who may approve, promote or roll back (Cedar), and checks on plans (Rego).

Policy files live in the app's folder, beside ``alchemy_run.py``::

    policies/
        approvals.cedar          # authorization, in Cedar
        model.cedarschema        # optional: validates the .cedar files (one schema file)
        no_d1_delete.rego        # a check on plans, in Rego (OPA's language)
        no_d1_delete_test.rego   # ignored: OPA's convention for policy unit tests

:func:`load_policies` reads and validates every file once; a malformed file is a
:class:`~alchemy_nb.errors.PolicyError` that names the file, the line and the column.
An app without policy files is not checked: everything is allowed. ``cedarpy`` and
``regopy`` are imported only when such files exist (``pip install 'alchemy-nb[policy]'``).

Authorization (Cedar)
---------------------

:meth:`Policies.authorize` asks Cedar one question: may ``actor`` do ``action`` to a stage
for a release? The request is built from this entity model:

- principal ``User::"<actor>"``, a member (Cedar ``in``) of ``Team::"<team>"`` for every
  team that lists the actor in ``teams``;
- action ``Action::"approve"``, ``"reject"``, ``"promote"``, ``"rollback"`` or ``"hold"``;
- resource ``Stage::"<stage>"`` with the attribute ``name`` (the stage name);
- context ``release_digest`` (the release's digest) and ``release_author`` (the entity
  ``User::"<author>"``, with its teams too, so ``context.release_author in Team::"x"``
  works).

As a Cedar schema (:data:`CEDAR_SCHEMA`; save it as ``policies/model.cedarschema`` to have
every policy type-checked when it is loaded)::

    entity Team;
    entity User in [Team];
    entity Stage { name: String };
    action approve, reject, promote, rollback, hold appliesTo {
      principal: User,
      resource: Stage,
      context: { release_digest: String, release_author: User },
    };

A complete policy file, ``policies/approvals.cedar`` — only prod reviewers approve prod,
anyone approves other stages, and nobody approves their own release::

    @id("prod-approvers")
    permit (principal in Team::"prod-reviewers", action == Action::"approve",
            resource == Stage::"prod");

    @id("approve-other-stages")
    permit (principal, action == Action::"approve", resource)
    unless { resource.name == "prod" };

    @id("no-self-approval")
    forbid (principal, action == Action::"approve", resource)
    when { context.release_author == principal };

    permit (principal, action in [Action::"reject", Action::"promote",
                                  Action::"rollback", Action::"hold"], resource);

Cedar denies by default: once any ``.cedar`` file exists, an action that no policy
permits is denied, and a ``forbid`` always wins over a ``permit``. A :class:`Decision`
names the policies that decided it by their ``@id`` annotation, or by
``file:line`` for a policy without one (the last one above is
``policies/approvals.cedar:13``). A policy that fails while it is evaluated (say,
it reads an attribute that does not exist) is skipped, as Cedar specifies; the decision
lists it under ``errors``.

Plan checks (Rego)
------------------

:meth:`Policies.check_plan` evaluates every ``.rego`` module against
``input = {"plan": <Plan.to_json()>, "stage": "<stage>"}``. Each module is
``package alchemy_nb.<name>`` in Rego v1 syntax and defines a set ``deny`` of messages;
a comment in its first lines sets its enforcement, ``advisory`` (the default: shown,
recorded, not blocking) or ``mandatory`` (blocking). ``policies/no_d1_delete.rego``::

    package alchemy_nb.no_d1_delete

    # enforcement: mandatory

    deny contains msg if {
      input.stage == "prod"
      some change in input.plan.changes
      change.kind == "cloudflare::D1Database"
      change.action in {"delete", "replace"}
      msg := sprintf("the plan would %s the D1 database %s", [change.action, change.id])
    }

Each module is evaluated on its own (a module cannot import another). A module that fails
while checking a plan is a :class:`~alchemy_nb.errors.PolicyError`, whatever its
enforcement: a broken check never passes silently.

Example::

    policies = load_policies(Path("."))
    decision = policies.authorize(
        actor="bob", action="approve", stage="prod", release=release.digest,
        release_author="alice", teams={"prod-reviewers": ["bob", "carol"]},
    )
    if not decision.allowed:
        print(decision.reasons)
    decisions = policies.check_plan(plan.to_json(), stage="prod")
    if blocking := mandatory_denials(decisions):
        ...  # refuse the deploy and list blocking[i].denials
"""

from __future__ import annotations

import enum
import html
import json
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args

from ..errors import ConfigError, PolicyError

__all__ = [
    "CEDAR_SCHEMA",
    "POLICY_ACTIONS",
    "Decision",
    "Enforcement",
    "PlanDecision",
    "Policies",
    "PolicyAction",
    "load_policies",
    "mandatory_denials",
]

PolicyAction = Literal["approve", "reject", "promote", "rollback", "hold"]
"""What an actor asks to do to a stage; Cedar sees it as ``Action::"<name>"``."""

POLICY_ACTIONS: tuple[str, ...] = get_args(PolicyAction)
"""Every :data:`PolicyAction`, in a stable order."""

CEDAR_SCHEMA = """\
entity Team;
entity User in [Team];
entity Stage { name: String };
action approve, reject, promote, rollback, hold appliesTo {
  principal: User,
  resource: Stage,
  context: { release_digest: String, release_author: User },
};
"""
"""The Cedar schema of the entities and context :meth:`Policies.authorize` builds."""

POLICY_DIR = "policies"
INSTALL_FIX = "pip install 'alchemy-nb[policy]'"
CEDAR_DOCS = "Cedar syntax: https://docs.cedarpolicy.com/policies/syntax-policy.html"
REGO_DOCS = "Rego syntax: https://www.openpolicyagent.org/docs/policy-language"


class Enforcement(enum.StrEnum):
    """How a Rego plan check counts: ``advisory`` denials are shown and recorded,
    ``mandatory`` denials block the deploy or promotion."""

    ADVISORY = "advisory"
    MANDATORY = "mandatory"


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """Cedar's answer to "may ``actor`` do ``action`` to ``stage`` for ``release``?".

    ``policy_ids`` are the policies that decided (``@id`` annotations, else
    ``file:line``): the permits when allowed, the forbids when denied by one, none when
    nothing permitted it. ``reasons`` say the same for people; ``errors`` list policies
    Cedar skipped because they failed to evaluate.

    Example::

        decision = policies.authorize(actor="bob", action="approve", stage="prod",
                                      release=digest, release_author="alice", teams=teams)
        decision.allowed        # True
        decision.policy_ids     # ("prod-approvers",)
    """

    allowed: bool
    actor: str
    action: str
    stage: str
    release: str = ""
    policy_ids: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record, as the ledger and ``--json`` keep it."""
        return {
            "allowed": self.allowed,
            "actor": self.actor,
            "action": self.action,
            "stage": self.stage,
            "release": self.release,
            "policy_ids": list(self.policy_ids),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        """Read back a record written by :meth:`to_json`."""
        return cls(
            allowed=bool(data["allowed"]),
            actor=str(data["actor"]),
            action=str(data["action"]),
            stage=str(data["stage"]),
            release=str(data.get("release", "")),
            policy_ids=tuple(data.get("policy_ids", ())),
            reasons=tuple(data.get("reasons", ())),
            errors=tuple(data.get("errors", ())),
        )

    @property
    def summary(self) -> str:
        """One line: ``allowed: bob may approve stage prod``."""
        verb = "may" if self.allowed else "may not"
        state = "allowed" if self.allowed else "denied"
        return f"{state}: {self.actor} {verb} {self.action} stage {self.stage}"

    def render_text(self) -> str:
        """The decision as it reads in a terminal or a CI log."""
        lines = [self.summary]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines += [f"  ! {error}" for error in self.errors]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        items = [html.escape(r) for r in self.reasons] + [
            f"<em>{html.escape(e)}</em>" for e in self.errors
        ]
        body = "".join(f"<li>{item}</li>" for item in items)
        return {
            "text/plain": self.render_text(),
            "text/html": f"<div><strong>{html.escape(self.summary)}</strong><ul>{body}</ul></div>",
        }


@dataclass(frozen=True)
class PlanDecision:
    """What one Rego module said about a plan: its messages in ``denials``, if any.

    Example::

        for decision in policies.check_plan(plan.to_json(), stage="prod"):
            print(decision)   # policy no_d1_delete (mandatory): denied ...
    """

    policy: str
    """The module's name: ``no_d1_delete`` for ``package alchemy_nb.no_d1_delete``."""
    file: str
    enforcement: Enforcement
    stage: str
    denials: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when the module denied nothing."""
        return not self.denials

    @property
    def blocking(self) -> bool:
        """True when a mandatory module denied something."""
        return bool(self.denials) and self.enforcement is Enforcement.MANDATORY

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record, as the ledger and plan displays keep it."""
        return {
            "policy": self.policy,
            "file": self.file,
            "enforcement": self.enforcement.value,
            "stage": self.stage,
            "passed": self.passed,
            "denials": list(self.denials),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanDecision:
        """Read back a record written by :meth:`to_json`."""
        return cls(
            policy=str(data["policy"]),
            file=str(data["file"]),
            enforcement=Enforcement(data["enforcement"]),
            stage=str(data["stage"]),
            denials=tuple(data.get("denials", ())),
        )

    @property
    def summary(self) -> str:
        """One line: ``policy no_d1_delete (mandatory): denied``."""
        state = "passed" if self.passed else "denied"
        return f"policy {self.policy} ({self.enforcement.value}): {state}"

    def render_text(self) -> str:
        """The decision as it reads in a terminal or a CI log."""
        return "\n".join([self.summary, *(f"  - {message}" for message in self.denials)])

    def __str__(self) -> str:
        return self.render_text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        body = "".join(f"<li>{html.escape(m)}</li>" for m in self.denials)
        return {
            "text/plain": self.render_text(),
            "text/html": (
                f"<div><strong>{html.escape(self.summary)}</strong>"
                f" <code>{html.escape(self.file)}</code><ul>{body}</ul></div>"
            ),
        }


def mandatory_denials(decisions: Iterable[PlanDecision]) -> list[PlanDecision]:
    """The decisions that block: mandatory modules that denied something.

    Example::

        if blocking := mandatory_denials(policies.check_plan(plan.to_json(), stage="prod")):
            raise PolicyError("; ".join(m for d in blocking for m in d.denials))
    """
    return [decision for decision in decisions if decision.blocking]


# --------------------------------------------------------------------------- loading


def load_policies(app_root: str | Path) -> Policies:
    """Read and validate the app's ``policies/`` folder once.

    Reads ``policies/*.cedar``, at most one ``policies/*.cedarschema`` and
    ``policies/*.rego`` (except ``*_test.rego``). No folder or no files: a
    :class:`Policies` that allows everything and checks nothing.

    Raises :class:`~alchemy_nb.errors.PolicyError` for a malformed file (with its file,
    line and column) or when ``cedarpy`` / ``regopy`` is not installed.

    Example::

        policies = load_policies(Path("."))
        policies.files   # ("policies/approvals.cedar", "policies/no_d1_delete.rego")
    """
    root = Path(app_root)
    folder = root / POLICY_DIR
    if not folder.is_dir():
        return Policies()
    cedar_files = sorted(folder.glob("*.cedar"))
    schema_files = sorted(folder.glob("*.cedarschema"))
    rego_files = sorted(p for p in folder.glob("*.rego") if not p.name.endswith("_test.rego"))

    cedar: _CedarPolicies | None = None
    if cedar_files or schema_files:
        cedar = _load_cedar(root, cedar_files, schema_files)
    rego: list[_RegoModule] = []
    if rego_files:
        rego_shared = _require("regopy", rego_files[0], root)
        rego = [_load_rego_module(rego_shared, root, path) for path in rego_files]
        _refuse_duplicate_packages(rego)
    files = tuple(_label(root, p) for p in [*cedar_files, *schema_files, *rego_files])
    return Policies(cedar=cedar, rego=tuple(rego), files=files)


class Policies:
    """An app's policies, read and validated by :func:`load_policies`.

    ``Policies()`` (no files) allows every action and checks no plan.

    Example::

        policies = load_policies(Path("."))
        policies.authorize(actor="bob", action="promote", stage="prod", release=digest,
                           release_author="alice", teams={}).allowed
        policies.check_plan(plan.to_json(), stage="prod")
    """

    def __init__(
        self,
        *,
        cedar: _CedarPolicies | None = None,
        rego: tuple[_RegoModule, ...] = (),
        files: tuple[str, ...] = (),
    ) -> None:
        self._cedar = cedar if cedar is not None and cedar.enabled else None
        self._rego = rego
        self.files = files
        """The policy files read, relative to the app folder."""

    @property
    def cedar_policy_ids(self) -> tuple[str, ...]:
        """The id of every Cedar policy (``@id``, else ``file:line``), in file order."""
        return tuple(p.label for p in self._cedar.policies.values()) if self._cedar else ()

    @property
    def rego_policy_names(self) -> tuple[str, ...]:
        """The name of every Rego module, in file order."""
        return tuple(module.name for module in self._rego)

    def authorize(
        self,
        *,
        actor: str,
        action: PolicyAction,
        stage: str,
        release: str,
        release_author: str,
        teams: Mapping[str, Sequence[str]],
    ) -> Decision:
        """May ``actor`` do ``action`` to ``stage`` for ``release``? Cedar decides.

        ``teams`` maps a team name to its members; ``release`` is the release digest.
        Without ``.cedar`` files every request is allowed. Raises
        :class:`~alchemy_nb.errors.ConfigError` for an empty actor or stage or an unknown
        action, and :class:`~alchemy_nb.errors.PolicyError` when the request does not fit
        the app's ``.cedarschema``.

        Example::

            policies.authorize(actor="bob", action="approve", stage="prod",
                               release="sha256:…", release_author="alice",
                               teams={"prod-reviewers": ["bob"]})
        """
        if not actor.strip():
            raise ConfigError(
                "the actor name is empty",
                fix="pass --as NAME, or set ALCHEMY_ACTOR",
            )
        if action not in POLICY_ACTIONS:
            raise ConfigError(
                f"unknown policy action {action!r}",
                fix=f"use one of {', '.join(POLICY_ACTIONS)}",
            )
        if not stage:
            raise ConfigError("the stage name is empty", fix="name the stage")
        if self._cedar is None:
            return Decision(
                allowed=True,
                actor=actor,
                action=action,
                stage=stage,
                release=release,
                reasons=("no Cedar policies: every action is allowed",),
            )
        return self._cedar.authorize(
            actor=actor,
            action=action,
            stage=stage,
            release=release,
            release_author=release_author,
            teams=teams,
        )

    def check_plan(self, plan_json: Mapping[str, Any], *, stage: str) -> list[PlanDecision]:
        """Run every Rego module on ``{"plan": plan_json, "stage": stage}``.

        Returns one :class:`PlanDecision` per module, in file order (none without
        ``.rego`` files). Raises :class:`~alchemy_nb.errors.PolicyError` when a module
        fails while it runs.

        Example::

            decisions = policies.check_plan(plan.to_json(), stage="prod")
            blocking = mandatory_denials(decisions)
        """
        if not self._rego:
            return []
        input_json = json.dumps({"plan": plan_json, "stage": stage}, ensure_ascii=False)
        return [
            PlanDecision(
                policy=module.name,
                file=module.file,
                enforcement=module.enforcement,
                stage=stage,
                denials=module.evaluate(input_json, stage=stage),
            )
            for module in self._rego
        ]

    def render_text(self) -> str:
        """One line per policy file: what is enforced."""
        if not self.files:
            return "no policies: every action is allowed, plans are not checked"
        lines = ["policies:"]
        if self._cedar:
            lines.append(f"  authorization (Cedar): {', '.join(self.cedar_policy_ids) or '-'}")
        for module in self._rego:
            lines.append(f"  plan check {module.name} ({module.enforcement.value}): {module.file}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Policies(cedar={len(self.cedar_policy_ids)} policies, "
            f"rego={list(self.rego_policy_names)})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {
            "text/plain": self.render_text(),
            "text/html": f"<pre>{html.escape(self.render_text())}</pre>",
        }


# --------------------------------------------------------------------------- helpers


def _label(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _require(package: str, path: Path, root: Path) -> ModuleType:
    """Import ``cedarpy`` or ``regopy`` (``regopy.rego_shared``) on first need."""
    try:
        if package == "regopy":
            import regopy.rego_shared

            module: ModuleType = regopy.rego_shared
        else:
            import cedarpy

            module = cedarpy
    except ImportError as exc:
        raise PolicyError(
            f"the policy file {_label(root, path)} needs the `{package}` package, "
            "which is not installed",
            where=_label(root, path),
            fix=INSTALL_FIX,
        ) from exc
    return module


def _read(root: Path, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"the policy file {_label(root, path)} cannot be read ({exc})",
            where=_label(root, path),
            fix="make it a readable UTF-8 text file",
        ) from None


def _position(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _malformed(
    root: Path, path: Path, source: str, offset: int | None, message: str, docs: str
) -> PolicyError:
    file = _label(root, path)
    message = " ".join(message.split())
    if offset is None:
        return PolicyError(f"the policy file {file} is malformed: {message}", where=file, fix=docs)
    line, column = _position(source, offset)
    lines = source.splitlines()
    text = lines[line - 1].strip() if line <= len(lines) else ""
    near = f" (near `{text}`)" if text else ""
    return PolicyError(
        f"the policy file {file} is malformed at line {line}, column {column}: {message}{near}",
        where=f"{file}:{line}:{column}",
        fix=f"correct line {line} ({docs})",
    )


# --------------------------------------------------------------------------- Cedar

_CEDAR_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>//[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<number>[0-9]+)
    | (?P<op>==|!=|<=|>=|&&|\|\||::)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str


def _cedar_tokens(source: str) -> list[_Token]:
    """Cedar's tokens, enough to find where a policy starts and where an error points."""
    return [
        _Token(m.start(), m.end(), m.group())
        for m in _CEDAR_TOKEN.finditer(source)
        if m.lastgroup not in ("space", "comment")
    ]


def _cedar_statements(tokens: list[_Token]) -> list[list[_Token]]:
    """Tokens grouped by policy: Cedar ends every policy with ``;`` (and uses it nowhere
    else outside strings). A trailing group without ``;`` is kept: it is an error."""
    statements: list[list[_Token]] = []
    current: list[_Token] = []
    for token in tokens:
        current.append(token)
        if token.text == ";":
            statements.append(current)
            current = []
    if current:
        statements.append(current)
    return statements


_UNEXPECTED = re.compile(r"unexpected token `(.*)`")
_SCHEMA_PREFIX = "error parsing schema: "


def _locate_cedar_error(
    source: str, tokens: list[_Token], message: str, parse: Callable[[str], object]
) -> int | None:
    """The offset a Cedar parse error points at. cedarpy reports no positions, so parse
    ever longer token prefixes: the first prefix that fails with the same message ends
    at the culprit (earlier prefixes fail only with "unexpected end of input")."""
    if not tokens:
        return None
    core = message.removeprefix(_SCHEMA_PREFIX)
    if core == "unexpected end of input":
        return tokens[-1].end
    unexpected = _UNEXPECTED.fullmatch(core)
    if unexpected or core == "invalid token":
        for i in range(1, len(tokens) + 1):
            try:
                parse(source[tokens[0].start : tokens[i - 1].end])
            except ValueError as exc:
                if str(exc) != message:
                    continue
                if unexpected:
                    culprit = unexpected.group(1)
                    for token in reversed(tokens[:i]):
                        if token.text == culprit:
                            return token.start
                return tokens[i - 1].start
        return tokens[0].start
    # a semantic error ("invalid variable: foo", "failed to resolve type: Strin"):
    # point at the first token the message names
    names = re.findall(r"`([^`]+)`", core) + re.findall(r":\s*(\S+)\s*$", core)
    for name in names:
        for token in tokens:
            if token.text == name.lstrip("@"):
                return token.start
    return tokens[0].start


@dataclass(frozen=True)
class _CedarPolicy:
    key: str
    """The id Cedar knows it by (``policyN``, numbered across all files)."""
    label: str
    """``@id`` annotation, else ``file:line``."""
    file: str
    line: int | None

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return where if self.label == where else f"`{self.label}` ({where})"


class _CedarPolicies:
    """The parsed policy set (one handle, reused), the optional schema, and a map from
    Cedar's policy ids back to files and lines."""

    def __init__(
        self,
        cedarpy: ModuleType,
        policy_set: Any,
        policies: dict[str, _CedarPolicy],
        schema: Any,
        schema_file: str | None,
        enabled: bool,
    ) -> None:
        self._cedarpy = cedarpy
        self._policy_set = policy_set
        self.policies = policies
        self._schema = schema
        self._schema_file = schema_file
        self.enabled = enabled

    def authorize(
        self,
        *,
        actor: str,
        action: str,
        stage: str,
        release: str,
        release_author: str,
        teams: Mapping[str, Sequence[str]],
    ) -> Decision:
        def user(name: str) -> dict[str, Any]:
            parents = sorted(team for team, members in teams.items() if name in members)
            return {
                "uid": {"type": "User", "id": name},
                "attrs": {},
                "parents": [{"type": "Team", "id": team} for team in parents],
            }

        entities = [user(actor)]
        if release_author and release_author != actor:
            entities.append(user(release_author))
        entities += [
            {"uid": {"type": "Team", "id": team}, "attrs": {}, "parents": []}
            for team in sorted(teams)
        ]
        entities.append(
            {"uid": {"type": "Stage", "id": stage}, "attrs": {"name": stage}, "parents": []}
        )
        request = {
            "principal": {"type": "User", "id": actor},
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Stage", "id": stage},
            "context": {
                "release_digest": release,
                "release_author": {"__entity": {"type": "User", "id": release_author}},
            },
        }
        result = self._cedarpy.is_authorized(
            request, self._policy_set, entities, schema=self._schema
        )
        decision = result.decision.value
        diagnostics = result.diagnostics
        if decision not in ("Allow", "Deny"):
            problems = "; ".join(_short_cedar_error(e) for e in diagnostics.errors)
            raise PolicyError(
                f"Cedar could not decide whether {actor} may {action} stage {stage}: {problems}",
                where=self._schema_file or POLICY_DIR,
                fix="make the schema describe the entities alchemy-nb sends "
                "(alchemy_nb.promotion.CEDAR_SCHEMA)"
                if self._schema_file
                else "report this as an alchemy-nb bug",
            )
        deciders = [self._policy(key) for key in diagnostics.reasons]
        errors = tuple(self._evaluation_error(e) for e in diagnostics.errors)
        if decision == "Allow":
            reasons = tuple(f"permitted by {p.describe()}" for p in deciders)
        elif deciders:
            reasons = tuple(f"forbidden by {p.describe()}" for p in deciders)
        else:
            reasons = (f"no policy permits {actor} to {action} stage {stage}",)
        return Decision(
            allowed=decision == "Allow",
            actor=actor,
            action=action,
            stage=stage,
            release=release,
            policy_ids=tuple(p.label for p in deciders),
            reasons=reasons,
            errors=errors,
        )

    def _policy(self, key: str) -> _CedarPolicy:
        return self.policies.get(key) or _CedarPolicy(key, key, POLICY_DIR, None)

    def _evaluation_error(self, error: str) -> str:
        match = re.match(r"error while evaluating policy `([^`]+)`: (.*)", error, re.DOTALL)
        if not match:
            return _short_cedar_error(error)
        policy = self._policy(match.group(1))
        return f"{policy.describe()} was skipped: {' '.join(match.group(2).split())}"


def _short_cedar_error(error: str) -> str:
    # entity errors quote the whole entity JSON first; keep only the complaint
    error = re.sub(r"(?s)^failed to parse entities from:.*\]: ", "", error)
    return " ".join(error.split())


def _load_cedar(root: Path, cedar_files: list[Path], schema_files: list[Path]) -> _CedarPolicies:
    cedarpy = _require("cedarpy", (cedar_files or schema_files)[0], root)
    if len(schema_files) > 1:
        names = ", ".join(_label(root, p) for p in schema_files)
        raise PolicyError(
            f"more than one Cedar schema file: {names}",
            where=POLICY_DIR,
            fix="keep the whole schema in one .cedarschema file",
        )
    schema: Any = None
    schema_file: str | None = None
    if schema_files:
        path = schema_files[0]
        schema_file = _label(root, path)
        text = _read(root, path)
        try:
            schema = cedarpy.Schema.from_str(text)
        except ValueError as exc:
            offset = _locate_cedar_error(
                text, _cedar_tokens(text), str(exc), cedarpy.Schema.from_str
            )
            raise _malformed(root, path, text, offset, str(exc), CEDAR_DOCS) from None

    static: dict[str, Any] = {}
    policies: dict[str, _CedarPolicy] = {}
    by_label: dict[str, _CedarPolicy] = {}
    for path in cedar_files:
        file = _label(root, path)
        text = _read(root, path)
        statements = _cedar_statements(_cedar_tokens(text))
        est = _parse_cedar_file(cedarpy, root, path, text, statements)
        starts = [s[0].start for s in statements]
        if len(starts) != len(est["staticPolicies"]) + len(est["templates"]):
            starts = []  # our statement split disagrees with Cedar's: give no lines
        if est["templates"]:
            first = min(_policy_index(k) for k in est["templates"])
            offset = starts[first] if first < len(starts) else None
            raise _malformed(
                root,
                path,
                text,
                offset,
                "policy templates (`?principal`, `?resource`) are not supported",
                CEDAR_DOCS,
            )
        if schema is not None:
            _validate_cedar_file(cedarpy, root, path, text, statements, starts, schema)
        for cedar_id, body in sorted(est["staticPolicies"].items(), key=_policy_sort_key):
            index = _policy_index(cedar_id)
            line = _position(text, starts[index])[0] if index < len(starts) else None
            annotated = body.get("annotations", {}).get("id")
            label = annotated if annotated else (f"{file}:{line}" if line else f"{file}#{index}")
            if label in by_label and not annotated:
                column = _position(text, starts[index])[1] if index < len(starts) else 0
                label = f"{label}:{column}"
            if label in by_label:
                other = by_label[label]
                raise PolicyError(
                    f'two Cedar policies have the id "{label}": {other.describe()} '
                    f"and {file}:{line}",
                    where=f"{file}:{line}" if line else file,
                    fix="give each policy its own @id",
                )
            key = f"policy{len(static)}"
            static[key] = body
            policy = _CedarPolicy(key, label, file, line)
            policies[key] = by_label[label] = policy

    est_all = {"staticPolicies": static, "templates": {}, "templateLinks": []}
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(est_all))
    except ValueError as exc:  # pragma: no cover - each file parsed on its own above
        raise PolicyError(
            f"the Cedar policies cannot be combined: {exc}", where=POLICY_DIR, fix=CEDAR_DOCS
        ) from None
    return _CedarPolicies(
        cedarpy, policy_set, policies, schema, schema_file, enabled=bool(cedar_files)
    )


def _policy_index(cedar_id: str) -> int:
    match = re.fullmatch(r"policy(\d+)", cedar_id)
    return int(match.group(1)) if match else 1 << 30


def _policy_sort_key(item: tuple[str, Any]) -> int:
    return _policy_index(item[0])


def _parse_cedar_file(
    cedarpy: ModuleType, root: Path, path: Path, text: str, statements: list[list[_Token]]
) -> dict[str, Any]:
    try:
        est: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        message = str(exc)
        offset: int | None = None
        # find the first policy that fails on its own, then the token inside it
        for statement in statements:
            chunk = text[statement[0].start : statement[-1].end]
            try:
                cedarpy.policies_to_json_str(chunk)
            except ValueError as inner:
                base = statement[0].start
                tokens = [_Token(t.start - base, t.end - base, t.text) for t in statement]
                local = _locate_cedar_error(chunk, tokens, str(inner), cedarpy.policies_to_json_str)
                offset = base + (local or 0)
                message = str(inner)
                if message == "unexpected end of input" and statement[-1].text != ";":
                    message += " (a policy must end with `;`)"
                break
        raise _malformed(root, path, text, offset, message, CEDAR_DOCS) from None
    est.setdefault("staticPolicies", {})
    est.setdefault("templates", {})
    return est


def _validate_cedar_file(
    cedarpy: ModuleType,
    root: Path,
    path: Path,
    text: str,
    statements: list[list[_Token]],
    starts: list[int],
    schema: Any,
) -> None:
    result = cedarpy.validate_policies(text, schema)
    if result.validation_passed:
        return
    error = result.errors[0]
    index = _policy_index(error.policy_id)
    offset: int | None = None
    message = error.error
    if index < len(starts):
        statement = statements[index]
        offset = statement[0].start
        names = [n for n in re.findall(r"`([^`]+)`", message) if n != error.policy_id]
        hits = [t for name in names for t in statement if t.text == name]
        if hits:
            offset = hits[0].start
        message = re.sub(r"^for policy `[^`]+`, ", "", message)
    more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
    raise _malformed(
        root,
        path,
        text,
        offset,
        f"does not match the schema: {message}{more}",
        CEDAR_DOCS,
    )


# --------------------------------------------------------------------------- Rego

_PACKAGE = re.compile(r"package\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$")
_ENFORCEMENT = re.compile(r"#\s*enforcement\s*:\s*(\S*)", re.IGNORECASE)
_EMPTY_PLAN = {
    "format": "alchemy-nb/plan@1",
    "app": "",
    "stage": "",
    "phase": "plan",
    "digest": "",
    "base": "",
    "counts": {"create": 0, "update": 0, "replace": 0, "delete": 0, "noop": 0},
    "changes": [],
}


class _RegoModule:
    """One ``.rego`` module in its own rego-cpp interpreter.

    Talks to ``regopy.rego_shared`` (regopy's ctypes layer) rather than
    ``regopy.Interpreter``: ``Interpreter.query`` raises a bare ``JSONDecodeError`` when a
    module fails at run time, losing the message that we want to show.
    """

    def __init__(
        self,
        rego: ModuleType,
        *,
        name: str,
        package: str,
        file: str,
        enforcement: Enforcement,
        source: str,
    ) -> None:
        self.name = name
        self.package = package
        self.file = file
        self.enforcement = enforcement
        self._rego = rego
        self._source = source
        self._lock = threading.Lock()
        self._impl = rego.rego_new()
        weakref.finalize(self, rego.rego_free, self._impl)
        rego.rego_set_log_level(self._impl, rego.LogLevel.NONE)  # no parse errors on stdout
        rego.rego_add_module(self._impl, file, source)

    def evaluate(self, input_json: str, *, stage: str) -> tuple[str, ...]:
        """The module's ``deny`` messages for this input, sorted."""
        ok, value, errors = self._query(input_json)
        if not ok:
            raise self.failure(errors, f"failed while checking the plan for stage {stage}")
        return self._messages(value)

    def failure(self, errors: list[str], what: str) -> PolicyError:
        """A module failed while it ran; rego-cpp gives no position, so point at the
        name the message ends with (``Function not found: nosuchfn``) when there is one."""
        message = "; ".join(errors)
        where = self.file
        name = re.search(r":\s*([A-Za-z_][\w.]*)\s*$", errors[0]) if errors else None
        if name:
            code = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), self._source)
            hit = re.search(rf"(?<![\w.]){re.escape(name.group(1))}(?![\w])", code)
            if hit:
                line, column = _position(self._source, hit.start())
                where = f"{self.file}:{line}:{column}"
                message += f" (line {line}, column {column})"
        return PolicyError(
            f"the Rego policy {self.file} {what}: {message}",
            where=where,
            fix=f"correct the module ({REGO_DOCS})",
        )

    def _messages(self, value: Any) -> tuple[str, ...]:
        if value is _UNDEFINED:
            raise PolicyError(
                f"the Rego policy {self.file} defines no `deny` rule in package {self.package}",
                where=self.file,
                fix="add `deny contains msg if { ... }`",
            )
        if not isinstance(value, list):
            kind = {dict: "an object", str: "a string", bool: "a boolean"}.get(
                type(value), "a number" if isinstance(value, int | float) else "null"
            )
            raise PolicyError(
                f"`deny` in the Rego policy {self.file} is {kind}, not a set of messages",
                where=self.file,
                fix='write `deny contains msg if { ...; msg := "why" }` (Rego v1)',
            )
        messages = {
            item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in value
        }
        return tuple(sorted(messages))

    def _query(self, input_json: str) -> tuple[bool, Any, list[str]]:
        rego = self._rego
        with self._lock:
            try:
                rego.rego_set_input_term(self._impl, input_json)
                output = rego.rego_query(self._impl, f"x := data.{self.package}.deny")
            except rego.RegoError as exc:
                return False, None, [m for _, m in _rego_errors(str(exc))] or [str(exc)]
            try:
                if not rego.rego_output_ok(output):
                    return False, None, _rego_node_errors(rego, rego.rego_output_node(output))
                text = str(rego.rego_output_string(output))
            finally:
                rego.rego_free_output(output)
        if text == "undefined":
            return True, _UNDEFINED, []
        try:
            result = json.loads(text)
        except ValueError:  # an error tree instead of a result
            return False, None, [m for _, m in _rego_errors(text)] or [text[:200]]
        if isinstance(result, list):
            result = result[0] if result else {}
        bindings = result.get("bindings", {}) if isinstance(result, dict) else {}
        return True, bindings.get("x", _UNDEFINED), []


_UNDEFINED = object()


def _rego_errors(text: str) -> list[tuple[int | None, str]]:
    """(offset, message) of every ``(error ...)`` in rego-cpp's error tree.

    The tree is an S-expression whose strings are length-prefixed (``8:bad.rego``) and
    whose locations follow as ``|offset|length``: ``(error 8:bad.rego|77|2
    (errormsg 27:Invalid assignment operator) ...)``. Offsets count bytes.
    """
    data = text.encode()
    head = re.compile(rb"\(([A-Za-z][\w-]*)")
    payload = re.compile(rb" ?(\d+):")
    location = re.compile(rb"\|(\d+)\|(\d+)")
    found: list[list[Any]] = []
    i = 0
    while i < len(data):
        match = head.match(data, i)
        if not match:
            i += 1
            continue
        name, i = match.group(1), match.end()
        value: bytes | None = None
        size = payload.match(data, i)
        if size:
            start = size.end()
            value, i = data[start : start + int(size.group(1))], start + int(size.group(1))
        offset: int | None = None
        where = location.match(data, i)
        if where:
            offset, i = int(where.group(1)), where.end()
        if name == b"error":
            found.append([offset if value is not None else None, None])
        elif name == b"errormsg" and found and found[-1][1] is None and value is not None:
            found[-1][1] = value.decode(errors="replace")
    return [(offset, message or "unknown error") for offset, message in found]


def _rego_node_errors(rego: ModuleType, node: Any) -> list[str]:
    """The messages of an error result, read from its node tree (depth-limited)."""
    kinds = rego.NodeKind
    messages: list[str] = []
    stack: list[tuple[Any, int]] = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            kind = rego.rego_node_type(current)
        except ValueError:
            continue
        if kind == kinds.ErrorMessage:
            messages.append(str(rego.rego_node_value(current)))
        elif kind != kinds.ErrorAst and depth < 8:
            size = int(rego.rego_node_size(current))
            stack.extend((rego.rego_node_get(current, i), depth + 1) for i in reversed(range(size)))
    return messages or ["unknown error"]


def _rego_header(root: Path, path: Path, source: str) -> tuple[str, Enforcement]:
    """The package and the enforcement, from the module's first lines (comments, blank
    lines, ``package`` and ``import``)."""
    package: str | None = None
    package_offset = 0
    enforcement = Enforcement.ADVISORY
    offset = 0
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        here, offset = offset, offset + len(line)
        if stripped.startswith("#"):
            match = _ENFORCEMENT.match(stripped)
            if match:
                value = match.group(1).lower()
                if value not in Enforcement.__members__.values():
                    raise _malformed(
                        root,
                        path,
                        source,
                        here + line.index("#"),
                        f"unknown enforcement {value!r}: use advisory or mandatory",
                        REGO_DOCS,
                    )
                enforcement = Enforcement(value)
            continue
        if not stripped or stripped.startswith("import "):
            continue
        if stripped.startswith("package") and package is None:
            match = _PACKAGE.match(stripped.split("#")[0].strip())
            if not match:
                raise _malformed(
                    root,
                    path,
                    source,
                    here,
                    "write the package as `package alchemy_nb.<name>`",
                    REGO_DOCS,
                )
            package, package_offset = match.group(1), here + (len(line) - len(line.lstrip()))
            continue
        break
    if package is None:
        raise _malformed(root, path, source, 0, "no `package alchemy_nb.<name>` line", REGO_DOCS)
    if not package.startswith("alchemy_nb."):
        raise _malformed(
            root,
            path,
            source,
            package_offset,
            f"the package is {package}; alchemy-nb reads `package alchemy_nb.<name>`",
            REGO_DOCS,
        )
    return package, enforcement


def _load_rego_module(rego: ModuleType, root: Path, path: Path) -> _RegoModule:
    source = _read(root, path)
    package, enforcement = _rego_header(root, path, source)
    file = _label(root, path)
    try:
        module = _RegoModule(
            rego,
            name=package.removeprefix("alchemy_nb."),
            package=package,
            file=file,
            enforcement=enforcement,
            source=source,
        )
    except rego.RegoError as exc:
        found = _rego_errors(str(exc)) or [(None, str(exc))]
        offset, message = found[0]
        if offset is not None:
            # rego-cpp counts bytes; we count characters
            offset = len(source.encode()[:offset].decode(errors="ignore"))
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise _malformed(root, path, source, offset, message + more, REGO_DOCS) from None
    # a first run on an empty plan finds what parsing does not: conflicts, a missing or
    # misshapen `deny`
    input_json = json.dumps({"plan": _EMPTY_PLAN, "stage": ""})
    ok, value, errors = module._query(input_json)
    if not ok:
        raise module.failure(errors, "is malformed")
    module._messages(value)
    return module


def _refuse_duplicate_packages(modules: list[_RegoModule]) -> None:
    seen: dict[str, str] = {}
    for module in modules:
        if module.package in seen:
            raise PolicyError(
                f"two Rego modules declare package {module.package}: "
                f"{seen[module.package]} and {module.file}",
                where=module.file,
                fix="give each module its own package name",
            )
        seen[module.package] = module.file
