"""Synchronous Django views that read and write D1 through run_sync, as on Cloudflare."""

import json

from django.http import HttpResponse, JsonResponse
from pyodide.ffi import run_sync
from workers import env  # the bindings, importable at module level


def notes(request):
    if request.method == "POST":
        data = json.loads(request.body)
        result = run_sync(
            env.DB.prepare("INSERT INTO notes (title, body, tag) VALUES (?, ?, ?)")
            .bind(data["title"], data.get("body", ""), data.get("tag"))
            .run()
        )
        return JsonResponse({"id": result["meta"]["last_row_id"]}, status=201)
    rows = run_sync(env.DB.prepare("SELECT id, title, tag FROM notes ORDER BY id").all())
    return JsonResponse({"notes": [row.to_py() for row in rows["results"]]})


def note(request, note_id):
    row = run_sync(env.DB.prepare("SELECT * FROM notes WHERE id = ?").bind(note_id).first())
    if row is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse(row.to_py())


def about(request):
    return HttpResponse(f"{env.SITE_NAME} on Django", content_type="text/plain")
