"""The demo app: a Python Worker with D1, KV and R2, served locally on 127.0.0.1."""

import alchemy_nb
from alchemy_nb.cloudflare import D1Database, KVNamespace, R2Bucket, Worker

app = alchemy_nb.App("demo")


@app.program
def infra(stage):
    db = D1Database("db", migrations_dir="migrations")
    cache = KVNamespace("cache")
    files = R2Bucket("files")
    api = Worker(
        "api",
        entry="src/worker.py",
        bindings={"DB": db, "CACHE": cache, "FILES": files},
        vars={"GREETING": f"hello from {stage.name}", "RELEASE": "dev"},
    )
    return {"url": api.url}
