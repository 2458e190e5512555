"""Two workers of one app over service bindings (fetch and RPC), plus a Worker Loader.

The gateway reaches the auth worker through a binding to its resource (AUTH), through
a service binding by script name to its Admin entrypoint (ADMIN), and has a binding to
a worker that does not exist (BILLING) to show the error.
"""

import alchemy_nb
from alchemy_nb.cloudflare import Worker, WorkerService

app = alchemy_nb.App("services")


@app.program
def infra(stage):
    auth = Worker("auth", entry="auth/entry.py", vars={"SECRET_WORD": "open-sesame"})
    gateway = Worker(
        "gateway",
        entry="gateway/entry.py",
        bindings={"AUTH": auth},
        services={
            "ADMIN": WorkerService(service=f"services-auth-{stage.name}", entrypoint="Admin"),
            "BILLING": WorkerService(service="billing-that-does-not-exist"),
        },
        worker_loaders=["LOADER"],
    )
    return {"url": gateway.url, "auth": auth.url}
