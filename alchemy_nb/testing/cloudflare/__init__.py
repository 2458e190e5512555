"""A contract fake of the Cloudflare REST API, for alchemy-nb's tests and for yours.

``FakeCloudflare`` serves the endpoints the Cloudflare target uses on 127.0.0.1, with
in-memory state, validating every request and response against the vendor's OpenAPI
description (shipped as ``openapi.json`` here). Point the client at it with
``CLOUDFLARE_API_BASE_URL``. Needs ``pip install 'alchemy-nb[testing]'``.

Example::

    from alchemy_nb.testing.cloudflare import FakeCloudflare

    with FakeCloudflare() as fake:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", fake.base_url)
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", fake.token)
        await app.deploy("prod")            # a stage with target = "cloudflare"
        assert fake.scripts["myapp-api-prod"].bindings["DB"]["type"] == "d1"
        assert fake.scripts["myapp-api-prod"].active.split  # version id -> percentage
        assert not fake.violations

``mock_cloudflare()`` does the same with the environment set for you (like moto's
``mock_aws``). From a shell: ``python -m alchemy_nb.testing.cloudflare --port 0`` prints
its base URL.
"""

from __future__ import annotations

from ._fake import FakeCloudflare, FakeDeployment, FakeScript, FakeVersion, mock_cloudflare

__all__ = [
    "FakeCloudflare",
    "FakeDeployment",
    "FakeScript",
    "FakeVersion",
    "mock_cloudflare",
]
