"""/internal/metrics (Prometheus), /internal/status (JSON), /internal/ (dashboard)."""

from __future__ import annotations

from importlib import resources

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api.app_keys import METRICS, STATUS

_DASHBOARD = resources.files("api").joinpath("dashboard.html").read_bytes()


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    report = await request.app[STATUS].report()
    return web.Response(body=msgspec.json.encode(report), content_type="application/json")


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(body=_DASHBOARD, content_type="text/html", headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/internal/metrics", metrics)
    app.router.add_get("/internal/status", status)
    app.router.add_get("/internal/", dashboard)
