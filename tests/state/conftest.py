"""Stores under test: the file store, SQLite, and PostgreSQL on a real throwaway server.

One PostgreSQL cluster serves the whole run, whatever the number of xdist workers: the
first worker that needs it starts it under a file lock in the run's shared temporary
folder and notes where it is; every worker registers itself as a user; the last one to
finish stops it. Each test gets its own database. PostgreSQL tests share the xdist group
``postgres``, so usually one worker runs them all.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alchemy_nb.state import StateStore, open_store
from alchemy_nb.state._pgcluster import Cluster

KINDS = [
    "file",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.xdist_group("postgres")),
]


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Cluster]:
    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "alchemy-nb-pg"
    info = shared / "cluster.json"
    users = shared / "users"
    me = users / f"{worker_id}-{os.getpid()}"
    with _flock(shared / "lock"):
        cluster = Cluster.from_json(info.read_text()) if info.exists() else None
        if cluster is None or not cluster.alive():
            try:
                cluster = Cluster.start()
            except RuntimeError as exc:
                pytest.skip(f"no PostgreSQL server for the store tests: {exc}")
            info.write_text(cluster.to_json())
        users.mkdir(exist_ok=True)
        me.touch()
    yield cluster
    with _flock(shared / "lock"):
        me.unlink()
        if not any(users.iterdir()):
            cluster.stop()
            info.unlink()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the shared cluster."""
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{secrets.token_hex(6)}")


def url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return f"file:{tmp_path / 'state'}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state URL of each kind of store, empty."""
    return url_for(request.param, tmp_path, request)


@pytest.fixture
def make_store(store_url: str) -> Iterator[Callable[[], StateStore]]:
    """Opens stores on ``store_url`` (several: as separate processes would); closes them."""
    opened: list[StateStore] = []

    def make() -> StateStore:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[[], StateStore]) -> StateStore:
    return make_store()
