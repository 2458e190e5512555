"""Every error alchemy-nb raises, in one tree.

    AlchemyError                 the root: catch this to catch everything we raise
    ├── ConfigError              bad input: an invalid id or prop, a broken program file
    │   ├── ProgramError         the user's program raised while it ran
    │   └── ParameterError       a runbook parameter is missing, misspelt or mistyped
    ├── SecretError              a missing or wrong password, an unset secret variable
    ├── StateError               the state store cannot be read or written
    │   └── StateCorruptError    a damaged record; names the file and the line
    ├── LockError                the stage is locked by another writer
    ├── ProviderError            a provider call (create/update/delete) failed
    ├── PlanError                a saved plan no longer matches the program or the state
    ├── DeployError              an `up` or `destroy` finished with failed resources
    ├── GateError                a promotion or approval is refused; lists the unmet conditions
    ├── PolicyError              a policy denies, or a policy file is malformed (file and line)
    ├── LedgerError              the audit ledger is damaged or fails verification
    └── RunbookFailed            a runbook's action ran and did not succeed

Each message says what failed, where (the resource's full name, the stage and the
phase) and how to fix it. Errors from outside libraries are translated once, at the
boundary where they happen (``raise ProviderError(...) from exc``).

Example::

    try:
        await app.deploy("prod")
    except alchemy_nb.errors.LockError as exc:
        print(exc.holder)
"""

from __future__ import annotations

from ._repr import Displayed

TYPE_CHECKING = False  # `import typing` would cost every command milliseconds
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AlchemyError",
    "ConfigError",
    "DeployError",
    "GateError",
    "LedgerError",
    "LockError",
    "ParameterError",
    "PlanError",
    "PolicyError",
    "ProgramError",
    "ProviderError",
    "RunbookFailed",
    "SecretError",
    "StateCorruptError",
    "StateError",
]


class AlchemyError(Exception, Displayed):
    """The root of every error alchemy-nb raises.

    ``what`` says what failed, ``where`` where (resource full name, stage, phase,
    file), and ``fix`` how to fix it. ``str(error)`` joins them into one paragraph.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.where:
            parts.append(f"Where: {self.where}.")
        if self.fix:
            parts.append(f"Fix: {self.fix.rstrip('.')}.")
        return " ".join(parts)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # IPython prints exceptions with its own printer unless the class has this
        printer.text(str(self._repr_mimebundle_().get("text/plain", "")))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description, as ``--json`` prints it."""
        return {
            "type": type(self).__name__,
            "message": str(self),
            "what": self.what,
            "where": self.where,
            "fix": self.fix,
        }


class ConfigError(AlchemyError):
    """Bad input: an invalid id or prop, a duplicate id, a missing or broken program."""

    exit_code = 2


class ProgramError(ConfigError):
    """The user's program raised while it was run; ``__cause__`` holds the original."""

    exit_code = 1


class SecretError(AlchemyError):
    """A secret cannot be used: no password, a wrong password, an unset variable."""


class StateError(AlchemyError):
    """The state store cannot be read or written."""


class StateCorruptError(StateError):
    """A state record is damaged. The message names the file and, for journals, the line."""


class LockError(AlchemyError):
    """Another writer holds the stage lock. ``holder`` describes it."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        holder: dict[str, Any] | None = None,
    ) -> None:
        self.holder = holder or {}
        super().__init__(what, where=where, fix=fix)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["holder"] = self.holder
        return data


class ProviderError(AlchemyError):
    """A provider call failed for one resource."""


class PlanError(AlchemyError):
    """A saved plan cannot be applied: the program or the state changed since."""


class DeployError(AlchemyError):
    """A run finished with failed resources. ``failures`` maps full name to error."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        failures: dict[str, BaseException] | None = None,
        result: Any = None,
    ) -> None:
        self.failures = failures or {}
        self.result = result
        super().__init__(what, where=where, fix=fix)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["failures"] = {name: str(exc) for name, exc in self.failures.items()}
        return data


class GateError(AlchemyError):
    """A gate, approval, promotion or rollback is refused. ``unmet`` lists why, one each."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        unmet: list[str] | None = None,
    ) -> None:
        self.unmet = list(unmet or [])
        super().__init__(what, where=where, fix=fix)

    def _message(self) -> str:
        lines = [super()._message()]
        lines += [f"  - {condition}" for condition in self.unmet]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["unmet"] = self.unmet
        return data


class PolicyError(AlchemyError):
    """A mandatory policy denies, or a policy file cannot be read (names file and line)."""


class LedgerError(AlchemyError):
    """The ledger cannot be read or appended, or its hash chain does not verify."""


class ParameterError(ConfigError):
    """A runbook parameter is missing, unknown (misspelt) or of the wrong type."""

    exit_code = 2


class RunbookFailed(AlchemyError):
    """A runbook's action ran but did not succeed (e.g. an unhealthy release, rolled back)."""
