"""JSON with comments (``//``, ``/* */``) and trailing commas, as ``wrangler.jsonc`` uses."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError

__all__ = ["loads_jsonc", "strip_jsonc"]


def strip_jsonc(text: str) -> str:
    """Blank out comments and trailing commas, keeping every other character in place.

    Strings are left alone (``"https://x"`` keeps its ``//``), and each removed character
    becomes a space (newlines stay), so JSON errors keep their line and column.

    Example::

        >>> strip_jsonc('{"a": 1, // one\\n}')
        '{"a": 1         \\n}'
    """
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1  # a comma seen since the last significant character
    while i < n:
        ch = text[i]
        if ch == '"':
            last_comma = -1
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            stop = n if end < 0 else end + 2
            for j in range(i, stop):
                if out[j] not in "\r\n":
                    out[j] = " "
            i = stop
        elif ch == ",":
            last_comma = i
            i += 1
        elif ch in "]}":
            if last_comma >= 0:
                out[last_comma] = " "
            last_comma = -1
            i += 1
        else:
            if not ch.isspace():
                last_comma = -1
            i += 1
    return "".join(out)


def loads_jsonc(text: str, *, source: str = "<jsonc>") -> Any:
    """Parse JSONC; a malformed document is a :class:`ConfigError` naming line and column.

    Example::

        >>> loads_jsonc('{"name": "hello", /* c */ "vars": {"A": "1",},}')
        {'name': 'hello', 'vars': {'A': '1'}}
    """
    try:
        return json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid JSONC: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            where=f"{source}:{exc.lineno}:{exc.colno}",
            fix="fix the syntax at that line and column",
        ) from None
