"""Telling whether a process is still the one we started."""

from __future__ import annotations

import os

__all__ = ["process_start_marker", "spawn_detached"]


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


_LAUNCHER = (
    "import os, sys\n"
    "if os.fork():\n"
    "    os._exit(0)\n"
    "os.setsid()\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def spawn_detached(
    argv: list[str], *, log: str | None = None, env: dict[str, str] | None = None
) -> None:
    """Start ``argv`` in a session of its own that is not our child: it outlives us,
    leaves no zombie and is not tied to our terminal. Output goes to ``log`` (appended).
    """
    import subprocess
    import sys

    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            close_fds=True,
            check=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
