import json

from django.http import JsonResponse
from django.urls import path

from .models import Post


def posts(request):
    if request.method == "POST":
        data = json.loads(request.body)
        post = Post.objects.create(title=data["title"], published=data.get("published", False))
        return JsonResponse({"id": post.id}, status=201)
    return JsonResponse(
        {"posts": list(Post.objects.order_by("id").values("id", "title", "published"))}
    )


def published(request):
    return JsonResponse({"count": Post.objects.filter(published=True).count()})


urlpatterns = [path("posts", posts), path("posts/published", published)]
