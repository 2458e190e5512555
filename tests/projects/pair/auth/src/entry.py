from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(f"auth saw {request.method} {request.url}")

    async def check(self, user):
        return {"user": user, "allowed": user == "ann"}
