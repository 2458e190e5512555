"""Structured results out of an executed notebook, without scrapbook.

Inside a runbook, :func:`publish` displays a value under the vendor mimetype
``application/vnd.alchemy-nb.result+json`` (plus a one-line ``text/plain``); after the
run, :func:`read_results` finds every published value in the saved notebook::

    publish("outcome", outcome.to_json())          # in the notebook
    read_results("out/prod-promote-....ipynb")      # {"outcome": {...}}

Values are JSON only, and a secret is refused: a :class:`~alchemy_nb.Secret`, or a string
holding the value of a secret-looking environment variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SecretError

__all__ = ["RESULT_MIMETYPE", "publish", "read_results", "secret_values"]

RESULT_MIMETYPE = "application/vnd.alchemy-nb.result+json"
"""The mimetype of a published result: ``{"name": ..., "data": ...}``."""

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
_MIN_SECRET = 4  # shorter values ("1", "on") would scrub ordinary text everywhere


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment variables whose names contain TOKEN, SECRET, PASSWORD or
    KEY (4 characters or longer), longest first.

    Example::

        secret_values({"API_TOKEN": "s3cr3t-value", "HOME": "/root"})  # ["s3cr3t-value"]
    """
    env = os.environ if environ is None else environ
    found = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET}
    return sorted(found, key=lambda v: (-len(v), v))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def publish(name: str, value: Any) -> None:
    """Display ``value`` as the runbook result ``name`` (JSON only; secrets refused).

    Example::

        publish("release", {"id": outcome.release, "healthy": outcome.healthy})
    """
    from .._secret import Secret

    if not isinstance(name, str) or not name:
        raise ConfigError("a published result needs a name", fix='publish("name", value)')

    def refuse_secrets(obj: Any) -> Any:
        if isinstance(obj, Secret):
            raise SecretError(
                f"result {name!r} holds a Secret; runbook results are never secret",
                fix="publish the fact, not the value (e.g. its name)",
            )
        raise TypeError(f"{type(obj).__name__} is not JSON")

    try:
        text = json.dumps(value, default=refuse_secrets, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"result {name!r} is not JSON: {exc}",
            fix="publish dicts, lists, strings, numbers, booleans and None",
        ) from None
    data = json.loads(text)
    secrets = secret_values()
    if any(s in item for item in _strings(data) for s in secrets):
        raise SecretError(
            f"result {name!r} holds the value of a secret environment variable",
            fix="publish the fact, not the value",
        )
    from IPython.display import display

    display(  # type: ignore[no-untyped-call]
        {RESULT_MIMETYPE: {"name": name, "data": data}, "text/plain": f"{name}: {text[:200]}"},
        raw=True,
        metadata={"alchemy-nb": {"name": name}},
    )


def read_results(path: str | Path) -> dict[str, Any]:
    """Every result published in the executed notebook at ``path``, by name (the last
    one of a name wins).

    Example::

        results = read_results("artifacts/prod-promote-20261126T014509Z.ipynb")
        results["outcome"]["healthy"]
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    results: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            payload = (output.get("data") or {}).get(RESULT_MIMETYPE)
            if isinstance(payload, dict) and "name" in payload:
                results[str(payload["name"])] = payload.get("data")
    return results
