"""The studio's HTTP answers and request bodies, shared by its routes (server.py, jam.py): the security headers on
every answer, one-line errors, and bodies read with a size cap."""

from __future__ import annotations

import json

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse

from midi_rwkv.studio.session import StudioError

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


def ok(data) -> JSONResponse:
    return JSONResponse(data, headers=HEADERS)


async def read_body(request: HttpRequest, limit: int, what: str = "the file") -> bytes:
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 2**10} KB"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise StudioError(f"{what} is larger than {size}", 413)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise StudioError(f"{what} is larger than {size}", 413)
    return bytes(data)


async def read_json(request: HttpRequest) -> dict:
    try:
        data = json.loads(await read_body(request, 64 * 1024, "the request") or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise StudioError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise StudioError("the request body must be a JSON object")
    return data
