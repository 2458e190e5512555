import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blog.settings")

import django
from workers import WorkerEntrypoint, wsgi

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await wsgi.fetch(application, request, self.env)
