"""The Cloudflare target's public surface: sorted ``__all__``, lazy heavy imports."""

from __future__ import annotations

import subprocess
import sys


def test_public_packages_have_a_sorted_all() -> None:
    import alchemy_nb.cloudflare.api
    import alchemy_nb.testing.cloudflare

    for module in (alchemy_nb.cloudflare.api, alchemy_nb.testing.cloudflare):
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert getattr(module, name).__doc__, f"{module.__name__}.{name} has no docstring"


def test_the_client_imports_httpx_and_the_fake_its_server_only_when_used() -> None:
    code = (
        "import sys, alchemy_nb.cloudflare.api, alchemy_nb.testing.cloudflare; "
        "print(sorted(m for m in ('httpx', 'openapi_core', 'starlette', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_drift_and_credentials_render_without_the_token() -> None:
    from alchemy_nb.cloudflare.api import Credentials, Drift

    drift = Drift("cache", "cloudflare::KVNamespace", fields=(("title", "a", "<b>"),))
    bundle = drift._repr_mimebundle_()
    assert bundle["text/plain"] == "cache (cloudflare::KVNamespace): title: 'a' -> '<b>'"
    assert "&lt;b&gt;" in bundle["text/html"] and "<b>" not in bundle["text/html"]
    gone = Drift("files", "cloudflare::R2Bucket", gone=True)._repr_mimebundle_()
    assert "gone" in gone["text/plain"] and "gone" in gone["text/html"]
    creds = Credentials("very-secret-token", "a" * 32)
    assert all("very-secret" not in v for v in creds._repr_mimebundle_().values())
