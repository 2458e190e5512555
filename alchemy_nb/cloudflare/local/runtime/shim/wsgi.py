"""The local stand-in for Cloudflare's ``wsgi`` module (see ``workers.wsgi``)."""

from workers.wsgi import build_environ, fetch

__all__ = ["build_environ", "fetch"]
