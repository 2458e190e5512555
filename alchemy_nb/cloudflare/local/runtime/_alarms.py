"""Durable Object alarms: ``ctx.storage.setAlarm(when)`` and the object's ``alarm()``.

An object has at most one alarm. Its time (milliseconds since the epoch) is kept in
the object's own SQLite file (table ``_cf_alarm``), so it survives a restart of the
worker process: when the worker starts, every stored alarm is armed again, and one
whose time passed while the worker was down fires at once.

When the alarm fires, the alarm is cleared and ``alarm(alarm_info)`` runs (serialized
with the object's other calls). If it raises, it is retried with exponential backoff
(from 2 s, up to 6 retries), as on Cloudflare, unless the handler set a new alarm.
"""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AlarmScheduler", "alarm_time", "ensure_alarm_table", "to_ms"]

MAX_RETRIES = 6

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS _cf_alarm"
    " (one INTEGER PRIMARY KEY CHECK (one = 1), time REAL NOT NULL, retries INTEGER NOT NULL)"
)


def ensure_alarm_table(conn: sqlite3.Connection) -> None:
    """Create the alarm table in an object's storage (idempotent)."""
    conn.execute(_SCHEMA)


def to_ms(when: Any) -> float:
    """An alarm time as milliseconds since the epoch: a number (ms) or a Date/datetime."""
    if hasattr(when, "getTime"):
        return float(when.getTime())
    if hasattr(when, "timestamp"):
        return float(when.timestamp() * 1000)
    if isinstance(when, int | float) and not isinstance(when, bool):
        return float(when)
    raise TypeError(
        f"setAlarm() needs a time in milliseconds since the epoch or a Date, not"
        f" {type(when).__name__}"
    )


def alarm_time(path: Path) -> float | None:
    """The alarm stored in an object's SQLite file, without opening it for writing."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT time FROM _cf_alarm WHERE one = 1").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return None if row is None else float(row[0])


class AlarmScheduler:
    """Arms one timer per object with an alarm; calls ``fire(object_key)`` when due.

    ``fire`` is a coroutine function that runs the object's ``alarm()`` and returns.
    """

    def __init__(self, name: str, fire: Callable[[str, int], Any]) -> None:
        self._name = name
        self._fire = fire
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, stored: dict[str, float]) -> None:
        """Arm the alarms found in storage (at startup)."""
        self._loop = asyncio.get_running_loop()
        for key, when in stored.items():
            self.arm(key, when)

    def arm(self, key: str, when_ms: float | None, retries: int = 0) -> None:
        """(Re)arm ``key``'s timer for ``when_ms``; None disarms it."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if when_ms is None:
            return
        try:
            loop = self._loop or asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: start() arms it from storage
        self._loop = loop
        delay = max(0.0, when_ms / 1000 - time.time())
        self._timers[key] = loop.call_later(delay, self._due, key, retries)

    def _due(self, key: str, retries: int) -> None:
        self._timers.pop(key, None)
        task = asyncio.ensure_future(self._run(key, retries))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, key: str, retries: int) -> None:
        try:
            result = self._fire(key, retries)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the scheduler must survive a broken handler
            text = "".join(traceback.format_exception(exc))
            sys.stderr.write(f"[durable object {self._name}] alarm failed: {exc}\n{text}")
            sys.stderr.flush()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running:
            task.cancel()
