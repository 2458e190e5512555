import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notes.settings")

import django  # noqa: E402
from workers import WorkerEntrypoint  # noqa: E402
from workers import wsgi  # noqa: E402

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await wsgi.fetch(application, request, self.env)
