"""A warm start for the ``alchemy-nb`` command (see ``use_server`` in ``__init__.py``).

Most of a short command's time goes into starting Python and importing pydantic and
asyncio. With the server on, the first command starts a small background process that
has imported them once; each later command connects to it over a private Unix socket,
and the server *forks* a fresh child that runs the command with the caller's arguments,
working directory, environment, umask and standard streams (passed as file descriptors).
The user's program is only ever imported in that child, so no state carries over from
one command to the next.

The child lives exactly as long as its caller: signals the caller receives (Ctrl-C,
SIGTERM, SIGHUP) are forwarded, and if the caller dies (even by SIGKILL) the child kills
itself at once, so a killed command stops where it was, as it would without the server.
The server exits after ``ALCHEMY_NB_SERVER_IDLE`` seconds without work (default 600), and
a server started from other code (another install or changed sources) is never used.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import socket
import struct
import sys
import time
import zlib

TYPE_CHECKING = False  # the client side imports as little as it can
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = ["connect_and_run", "serve", "socket_path"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_CHILD_ENV = "ALCHEMY_NB_SERVER_CHILD"
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _fingerprint() -> str:
    """Identifies the code a server runs: the interpreter and its ``PYTHON*`` settings, the
    installed packages (an install or removal changes a site-packages folder) and this
    package's sources."""
    parts = [sys.executable, _PACKAGE]
    parts += sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PYTHON"))
    for entry in sys.path:
        if entry.endswith("-packages"):
            try:  # noqa: SIM105 (the client does without contextlib's import)
                parts.append(f"{entry}:{os.stat(entry).st_mtime_ns}")
            except OSError:
                pass
    for folder, dirs, files in os.walk(_PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                stat = os.stat(os.path.join(folder, name))
                parts.append(f"{folder}/{name}:{stat.st_mtime_ns}:{stat.st_size}")
    data = "\n".join(parts).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def socket_path() -> str:
    """The server's socket, in a folder only this user can enter."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = os.path.join(runtime, "alchemy-nb") if runtime else f"/tmp/alchemy-nb-{os.getuid()}"
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.stat(folder)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to you and be private (mode 700)")
    return os.path.join(folder, f"server-{_fingerprint()}.sock")


def _send(conn: socket.socket, data: dict[str, Any], fds: list[int] | None = None) -> None:
    # marshal, not json: the client then imports next to nothing (json brings re). Both ends
    # are this interpreter and the same user (the server checks the peer's uid).
    payload = marshal.dumps(data)
    message = struct.pack("!I", len(payload)) + payload
    if fds:
        socket.send_fds(conn, [message], fds)
    else:
        conn.sendall(message)


def _recv(conn: socket.socket, with_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    fds: list[int] = []
    if with_fds:
        head, fds, _, _ = socket.recv_fds(conn, 4, with_fds)
    else:
        head = conn.recv(4)
    while head and len(head) < 4:
        more = conn.recv(4 - len(head))
        if not more:
            return None, fds
        head += more
    if len(head) < 4:
        return None, fds
    (size,) = struct.unpack("!I", head)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            return None, fds
        body += chunk
    message = marshal.loads(body)
    return (message if isinstance(message, dict) else None), fds


# ------------------------------------------------------------------------ client
def connect_and_run(argv: list[str]) -> int | None:
    """Run the command through the server; None when there is no server (run it here).

    Starting a server is left to :func:`start_in_background`, after this command.
    """
    try:
        path = socket_path()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
    except (OSError, PermissionError):
        return None
    with conn:
        request = {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": _umask(),
            "path": sys.path,
        }
        try:
            _send(conn, request, [0, 1, 2])
        except OSError:
            return None
        previous = {}

        def forward(signum: int, frame: Any) -> None:
            try:  # noqa: SIM105
                _send(conn, {"signal": signum})
            except OSError:
                pass

        for signum in _FORWARDED:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # what we ignore, so does it
                previous[signum] = signal.signal(signum, forward)
        try:
            while True:
                try:
                    reply, _ = _recv(conn)
                except InterruptedError:
                    continue
                if reply is None:
                    sys.stderr.write(
                        "error: the alchemy-nb server ended the command "
                        "unexpectedly; run it again with ALCHEMY_NB_SERVER=0\n"
                    )
                    return 1
                if "exit" in reply:
                    return int(reply["exit"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def start_in_background() -> None:
    """Start a server for later commands; quietly does nothing if one is starting."""
    from .._process import spawn_detached

    try:
        path = socket_path()
    except OSError:
        return
    spawn_detached(
        [sys.executable, "-m", "alchemy_nb.cli._server", str(path)],
        env={k: v for k, v in os.environ.items() if k != "ALCHEMY_NB_SERVER"},
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------ server
def serve(where: str | Path) -> None:
    """Accept commands on ``where`` until idle; each runs in a forked child."""
    import contextlib
    from pathlib import Path

    path = Path(where)
    # What every command needs, imported once here: asyncio (and to_thread's pool), the
    # engine, the fs kinds, the CLI, the promotion layer, and `pwd` (who is deploying).
    import asyncio  # noqa: F401
    import concurrent.futures.thread  # noqa: F401
    import ctypes  # noqa: F401  (for the spares' _prefault)
    import gc
    import pwd  # noqa: F401

    import alchemy_nb.cli
    import alchemy_nb.cli._cloudflare
    import alchemy_nb.cli._main
    import alchemy_nb.cli._promotion
    import alchemy_nb.cli._state
    import alchemy_nb.engine
    import alchemy_nb.fs._file  # the package loads its kinds lazily
    import alchemy_nb.promotion._ledger
    import alchemy_nb.promotion._pipeline
    import alchemy_nb.state
    import alchemy_nb.wrangler._resolve
    from alchemy_nb.cli import AUTO_COMMANDS

    alchemy_nb.cli._main.prebuild(AUTO_COMMANDS)  # every child would build its parser

    # What is here now, children share with the server page for page; the collector would
    # copy every page it walks in each child, so it leaves these objects alone.
    gc.collect()
    gc.freeze()
    idle = float(os.environ.get("ALCHEMY_NB_SERVER_IDLE", "600"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    listener.bind(str(temp))
    os.chmod(temp, 0o600)
    listener.listen(64)
    if not _claim(temp, path):
        temp.unlink()
        return
    temp.unlink()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    pid_file = path.with_suffix(".pid")
    pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    # A spare child, forked ahead of time, takes the next command: it accepts the connection
    # itself and tells the server through this pipe, which then forks the next spare. So a
    # command waits for no fork, and the spare has copied ahead the memory it shares with
    # the server (see _prefault) instead of faulting on it page by page as it runs.
    taken, tell = os.pipe()
    server = os.getpid()
    spare = 0
    deadline = time.monotonic() + idle
    try:
        while True:
            if not spare:
                spare = os.fork()
                if spare == 0:
                    try:  # never back into this loop: _spare ends the process itself
                        os.close(taken)
                        _spare(listener, tell, server)
                    finally:
                        os._exit(1)
            wait = min(1.0, deadline - time.monotonic())
            if wait <= 0:
                break  # idle: the spare goes with the server
            ready, _, _ = select.select([taken], [], [], wait)
            if ready:
                os.read(taken, 64)
                spare = 0
                deadline = time.monotonic() + idle
            elif not _alive(spare):
                spare = 0  # it died before taking a command: fork another
    finally:
        if spare:
            with contextlib.suppress(OSError):
                os.kill(spare, signal.SIGKILL)
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            pid_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # children are reaped as they exit (SIGCHLD ignored)
    except ProcessLookupError:
        return False
    return True


def _spare(listener: socket.socket, tell: int, server: int) -> None:
    """A spare child: copy the shared memory ahead, wait for a command, run it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import contextlib

    with contextlib.suppress(Exception):  # an optimisation: commands run the same without
        _prefault()
    listener.settimeout(1.0)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != server:
                os._exit(0)  # the server is gone (killed): so is its spare
            continue
        except OSError:
            os._exit(1)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid == os.getuid():
            break
        conn.close()  # not our user: stay the spare
    try:  # noqa: SIM105
        os.write(tell, b".")  # the server forks the next spare
    except OSError:
        pass  # the server is gone; this command still runs
    os.close(tell)
    listener.close()
    conn.settimeout(None)
    _child(conn)


_MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault a range in writable, as writing each page would


def _prefault() -> None:
    """Make this child's own copy, in one go, of the memory it shares with the server.

    After a fork every page is shared until one side writes to it, and Python writes to
    most of the pages it reads (reference counts): each first write is a fault that copies
    one page, thousands per command, a few microseconds each. ``madvise`` with
    MADV_POPULATE_WRITE copies every writable private page of a range at once, here while
    the spare waits for work. Linux only; where it fails, the child faults as usual.
    """
    try:
        import ctypes

        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except (OSError, AttributeError):
        return
    for fields in regions:
        name = fields[5] if len(fields) > 5 else ""
        if fields[1] != "rw-p" or (name.startswith("[") and name != "[heap]"):
            continue  # not private and writable, or the stack, vdso and the like
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if end - start > _PREFAULT_MAX:
            continue  # a large reservation, mostly never touched: copying it would waste
        if madvise(start, end - start, _MADV_POPULATE_WRITE) != 0:
            return  # an older kernel: the child faults as usual


_PREFAULT_MAX = 64 << 20


def _claim(temp: Path, path: Path) -> bool:
    """Publish our socket at ``path`` unless a live server already has it."""
    for _ in range(2):
        try:
            os.link(temp, path)  # atomic: exactly one server wins
            return True
        except FileExistsError:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return False  # a live server answers there
            except OSError:
                try:  # noqa: SIM105
                    path.unlink()  # left behind by a server that was killed
                except OSError:
                    pass
            finally:
                probe.close()
    return False


def _child(conn: socket.socket) -> None:
    code = 1
    try:
        request, fds = _recv(conn, with_fds=3)
        if request is None or len(fds) != 3:
            os._exit(1)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[_CHILD_ENV] = "1"
        os.umask(int(request["umask"]))
        sys.path[:] = request["path"]  # imports from here on resolve as in the caller
        # A command behaves as if started from a shell: Ctrl-C (forwarded) interrupts it,
        # whatever the server inherited when it was started in the background.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        import threading

        threading.Thread(target=_watch, args=(conn,), daemon=True).start()
        from alchemy_nb.cli import main

        code = main(request["argv"], _via_server=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        try:  # noqa: SIM105
            _send(conn, {"exit": code})
        except OSError:
            pass
        os._exit(code)


def _watch(conn: socket.socket) -> None:
    """Forward the caller's signals; die with the caller."""
    while True:
        try:
            message, _ = _recv(conn)
        except OSError:
            message = None
        if message is None:  # the caller is gone: stop right here, as it did
            os.kill(os.getpid(), signal.SIGKILL)
            return
        signum = message.get("signal")
        if isinstance(signum, int):
            os.kill(os.getpid(), signum)


if __name__ == "__main__":
    serve(sys.argv[1])
