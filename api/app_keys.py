"""The dependencies handlers find on the application (set by server.py only)."""

from __future__ import annotations


import asyncpg
from aiohttp import web

from actors.gateway import StockGateway

GATEWAY = web.AppKey("gateway", StockGateway)
POOL = web.AppKey("pool", asyncpg.Pool)
READINESS = web.AppKey("readiness", dict)  # {"recovered": bool}
SERVICE_INFO = web.AppKey("service_info", dict)  # version, started_at, database kind

from api.metrics import Metrics  # noqa: E402

METRICS = web.AppKey("metrics", Metrics)

from api.status import StatusReporter  # noqa: E402

STATUS = web.AppKey("status", StatusReporter)
