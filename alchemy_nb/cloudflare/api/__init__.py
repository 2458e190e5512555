"""The Cloudflare target: alchemy-nb's resource kinds deployed to a real account through
the REST API (``pip install 'alchemy-nb[cloudflare]'``).

A stage runs here when its config says ``target = "cloudflare"``. Credentials come from
``CLOUDFLARE_API_TOKEN`` and ``CLOUDFLARE_ACCOUNT_ID`` (or the only account the token
sees), completed by a stored profile (``alchemy-nb cloudflare login --profile NAME``);
``CLOUDFLARE_API_BASE_URL`` points the client elsewhere (the contract fake in
``alchemy_nb.testing.cloudflare``).

Example::

    from alchemy_nb.cloudflare.api import CloudflareClient

    async with await CloudflareClient.from_env() as client:
        account = await client.account_id()

Versions and gradual deployments (canaries)::

    from alchemy_nb.cloudflare.api import list_versions, split

    new, old = (await list_versions("myapp-api-prod"))[:2]
    await split("myapp-api-prod", {old.id: 90, new.id: 10})
"""

from __future__ import annotations

from ._client import CloudflareClient, CloudflareError, Credentials, client_for
from ._drift import Drift, detect_drift
from ._profiles import (
    delete_profile,
    list_profiles,
    profiles_path,
    resolve_credentials,
    save_profile,
)
from ._versions import (
    WorkerDeployment,
    WorkerVersion,
    active_deployment,
    canary,
    list_deployments,
    list_versions,
    split,
)

__all__ = [
    "CloudflareClient",
    "CloudflareError",
    "Credentials",
    "Drift",
    "WorkerDeployment",
    "WorkerVersion",
    "active_deployment",
    "canary",
    "client_for",
    "delete_profile",
    "detect_drift",
    "list_deployments",
    "list_profiles",
    "list_versions",
    "profiles_path",
    "resolve_credentials",
    "save_profile",
    "split",
]
