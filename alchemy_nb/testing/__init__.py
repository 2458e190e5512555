"""Test helpers that alchemy-nb ships for its users.

- ``alchemy_nb.testing.cloudflare``: a contract fake of the Cloudflare REST API, so an app's
  tests can exercise the Cloudflare target without an account.
- a pytest fixture that runs ``alchemy-nb dev`` for a worker project and yields its base URL.
"""

from .._lazy import lazy_exports

__all__ = ["DevServer", "dev_fixture", "free_port"]

__getattr__, __dir__ = lazy_exports(globals(), {"._dev": __all__})
