"""The stage supervisor: keeps a stage's local workers serving, across deploys and crashes.

One supervisor runs per stage, in the background, started by the first deploy that needs
it; it outlives the deploying process. For each worker it owns the listening socket on
the worker's stable port (127.0.0.1 only) and hands it to the worker's process, so:

- a redeploy starts the new version on the same socket, waits until it is ready (its
  module imported and its server up), and only then stops the old one, which finishes
  the requests it has: no request is refused during the switch;
- a new version that fails to start is stopped, its error is returned to the deploy,
  and the old version keeps serving;
- a worker process that dies is started again (with backoff);
- one worker process waits on standby, its server and runtime already imported, so the
  next worker to start (a first deploy, a redeploy, a restart) skips that part.

Control: one JSON request per connection on a Unix socket (see ``_control.py``).
Files, in the stage's local data folder: ``supervisor.json`` (pid, socket),
``logs/<worker>.log`` (each worker's output) and ``workers/<worker>.serving`` (the
version served now, read by deploys to tell that a worker still runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._process import process_start_marker
from ._control import control_socket_path

READY_TIMEOUT = 30.0


@dataclass
class Managed:
    name: str
    port: int
    listener: socket.socket
    log: Path
    config: str = ""
    version: str = ""
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    removing: bool = False
    watcher: asyncio.Task[None] | None = None
    history: list[float] = field(default_factory=list)


@dataclass
class Standby:
    """A worker process started ahead of need, waiting on ``channel`` for a worker."""

    proc: asyncio.subprocess.Process
    channel: socket.socket


class Supervisor:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.workers: dict[str, Managed] = {}
        self.done = asyncio.Event()
        self.lock = asyncio.Lock()
        self.draining: set[asyncio.Task[None]] = set()
        self.standby: Standby | None = None
        self.warming: asyncio.Task[None] | None = None

    async def run(self) -> None:
        path = control_socket_path(self.folder)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(self.handle, path=str(path))
        os.chmod(path, 0o600)
        info = {
            "pid": os.getpid(),
            "started": process_start_marker(os.getpid()),
            "socket": str(path),
            "since": time.time(),
        }
        _write_private(self.folder / "supervisor.json", json.dumps(info))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.done.set)
        self.warm()
        try:
            await self.done.wait()
        finally:
            server.close()
            await self.drop_standby()
            for managed in list(self.workers.values()):
                await self.remove(managed.name)
            if self.draining:  # old versions still finishing their requests
                await asyncio.wait(set(self.draining), timeout=15)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.folder / "supervisor.json").unlink()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = json.loads(line)
            async with self.lock:
                reply = await self.dispatch(request)
        except Exception as exc:  # a bad request must not bring the supervisor down
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "reserve":
            return self.reserve(request["name"], int(request.get("port") or 0))
        if op == "deploy":
            return await self.deploy(request["name"], request["config"], request["version"])
        if op == "remove":
            await self.remove(request["name"])
            if not self.workers:
                asyncio.get_running_loop().call_soon(self.done.set)
            return {"ok": True}
        if op == "status":
            return {
                "ok": True,
                "workers": {
                    m.name: {
                        "port": m.port,
                        "pid": m.proc.pid if m.proc else None,
                        "version": m.version,
                        "restarts": m.restarts,
                    }
                    for m in self.workers.values()
                },
            }
        if op == "shutdown":
            asyncio.get_running_loop().call_soon(self.done.set)
            return {"ok": True}
        return {"ok": False, "error": f"unknown operation {op!r}"}

    def reserve(self, name: str, port: int) -> dict[str, Any]:
        """The worker's listening socket: kept if it exists, else bound (another port if
        the asked one is taken)."""
        managed = self.workers.get(name)
        taken = any(m.port == port for m in self.workers.values() if m is not managed)
        if managed is not None and (port in (0, managed.port) or taken):
            # a port another worker of the stage serves (`dev --port` asks every worker for
            # it; the first one has it): keep this one's
            return {"ok": True, "port": managed.port}
        note = ""
        listener, bound, note = _listen(port)
        if managed is not None:  # a new fixed port: the next deploy moves there
            managed.listener.close()
            managed.listener, managed.port = listener, bound
        else:
            managed = Managed(name, bound, listener, self.folder / "logs" / f"{name}.log")
            managed.log.parent.mkdir(parents=True, exist_ok=True)
            self.workers[name] = managed
        return {"ok": True, "port": bound, "note": note}

    async def deploy(self, name: str, config: str, version: str) -> dict[str, Any]:
        managed = self.workers.get(name)
        if managed is None:
            return {"ok": False, "error": f"no port reserved for worker {name!r}"}
        if managed.version == version and managed.proc and managed.proc.returncode is None:
            return {"ok": True, "port": managed.port, "pid": managed.proc.pid}
        started, error = await self.start(managed, config)
        if started is None:
            if managed.proc is None:  # nothing was serving: give the port back
                self.workers.pop(name)
                managed.listener.close()
                if not self.workers:
                    asyncio.get_running_loop().call_soon(self.done.set)
            return {"ok": False, "error": error}
        old = managed.proc
        managed.proc, managed.config, managed.version = started, config, version
        managed.watcher = asyncio.create_task(self.watch(managed, started))
        self.mark_serving(managed)
        if old is not None:
            # Once the old version stops accepting, every new connection reaches the new
            # one; it finishes its open requests in the background.
            await _stop_accepting(old)
            task = asyncio.create_task(_stop(old))
            self.draining.add(task)
            task.add_done_callback(self.draining.discard)
        return {"ok": True, "port": managed.port, "pid": started.pid}

    def warm(self) -> None:
        """Start a standby worker process in the background (unless one is on its way)."""
        if self.done.is_set() or (self.warming is not None and not self.warming.done()):
            return
        self.warming = asyncio.create_task(self._spawn_standby())

    async def _spawn_standby(self) -> None:
        parent, child = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "alchemy_nb.cloudflare.local._host",
                "--standby",
                str(child.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                pass_fds=(child.fileno(),),
            )
        except OSError:
            parent.close()
            return
        finally:
            child.close()
        self.standby = Standby(proc, parent)

    def take_standby(self) -> Standby | None:
        standby, self.standby = self.standby, None
        if standby is not None and standby.proc.returncode is not None:
            standby.channel.close()
            return None
        return standby

    async def drop_standby(self) -> None:
        if self.warming is not None:
            with contextlib.suppress(Exception):
                await self.warming
        standby, self.standby = self.standby, None
        if standby is None:
            return
        standby.channel.close()  # it sees the socket close and exits
        try:
            await asyncio.wait_for(standby.proc.wait(), 2)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                standby.proc.kill()
            await standby.proc.wait()

    async def start(
        self, managed: Managed, config: str
    ) -> tuple[asyncio.subprocess.Process | None, str]:
        """Start a process for ``config`` on the worker's socket and wait until it is ready."""
        python, path = _interpreter(config)
        read_fd, write_fd = os.pipe()
        offset = managed.log.stat().st_size if managed.log.exists() else 0
        proc = None if python != sys.executable else self.hand_over(managed, config, write_fd)
        if proc is not None:
            os.close(write_fd)
            self.warm()
            return await self._ready(managed, proc, read_fd, offset)
        with open(managed.log, "ab") as log:
            env = {
                **os.environ,
                "ALCHEMY_NB_LISTEN_FD": str(managed.listener.fileno()),
                "ALCHEMY_NB_READY_FD": str(write_fd),
                "PYTHONUNBUFFERED": "1",
            }
            if path:
                env["PYTHONPATH"] = os.pathsep.join(path)
                env["PYTHONNOUSERSITE"] = "1"
            proc = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "alchemy_nb.cloudflare.local._host",
                config,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                pass_fds=(managed.listener.fileno(), write_fd),
            )
        os.close(write_fd)
        return await self._ready(managed, proc, read_fd, offset)

    def hand_over(
        self, managed: Managed, config: str, write_fd: int
    ) -> asyncio.subprocess.Process | None:
        """Give ``config`` to the standby process, if one waits (None: start one anew)."""
        standby = self.take_standby()
        if standby is None:
            return None
        try:
            with open(managed.log, "ab") as log:
                socket.send_fds(
                    standby.channel,
                    [config.encode()],
                    [managed.listener.fileno(), write_fd, log.fileno()],
                )
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                standby.proc.kill()
            return None
        finally:
            standby.channel.close()
        return standby.proc

    async def _ready(
        self, managed: Managed, proc: asyncio.subprocess.Process, read_fd: int, offset: int
    ) -> tuple[asyncio.subprocess.Process | None, str]:
        _SIGNALS[proc.pid] = read_fd  # the worker says "ready", later "closed", on it
        ready = await _wait_for(proc, b"ready", READY_TIMEOUT)
        if ready:
            return proc, ""
        if proc.returncode is None:
            await _stop(proc)
        tail = _read_from(managed.log, offset)
        return None, tail or f"the worker process exited with code {proc.returncode}"

    async def watch(self, managed: Managed, proc: asyncio.subprocess.Process) -> None:
        """Start the worker again when its process dies (not when we stopped it)."""
        await proc.wait()
        delay = 0.1
        while managed.proc is proc and not managed.removing:
            now = time.monotonic()
            managed.history = [t for t in managed.history if now - t < 60] + [now]
            await asyncio.sleep(min(delay * len(managed.history), 5.0))
            if managed.proc is not proc or managed.removing:
                return
            started, _ = await self.start(managed, managed.config)
            if started is not None:
                managed.restarts += 1
                managed.proc = started
                self.mark_serving(managed)
                managed.watcher = asyncio.create_task(self.watch(managed, started))
                return

    async def remove(self, name: str) -> None:
        managed = self.workers.pop(name, None)
        if managed is None:
            return
        managed.removing = True
        if managed.proc is not None:
            await _stop(managed.proc)
        managed.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.serving_file(name).unlink()

    def serving_file(self, name: str) -> Path:
        return self.folder / "workers" / f"{name}.serving"

    def mark_serving(self, managed: Managed) -> None:
        data = {
            "version": managed.version,
            "port": managed.port,
            "pid": managed.proc.pid if managed.proc else None,
            "supervisor": os.getpid(),
            "supervisor_started": process_start_marker(os.getpid()),
        }
        path = self.serving_file(managed.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(data))


