"""The `Secret` value: masked wherever it is shown, encrypted wherever it is stored."""

from __future__ import annotations

import os
from typing import Any

from .errors import SecretError

__all__ = ["Secret"]

MASK = "••••••"


class Secret:
    """A sensitive string. Its value never appears in a repr, a plan, a log or state plaintext.

    Example::

        token = alchemy_nb.Secret("s3cr3t")
        api_key = alchemy_nb.Secret.env("API_KEY")
        token.reveal()   # the plain value, for the provider that needs it
    """

    __slots__ = ("_value", "name")

    def __init__(self, value: str, *, name: str | None = None) -> None:
        if not isinstance(value, str):
            raise SecretError(
                f"a Secret holds a string, not {type(value).__name__}",
                fix="pass str(value) or read it with Secret.env(NAME)",
            )
        self._value = value
        self.name = name

    @classmethod
    def env(cls, name: str, default: str | None = None) -> Secret:
        """A secret read from the environment variable ``name``; an error when it is unset."""
        value = os.environ.get(name, default)
        if value is None:
            raise SecretError(
                f"environment variable {name} is not set",
                where="Secret.env",
                fix=f"export {name}=... before running, or pass default=",
            )
        return cls(value, name=name)

    def reveal(self) -> str:
        """The plain value. Only providers should call this."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name})" if self.name else f"Secret({MASK})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("alchemy-nb-secret", self._value))

    def __reduce__(self) -> Any:
        raise SecretError(
            "a Secret cannot be pickled",
            fix="pass the secret by environment variable instead",
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": f"<code>{self!r}</code>"}

    # pydantic: accept Secret instances as they are; serialize masked unless the
    # engine's serialization context says how (seal for state, mac for digests).
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        from .engine._resource import serializer

        return core_schema.is_instance_schema(cls, serialization=serializer(cls, repr))
