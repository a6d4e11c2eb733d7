"""The aiohttp application: routes and middlewares, dependencies passed in."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from actors.gateway import StockGateway
from api import health_routes, monitoring_routes, openapi, order_routes, stock_routes
from api.app_keys import GATEWAY, METRICS, POOL, READINESS, SERVICE_INFO, STATUS
from api.auth import api_refusal, internal_refusal
from api.metrics import Metrics
from api.status import StatusReporter
from api.errors import edge_middleware

MAX_BODY = 1024 * 1024


def build_app(
    *,
    gateway: StockGateway,
    pool: asyncpg.Pool,
    token: str,
    readiness: dict,
    service_info: dict,
    channels=None,
    metrics: Metrics | None = None,
    status: StatusReporter | None = None,
    admin_token: str | None = None,
) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[edge_middleware(api_refusal(token), internal_refusal(admin_token))],
    )
    app[METRICS] = metrics if metrics is not None else Metrics()
    if status is not None:
        app[STATUS] = status
    app[GATEWAY] = gateway
    app[POOL] = pool
    app[READINESS] = readiness
    app[SERVICE_INFO] = service_info
    stock_routes.add_routes(app)
    order_routes.add_routes(app)
    health_routes.add_routes(app)
    monitoring_routes.add_routes(app)
    if channels is not None:
        from api import channel_routes, webhook_routes
        from api.channel_keys import CHANNELS

        app[CHANNELS] = channels
        channel_routes.add_routes(app)
        webhook_routes.add_routes(app)
    openapi.add_routes(app, service_info.get("version", "0"))
    return app
