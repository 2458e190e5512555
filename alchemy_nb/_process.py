"""Telling whether a process is still the one we started."""

from __future__ import annotations

import os

__all__ = ["process_start_marker"]


def process_start_marker(pid: int) -> str:
    """A string that differs between two processes that had the same pid ("" if none)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        # The command name may hold spaces or parentheses; fields follow the last ')'.
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] == b"Z":  # a zombie is as good as gone
            return ""
        return fields[19].decode()
    except FileNotFoundError:
        return ""
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass
    return "alive"
