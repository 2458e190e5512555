from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter()


@router.get("/api/health")
async def health():
    return {"ok": True}


@router.get("/api/plain", response_class=PlainTextResponse)
async def plain():
    return "plain text"
