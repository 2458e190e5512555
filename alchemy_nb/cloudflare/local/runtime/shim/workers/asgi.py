"""``workers.asgi``: the ASGI bridge under the SDK's name (see the ``asgi`` module).

Example::

    from workers import WorkerEntrypoint, asgi

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return await asgi.fetch(app, request, self.env)
"""

from asgi import ASGI, entrypoint, fetch, request_to_scope, websocket

__all__ = ["ASGI", "entrypoint", "fetch", "request_to_scope", "websocket"]


def __getattr__(name: str) -> object:
    import asgi

    return getattr(asgi, name)
