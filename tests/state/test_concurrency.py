"""Eight deploying processes at once, on each store: different stages run side by side,
the same stage is serialized, and nothing is corrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run

from alchemy_nb.promotion import Ledger
from alchemy_nb.state import open_store

pytestmark = pytest.mark.slow

# A resource whose provider fails if another deploy of the stage is inside it at the same
# time: the marker file can be created only by one process at once.
PROGRAM = """
import asyncio, os
from pathlib import Path
import alchemy_nb
from alchemy_nb import Outputs, Props, Provider, Resource
from alchemy_nb.fs import File

class ProbeProps(Props):
    value: str

class ProbeOutputs(Outputs):
    value: str

class ProbeProvider(Provider[ProbeProps, ProbeOutputs]):
    async def _exclusive(self, ctx, props):
        marker = Path(__file__).parent / f"busy-{ctx.stage}"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise RuntimeError(f"two deploys of stage {ctx.stage} overlap") from None
        os.close(fd)
        await asyncio.sleep(0.15)
        marker.unlink()
        return ProbeOutputs(value=props.value)

    async def create(self, ctx, props):
        return await self._exclusive(ctx, props)

    async def update(self, ctx, old, props, outputs):
        return await self._exclusive(ctx, props)

    async def delete(self, ctx, props, outputs):
        pass

class Probe(Resource[ProbeProps, ProbeOutputs]):
    kind = "test::Probe"
    props_model = ProbeProps
    outputs_model = ProbeOutputs
    provider = ProbeProvider

app = alchemy_nb.App("conc")

@app.program
def infra(stage):
    value = os.environ.get("VALUE", "same")
    Probe("probe", value=value)
    page = File("page", path=f"out/{stage.name}.txt", content=value)
    return {"value": value, "path": page.path}
"""


def deploy_at_once(folder: Path, url: str, runs: list[tuple[str, str]]) -> list[dict]:
    procs = []
    for stage, value in runs:
        env = {**os.environ, "VALUE": value, "ALCHEMY_LOCK_TIMEOUT": "240"}
        command = [sys.executable, "-m", "alchemy_nb", "deploy", "--stage", stage, "--json"]
        procs.append(
            subprocess.Popen(
                [*command, "--state", url],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=280)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout))
    return results


def test_eight_processes_deploy_eight_stages_of_one_app_at_once(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "alchemy_run.py").write_text(PROGRAM)
    stages = [f"s{i}" for i in range(8)]
    results = deploy_at_once(tmp_path, store_url, [(s, f"v-{s}") for s in stages])
    assert all(r["ok"] and r["counts"]["create"] == 2 for r in results)
    store = open_store(store_url)
    try:
        assert run(store.stages("conc")) == stages
        for stage in stages:
            state = run(store.load("conc", stage))
            assert state.records["probe"]["outputs"] == {"value": f"v-{stage}"}
            assert (tmp_path / f"out/{stage}.txt").read_text() == f"v-{stage}"
        events = run(store.ledger_read("conc"))
        assert sorted(e["stage"] for e in events) == stages
        assert run(Ledger(store, "conc").verify()).ok
    finally:
        store.close()


def test_eight_processes_on_one_stage_are_serialized_and_state_stays_whole(
    store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "alchemy_run.py").write_text(PROGRAM)
    values = [f"v{i}" for i in range(8)]
    results = deploy_at_once(tmp_path, store_url, [("prod", v) for v in values])
    # one created the stage, every other one found the previous run's state and updated it
    assert sorted(r["counts"]["create"] for r in results) == [0] * 7 + [2]
    assert sum(r["counts"]["update"] for r in results) == 14
    store = open_store(store_url)
    try:
        state = run(store.load("conc", "prod"))
        assert state.replayed == 0
        final = state.records["probe"]["outputs"]["value"]
        assert final in values
        assert {r["status"] for r in state.records.values()} <= {"created", "updated"}
        assert (tmp_path / "out/prod.txt").read_text() == final  # state matches the world
        assert state.meta["outputs"]["value"] == final
        events = run(store.ledger_read("conc"))
        assert [e["kind"] for e in events] == ["deploy"] * 8
        assert events[-1]["data"]["counts"]["update"] == 2
        assert run(Ledger(store, "conc").verify()).ok
        assert run(store.current_lock("conc", "prod")) is None
    finally:
        store.close()
    assert not list(tmp_path.glob("busy-*"))
