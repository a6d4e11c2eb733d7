"""/internal/health and /internal/ready: is the process alive, can it take orders."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api.app_keys import POOL, READINESS
from api.errors import error_response
from persistence.committer import DATABASE_ERRORS


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    if not request.app[READINESS].get("recovered"):
        return error_response(503, "not_ready", "recovery has not finished")
    try:
        await asyncio.wait_for(request.app[POOL].fetchval("SELECT 1"), timeout=2)
    except DATABASE_ERRORS:
        return error_response(503, "database_unreachable", "the database does not answer")
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/internal/health", health)
    app.router.add_get("/internal/ready", ready)
