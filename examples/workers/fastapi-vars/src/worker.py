from pathlib import Path

from api.routes import router  # a sibling package next to main
from fastapi import FastAPI, Request
from pydantic import BaseModel
from workers import WorkerEntrypoint

app = FastAPI()
app.include_router(router)
GREETING = (Path(__file__).parent / "data" / "greeting.txt").read_text().strip()


@app.get("/")
async def root():
    return {"message": GREETING}


@app.get("/env")
async def env(req: Request):
    return {"message": f"Here is an environment variable: {req.scope['env'].MESSAGE}"}


class Item(BaseModel):
    name: str
    price: float
    tax: float | None = None


@app.post("/items/")
async def create_item(item: Item):
    return item


@app.put("/items/{item_id}")
async def update_item(item_id: int, item: Item, q: str | None = None):
    result = {"item_id": item_id, **item.model_dump()}
    if q:
        result["q"] = q
    return result


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        import asgi

        return await asgi.fetch(app, request.js_object, self.env)
