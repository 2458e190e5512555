import json
import time
from urllib.parse import parse_qs, urlparse

from js import WebSocketPair, WebSocketRequestResponsePair
from workers import DurableObject, Response, WorkerEntrypoint


class ChatRoom(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        # "ping" gets "pong" from the runtime itself, without waking the object.
        ctx.setWebSocketAutoResponse(WebSocketRequestResponsePair.new("ping", "pong"))

    async def fetch(self, request):
        name = parse_qs(urlparse(request.url).query).get("name", ["anonymous"])[0]
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server, [name])
        server.serializeAttachment({"name": name})
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        who = ws.deserializeAttachment()["name"]
        if not isinstance(message, str):  # binary frames come back reversed, to the sender
            ws.send(bytes(message)[::-1])
            return
        if message == "/quit":  # the server ends the connection
            ws.close(4000, f"bye {who}")
            return
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        for other in self.ctx.getWebSockets():
            other.send(json.dumps({"from": who, "text": message, "n": count}))

    async def webSocketClose(self, ws, code, reason, was_clean):
        who = ws.deserializeAttachment()["name"]
        for other in self.ctx.getWebSockets():
            other.send(json.dumps({"left": who, "code": code, "reason": reason}))

    async def remind(self, delay_ms, text):
        await self.ctx.storage.put("reminder", text)
        await self.ctx.storage.setAlarm(time.time() * 1000 + delay_ms)
        return await self.ctx.storage.getAlarm()

    async def alarm(self):
        text = await self.ctx.storage.get("reminder")
        fired = await self.ctx.storage.get("fired") or []
        await self.ctx.storage.put("fired", [*fired, text])
        for ws in self.ctx.getWebSockets():
            ws.send(json.dumps({"reminder": text}))

    async def status(self):
        return {
            "count": await self.ctx.storage.get("count") or 0,
            "fired": await self.ctx.storage.get("fired") or [],
            "alarm": await self.ctx.storage.getAlarm(),
            "online": sorted(t for ws in self.ctx.getWebSockets() for t in self.ctx.getTags(ws)),
        }


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "rooms":
            room = self.env.ROOMS.getByName(parts[1])
            if parts[2] == "ws":
                if request.headers.get("upgrade") != "websocket":
                    return Response("expected Upgrade: websocket", status=426)
                return await room.fetch(request)
            if parts[2] == "remind":
                when = await room.remind(int(query["delay"][0]), query["text"][0])
                return Response.json({"alarm": when})
            if parts[2] == "status":
                return Response.json(await room.status())
        if url.path == "/echo":  # a WebSocket served by the worker itself, no Durable Object
            client, server = WebSocketPair.new()
            server.accept()

            def echo(event):
                server.send(f"echo: {event.data}")

            def closed(event):
                print(f"echo closed with {event.code}")

            server.addEventListener("message", echo)
            server.addEventListener("close", closed)
            return Response(None, status=101, web_socket=client)
        if url.path == "/plain":
            return Response("this path does not speak WebSocket")
        return Response("no such page", status=404)
