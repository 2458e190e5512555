"""The promote runbook end to end vs a bare two-cell papermill notebook, side by side.

Each repetition, on this machine and kernel (this interpreter's, as the runner uses it):

- **bare**: ``papermill.execute_notebook`` of a two-cell notebook (``x = 1`` / ``print(x)``)
  with the same kernelspec and settings: the floor, dominated by the kernel start;
- **promote**: ``run_runbook("promote", {"to": "prod"})`` on a copy of examples/demo on the
  local target: parameters validated, gate and policies checked, the release deployed to
  prod, health probed, the notebook scrubbed and saved, its digest recorded in the ledger.

Before each promote (untimed) a new release is deployed to staging and approved by a
reviewer, so every timed promote deploys for real. The sides alternate; the medians and
their ratio are printed (target: promote ≤ 2.5 × bare).

    .venv/bin/python benchmarks/bench_runbook.py            # 5 repetitions
    .venv/bin/python benchmarks/bench_runbook.py --reps 3 --json

Results go to benchmarks/results/runbook.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()

    import nbformat
    import papermill as pm
    from nbformat.v4 import new_code_cell, new_notebook

    import alchemy_nb
    from alchemy_nb.promotion import Pipeline
    from alchemy_nb.runbooks import ensure_kernelspec, run_runbook

    os.environ.update({"ALCHEMY_ACTOR": "alice", "ALCHEMY_BRANCH": "main"})
    work = Path(tempfile.mkdtemp(prefix="bench-runbook-"))
    app_dir = work / "app"
    shutil.copytree(DEMO, app_dir, ignore=shutil.ignore_patterns(".alchemy"))
    bare = work / "bare.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("print(x)")]), bare)
    kernel = ensure_kernelspec()
    app = alchemy_nb.load_program(app_dir / "alchemy_run.py")
    worker = app_dir / "src" / "worker.py"
    source = worker.read_text()
    samples: dict[str, list[float]] = {"bare": [], "promote": []}
    try:
        for rep in range(args.reps + 1):  # the first round warms caches and is not counted
            worker.write_text(source + f"\n# release {rep}\n")  # a new release each time
            pipeline = Pipeline(alchemy_nb.load_program(app_dir / "alchemy_run.py"))
            staged = asyncio.run(pipeline.deploy("staging"))
            asyncio.run(pipeline.request_gate("prod"))
            asyncio.run(pipeline.approve("prod", staged.release, actor="bob"))

            started = time.perf_counter()
            pm.execute_notebook(
                str(bare),
                str(work / "bare-out.ipynb"),
                kernel_name=kernel.name,
                progress_bar=False,
                shutdown_kernel="immediate",
                **kernel.engine_kwargs(work / "bare.kernel.log"),
            )
            bare_s = time.perf_counter() - started

            started = time.perf_counter()
            result = run_runbook("promote", {"to": "prod"}, app_dir=app_dir, out_dir=work / "out")
            promote_s = time.perf_counter() - started
            if not result.ok:
                raise SystemExit(f"promote failed: {result.message}")
            label = "warm-up" if rep == 0 else f"rep {rep}"
            print(f"{label}: bare {bare_s:.2f} s, promote {promote_s:.2f} s", file=sys.stderr)
            if rep:
                samples["bare"].append(bare_s)
                samples["promote"].append(promote_s)
    finally:
        for stage in ("prod", "staging"):
            asyncio.run(app.destroy(stage))
        shutil.rmtree(work, ignore_errors=True)

    bare_med = statistics.median(samples["bare"])
    promote_med = statistics.median(samples["promote"])
    ratio = promote_med / bare_med
    report = {
        "reps": args.reps,
        "bare_median_s": round(bare_med, 3),
        "promote_median_s": round(promote_med, 3),
        "ratio": round(ratio, 2),
        "target": 2.5,
        "samples": samples,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "runbook.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"bare two-cell papermill run   {bare_med:6.2f} s (median of {args.reps})")
        print(f"promote runbook, end to end   {promote_med:6.2f} s")
        print(f"ratio                         {ratio:6.2f}x  (target <= 2.5x)")
    return 0 if ratio <= 2.5 else 1


if __name__ == "__main__":
    sys.exit(main())
