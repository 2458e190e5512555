from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        body = await request.text()
        if request.method == "POST" and body == self.env.SECRET_WORD:
            return Response("welcome", headers={"set-cookie": "session=abc; HttpOnly"})
        return Response(f"wrong word at {request.url}", status=401)

    async def verify(self, token):
        if token == "Bearer abc":
            return {"user": "ann", "roles": ["admin"], "active": True}
        return None

    async def reverse(self, data):
        return data[::-1]

    async def explode(self, why):
        raise ValueError(f"cannot {why}")


class Admin(WorkerEntrypoint):
    async def stats(self):
        return {"service": "auth", "entrypoint": "Admin", "word_length": len(self.env.SECRET_WORD)}
