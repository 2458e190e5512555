"""A throwaway PostgreSQL cluster on 127.0.0.1, for tests and benchmarks of the stores.

It runs Debian's server binaries (``/usr/lib/postgresql/*/bin``; ``scripts/system_deps.sh``
installs them). ``initdb`` refuses to run as root, so as root the cluster runs as the
dedicated system user ``alchemy-nb-pg`` (created when missing). The data folder and the
unix socket live in a fresh temporary folder; TCP connections need a password.

Example::

    cluster = Cluster.start()
    url = cluster.create_database("t1")      # postgresql://alchemy:...@127.0.0.1:PORT/t1
    ...
    cluster.stop()
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["OS_USER", "Cluster", "find_binaries"]

OS_USER = "alchemy-nb-pg"


def find_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` holding ``initdb``, if any."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.parent.name)
        except ValueError:
            return 0.0

    return Path(max(found, key=version)).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: where it is and how to reach it."""

    bin: str
    folder: str
    port: int
    user: str
    password: str
    os_user: str | None

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str, *, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Cluster:
        return cls(**json.loads(text))

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> Cluster:
        """initdb and start a new cluster (raises RuntimeError saying what is missing)."""
        bin_dir = bin_dir or find_binaries()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                "(scripts/system_deps.sh installs them: apt-get install postgresql)"
            )
        os_user = _ensure_os_user() if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix="alchemy-nb-pg-"))
        password = secrets.token_hex(12)
        (folder / "pwfile").write_text(password + "\n")
        if os_user is not None:
            entry = pwd.getpwnam(os_user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            os.chown(folder / "pwfile", entry.pw_uid, entry.pw_gid)
        cluster = cls(str(bin_dir), str(folder), _free_port(), "alchemy", password, os_user)
        cluster._run(
            "initdb",
            "-D",
            str(folder / "data"),
            "-U",
            cluster.user,
            "--pwfile",
            str(folder / "pwfile"),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        cluster._run(
            "pg_ctl",
            "-D",
            str(folder / "data"),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {folder} "
            "-c max_connections=200 -c fsync=off -c full_page_writes=off",
            "start",
        )
        return cluster

    def _run(self, program: str, *args: str) -> None:
        command = [str(Path(self.bin) / program), *args]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=self.folder, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
            )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self._run("pg_ctl", "-D", str(Path(self.folder) / "data"), "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def alive(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True
        except OSError:
            return False


def _ensure_os_user() -> str:
    known = {entry.pw_name for entry in pwd.getpwall()}
    if OS_USER not in known:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        raced = OS_USER in {entry.pw_name for entry in pwd.getpwall()}  # another run made it
        if done.returncode != 0 and not raced:
            raise RuntimeError(f"cannot create the system user {OS_USER}: {done.stderr.strip()}")
    return OS_USER
