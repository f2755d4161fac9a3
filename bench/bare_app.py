"""The ceiling for the webhook benchmark: a bare Starlette endpoint on uvicorn.

``POST /cron/fire`` reads the body and answers 202 with a small JSON body, as
the real webhook does on a won claim — no signature check, no store, no
ledger. What the same load client gets from it is the most any Starlette app
on this machine can do; the real webhook is reported as a ratio to it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def fire(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted"}, status_code=202)


app = Starlette(routes=[Route("/cron/fire", fire, methods=["POST"])])
