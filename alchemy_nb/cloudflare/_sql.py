"""Splitting a SQL script into statements, one way for every D1 path (migrations applied by
a deploy or by ``alchemy-nb d1``, ``d1 execute``, and ``DB.exec`` in a worker)."""

from __future__ import annotations

import sqlite3

__all__ = ["split_statements"]


def split_statements(script: str) -> list[str]:
    """The statements of ``script``, split at each ``;`` that ends one: semicolons inside
    strings, comments and trigger bodies stay put, several statements may share a line,
    and pieces that hold only comments and whitespace are dropped.

    Example::

        split_statements("CREATE TABLE a (x); INSERT INTO a VALUES ('1;2');")
        # ['CREATE TABLE a (x);', "INSERT INTO a VALUES ('1;2');"]
    """
    statements: list[str] = []
    pieces = script.split(";")
    buffer = ""
    for index, piece in enumerate(pieces):
        buffer += piece
        if index < len(pieces) - 1:
            buffer += ";"
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer):
        statements.append(buffer.strip())
    return statements


def _has_code(text: str) -> bool:
    """Whether ``text`` holds more than ``--`` comments, whitespace and semicolons."""
    lines = (line.split("--", 1)[0] if "'" not in line else line for line in text.splitlines())
    return any(line.strip(" \t\r\n;") for line in lines)