def _interpreter(config: str) -> tuple[str, list[str]]:
    """The Python a worker's config asks for (default: ours) and its PYTHONPATH."""
    try:
        with open(config) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return sys.executable, []
    return str(data.get("python") or sys.executable), list(data.get("python_path") or [])


def _listen(port: int) -> tuple[socket.socket, int, str]:
    """Listen on 127.0.0.1:port; if it is taken, on another port (and say so)."""
    note = ""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or port == 0:
            sock.close()
            raise
        note = f"port {port} is taken; serving on another port"
        sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock, sock.getsockname()[1], note


_SIGNALS: dict[int, int] = {}  # worker pid -> the read end of its signal pipe


async def _wait_for(proc: asyncio.subprocess.Process, word: bytes, timeout: float) -> bool:
    """Wait until the worker writes ``word`` on its signal pipe (False if it exits first)."""
    fd = _SIGNALS.get(proc.pid)
    if fd is None:
        return False
    loop = asyncio.get_running_loop()
    said = loop.create_future()
    buffer = bytearray()

    def on_readable() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        buffer.extend(data)
        if not said.done() and (word in buffer or not data):
            said.set_result(word in buffer)

    loop.add_reader(fd, on_readable)
    exited = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait(
            {said, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        return said in done and bool(said.result())
    finally:
        loop.remove_reader(fd)
        if not exited.done():
            exited.cancel()


async def _stop_accepting(proc: asyncio.subprocess.Process, timeout: float = 5.0) -> None:
    """SIGTERM, then wait until the worker says it closed its listener (or exits)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    await _wait_for(proc, b"closed", timeout)


async def _stop(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    """Ask a worker to finish what it serves and stop; insist after ``grace`` seconds."""
    try:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    finally:
        fd = _SIGNALS.pop(proc.pid, None)
        if fd is not None:
            os.close(fd)


def _read_from(path: Path, offset: int, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    text = data.decode(errors="replace").strip()
    return text[-limit:]


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main() -> None:
    folder = Path(sys.argv[1])
    asyncio.run(Supervisor(folder).run())


if __name__ == "__main__":
    main()
