"""Progress of plan, deploy (``up``), destroy and promote.

:class:`Progress` is a run reporter (``app.deploy(stage, reporter=Progress(...))``; runs
given none get one automatically in a kernel or on a terminal). In a notebook it shows a
display that is updated in place, so the saved notebook keeps the final frame; on a
terminal it draws a bar on stderr; and at the end it always writes one summary line
(stdout in a notebook, stderr on a terminal), because logs of executed notebooks only
carry the first frame. ``quiet=True`` (or ``display.enable(progress=False)``, or
``ALCHEMY_NB_PROGRESS=0``) shows nothing at all.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Literal, TextIO

from ._doc import Cell, Doc, Table

__all__ = ["Progress", "auto_reporter"]

Mode = Literal["notebook", "terminal", "lines"]

STATES: dict[str, tuple[str, str]] = {
    "pending": ("waiting", "dim"),
    "running": ("running", "warn"),
    "done": ("done", "ok"),
    "failed": ("failed", "bad"),
    "noop": ("unchanged", "dim"),
}
PLAN_VERBS = ("to create", "to update", "to replace", "to delete", "unchanged")


class ProgressFrame:
    """One frame of a progress display: what is done, running and waiting."""

    def __init__(self, progress: Progress) -> None:
        self.title = progress.title
        self.rows = [(rid, *row) for rid, row in progress.rows.items()]
        self.total = progress.total
        self.done = progress.done
        self.final = progress.final

    def text(self) -> str:
        if self.final is not None:
            return f"progress · {self.final}"
        running = [rid for rid, _, _, state in self.rows if state == "running"]
        now = f" ({', '.join(running[:3])}{' …' if len(running) > 3 else ''} running)"
        if not self.rows:
            return f"progress · {self.title}: running the program"
        return f"progress · {self.title}: {self.done}/{self.total} done" + (now if running else "")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        rows: list[list[Cell]] = [
            [rid, kind, action, STATES[state]] for rid, kind, action, state in self.rows
        ]
        doc = Doc(
            "progress",
            self.title,
            summary=self.final or self.text().removeprefix(f"progress · {self.title}: "),
            tone="ok" if self.final and "failed" not in self.final else "info",
            tables=[Table(["id", "kind", "action", "state"], rows, ("resource", "resources"))]
            if rows
            else [],
        )
        bar = ""
        if self.total:
            bar = f'<progress value="{self.done}" max="{self.total}"></progress>'
        html = doc.html().replace('<div class="anb-title">', bar + '<div class="anb-title">', 1)
        return {"text/plain": self.text(), "text/html": html + "<!-- /anb-progress -->"}


class Progress:
    """A run reporter that shows progress and ends with one summary line.

    Example::

        from alchemy_nb.display import Progress
        await app.deploy("dev", reporter=Progress("up", "demo", "dev"))
        await app.deploy("dev", reporter=Progress("up", "demo", "dev", quiet=True))

    ``mode``: ``"notebook"`` (a display updated in place), ``"terminal"`` (a bar on
    ``stream``, default stderr) or ``"lines"`` (the summary line only).
    """

    def __init__(
        self,
        phase: str,
        app: str,
        stage: str,
        *,
        mode: Mode = "lines",
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.title = f"{phase} {app}/{stage}"
        self.phase = phase
        self.mode = mode
        self.quiet = quiet
        self.stream = stream
        self.rows: dict[str, list[str]] = {}
        self.total = 0
        self.done = 0
        self.final: str | None = None
        self.summary: str | None = None
        self._handle: Any = None
        self._shown_at = 0.0

    # ----------------------------------------------------------------- events
    def __call__(self, event: str, **data: Any) -> None:
        with contextlib.suppress(Exception):  # progress never stops a run
            self._on(event, data)

    def _on(self, event: str, data: dict[str, Any]) -> None:
        if event == "run.start":
            self.rows = {}
            for rid, kind, action in data.get("changes") or []:
                self.rows[str(rid)] = [
                    str(kind),
                    str(action),
                    "noop" if action == "noop" else "pending",
                ]
            self.total = sum(1 for r in self.rows.values() if r[2] != "noop")
            self._show(force=True)
        elif event == "resource.start":
            row = self._row(data)
            row[1], row[2] = str(data.get("action", row[1])), "running"
            self._show()
        elif event == "resource.done":
            row = self._row(data)
            if row[2] != "done":
                self.done += 1
            row[1], row[2] = str(data.get("action", row[1])), "done"
            self._show()
        elif event == "resource.failed":
            row = self._row(data)
            row[2] = "failed"
            self._show()
        elif event in ("run.done", "run.failed"):
            self.summary = self._summary(event, data)
            self.final = self.summary
            self._show(force=True)
            self._finish()

    def _row(self, data: dict[str, Any]) -> list[str]:
        rid = str(data.get("id"))
        if rid not in self.rows:
            self.rows[rid] = [str(data.get("kind", "?")), str(data.get("action", "?")), "pending"]
            self.total += 1
        return self.rows[rid]

    def _summary(self, event: str, data: dict[str, Any]) -> str:
        plan = data.get("plan")
        if plan is not None:
            counts = plan.counts
            keys = ("create", "update", "replace", "delete", "noop")
            parts = ", ".join(f"{counts[k]} {v}" for k, v in zip(keys, PLAN_VERBS, strict=True))
            return f"{self.title}: {parts}"
        result = data.get("result")
        if result is not None:
            line = str(result.summary())
            return line + (" (failed)" if event == "run.failed" else "")
        return f"{self.title}: {'failed' if event == 'run.failed' else 'done'}"

    # ---------------------------------------------------------------- surfaces
    def _show(self, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._shown_at < 0.1:
            return
        self._shown_at = now
        if self.mode == "notebook":
            from IPython.display import display

            frame = ProgressFrame(self)
            if self._handle is None:
                self._handle = display(frame, display_id=True)  # type: ignore[no-untyped-call]
            else:
                self._handle.update(frame)
        elif self.mode == "terminal":
            self._bar()

    def _bar(self) -> None:
        stream = self.stream or sys.stderr
        if self.final is not None:
            stream.write("\r\x1b[2K")
            return
        width = 24
        filled = int(width * self.done / self.total) if self.total else 0
        running = [rid for rid, row in self.rows.items() if row[2] == "running"]
        label = running[0] if running else ""
        stream.write(
            f"\r\x1b[2K{self.title} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {label}"
        )
        stream.flush()

    def _finish(self) -> None:
        if self.quiet or self.summary is None:
            return
        if self.mode == "notebook":
            print(self.summary)
        else:
            stream = self.stream or sys.stderr
            stream.write(self.summary + "\n")
            stream.flush()


def auto_reporter(phase: str, app: str, stage: str) -> Progress | None:
    """The progress a run shows when given no reporter (None when progress is off)."""
    from ._switch import in_kernel, progress_enabled

    if not progress_enabled():
        return None
    if in_kernel():
        return Progress(phase, app, stage, mode="notebook")
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return Progress(phase, app, stage, mode="terminal") if terminal else None
