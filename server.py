"""invsync: the composition root and the command line.

Everything is built here and passed in; nothing else reads settings or
creates long-lived objects. `invsync serve` runs the service, `invsync check`
verifies a database.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import structlog

VERSION = "0.1.0"


# --- settings ------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _add_database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("INVSYNC_DATA_DIR", ".invsync")),
        help="where the embedded PostgreSQL and the API token live (env INVSYNC_DATA_DIR; default ./.invsync)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="use this PostgreSQL instead of the embedded one (env DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invsync", description="Event-driven inventory sync.")
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default=os.environ.get("INVSYNC_LOG_FORMAT", "auto"))
    parser.add_argument(
        "--event-loop", choices=["uvloop", "asyncio"], default=os.environ.get("INVSYNC_EVENT_LOOP", "uvloop"),
        help="uvloop (default when installed) or the standard asyncio loop",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    _add_database_flags(serve)
    serve.add_argument("--host", default=os.environ.get("INVSYNC_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=_env_int("INVSYNC_PORT", 8080))
    serve.add_argument(
        "--shards", type=int, default=_env_int("INVSYNC_SHARDS", 4),
        help="shard actors (default 4: actors share one interpreter lock and commits are merged "
        "across owners, so more shards mean more thread wake-ups, not more parallelism)",
    )
    serve.add_argument(
        "--hot-threshold", type=int, default=_env_int("INVSYNC_HOT_THRESHOLD", 200),
        help="mutations per second that give a SKU its own actor (default 200)",
    )
    serve.add_argument(
        "--hot-idle-seconds", type=int, default=_env_int("INVSYNC_HOT_IDLE_SECONDS", 30),
        help="idle seconds after which a hot SKU goes back to its shard (default 30)",
    )
    serve.add_argument("--pool-size", type=int, default=_env_int("INVSYNC_POOL_SIZE", 20), help="database connections")
    serve.add_argument(
        "--request-timeout", type=float, default=float(os.environ.get("INVSYNC_REQUEST_TIMEOUT", "30")),
        help="seconds a request waits for the actors before it is answered 503 (default 30)",
    )

    check = commands.add_parser("check", help="verify the stored invariants of a database")
    commands.add_parser(
        "simulate-channels", add_help=False,
        help="play webhook/Shopify/WooCommerce channels on loopback (see --help after it)",
    )
    commands.add_parser(
        "loadtest", add_help=False,
        help="flash sale / catalog / marketplace load against invsync and baselines, verified (see --help after it)",
    )
    _add_database_flags(check)
    return parser


# --- logging --------------------------------------------------------------------------


class UtcTimestamper:
    """ISO 8601 UTC timestamps, formatting each second once (there is a line per order)."""

    def __init__(self) -> None:
        self._second = 0
        self._prefix = ""

    def __call__(self, _logger, _method, event: dict) -> dict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event


def configure_logging(fmt: str) -> None:
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    import msgspec

    encoder = msgspec.json.Encoder(enc_hook=str)

    def dumps(event: dict, **_: object) -> str:
        return encoder.encode(event).decode()

    renderer = structlog.processors.JSONRenderer(serializer=dumps) if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcTimestamper(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


# --- database ---------------------------------------------------------------------------


class Database:
    """The PostgreSQL we use: DATABASE_URL, or the embedded one in the data directory."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.embedded = None

    @property
    def kind(self) -> str:
        return "external" if self.database_url else "embedded"

    def start(self) -> str:
        if self.database_url:
            return self.database_url
        from persistence.embedded import start_embedded_postgres

        self.embedded = start_embedded_postgres(self.data_dir)
        return self.embedded.dsn

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None


def api_token(data_dir: Path) -> str:
    """INVSYNC_API_TOKEN, or the one generated at first start and kept in the data directory."""
    token = os.environ.get("INVSYNC_API_TOKEN")
    if token:
        return token
    path = data_dir / "api_token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    print(f"Generated API token (shown once, kept in {path}):\n  {token}", file=sys.stderr, flush=True)
    return token


# --- serve ------------------------------------------------------------------------------


class Service:
    """One node: pool, actors, HTTP server. Built from settings, started and stopped."""

    def __init__(self, args: argparse.Namespace, dsn: str, database_kind: str, token: str) -> None:
        self.args = args
        self.dsn = dsn
        self.database_kind = database_kind
        self.token = token
        self.port: int | None = None
        self.supervisor = None
        self._started = time.monotonic()

    async def start(self) -> None:
        import asyncpg
        from aiohttp import web

        from actors.gateway import StockGateway
        from actors.messages import SkuState, Tick
        from actors.routing import shard_of
        from actors.stock_owner import StockOwner
        from actors.supervisor import Supervisor
        from api.app import build_app
        from api.metrics import Metrics
        from api.status import OrderRate, StatusReporter
        from persistence.committer import Committer
        from persistence.migrate import apply_migrations
        from persistence.stock_store import load_states

        args = self.args
        log = structlog.get_logger("invsync")
        loop = asyncio.get_running_loop()
        self.pool = pool = await asyncpg.create_pool(self.dsn, min_size=2, max_size=args.pool_size, command_timeout=15)
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn)
        if applied:
            log.info("migrations applied", migrations=applied)

        states = await load_states(pool)
        partitions: list[dict[str, SkuState]] = [{} for _ in range(args.shards)]
        for state in states:
            partitions[shard_of(state.sku, args.shards)][state.sku] = state
        log.info("stock recovered", skus=len(states), seconds=round(time.monotonic() - self._started, 3))
        del states
        # What start-up loaded lives as long as the process: keep the cyclic
        # collector from walking it again on every full collection.
        gc.collect()
        gc.freeze()

        from channels.hub import ChannelHub

        self.metrics = metrics = Metrics()
        self.channels = ChannelHub(
            loop,
            pool,
            dead_letter_base_s=getattr(args, "dead_letter_base_s", 10.0),
            dead_letter_cap_s=getattr(args, "dead_letter_cap_s", 300.0),
            dead_letter_tick_s=getattr(args, "dead_letter_tick_s", 1.0),
            on_restart=lambda kind: metrics.actor_restarts.labels(kind).inc(),
        )
        await self.channels.start()
        metrics.channel_rows = self.channels.status_rows
        metrics.watch_propagation(self.channels.propagation)
        self.committer = committer = Committer(
            pool, publish=self.channels.publish, observe=metrics.observe_commit
        )
        owner_refs: dict[int, tuple[str, str, object]] = {}
        live_owners = lambda: [o for o in list(owner_refs.values()) if o[2].is_alive()]  # noqa: E731
        metrics.watch_actors(
            lambda: [(kind, ref) for kind, _, ref in live_owners()] + self.channels.actor_refs()
        )

        def owner_loader(index: int, exclude: frozenset[str], only: str | None):
            def load(skus):
                wanted = [only] if skus is None and only is not None else skus
                found = asyncio.run_coroutine_threadsafe(load_states(pool, wanted), loop).result(timeout=30)
                if skus is None and only is None:
                    found = [s for s in found if shard_of(s.sku, args.shards) == index and s.sku not in exclude]
                return found

            return load

        def start_owner(*, kind, index, states, supervisor, expect=(), exclude=frozenset(), only=None):
            for key, (_, _, old) in list(owner_refs.items()):
                if not old.is_alive():
                    del owner_refs[key]
            ref = StockOwner.start(
                kind=kind,
                index=index,
                loop=loop,
                submit=committer.submit,
                load_states=owner_loader(index, exclude, only),
                supervisor=supervisor,
                states=states,
                expect=expect,
            )
            name = str(index) if kind == "shard" else (only or next(iter(expect), "?"))
            owner_refs[id(ref)] = (kind, name, ref)
            return ref

        self.supervisor = supervisor = Supervisor.start(
            shards=args.shards,
            start_owner=start_owner,
            initial_states=partitions,
            hot_threshold=args.hot_threshold,
            hot_idle_seconds=args.hot_idle_seconds,
            on_restart=lambda kind: metrics.actor_restarts.labels(kind).inc(),
        )
        del partitions

        order_rate = OrderRate(
            lambda: sum(s.value for m in metrics.orders.collect() for s in m.samples if s.name.endswith("_total"))
        )

        async def tick() -> None:
            while True:
                await asyncio.sleep(1)
                supervisor.tell(Tick())
                order_rate.sample()

        self._ticker = asyncio.create_task(tick())
        self.gateway = StockGateway(loop, supervisor, committer, pool, timeout=args.request_timeout)
        self.readiness = {"recovered": False}
        app = build_app(
            gateway=self.gateway,
            pool=pool,
            token=self.token,
            readiness=self.readiness,
            service_info={"version": VERSION, "database": self.database_kind},
            channels=self.channels,
            metrics=metrics,
            status=StatusReporter(
                version=VERSION,
                database_kind=self.database_kind,
                pool=pool,
                owners=live_owners,
                metrics=metrics,
                order_rate=order_rate,
                channels=self.channels.status_rows,
            ),
            admin_token=os.environ.get("INVSYNC_ADMIN_TOKEN") or None,
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=30)
        await self._runner.setup()
        site = web.TCPSite(self._runner, args.host, args.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.readiness["recovered"] = True
        log.info(
            "invsync listening",
            url=f"http://{args.host}:{self.port}",
            database=self.database_kind,
            startup_seconds=round(time.monotonic() - self._started, 3),
            stop="press Ctrl+C or send SIGTERM",
        )

    async def stop(self) -> None:
        log = structlog.get_logger("invsync")
        log.info("stopping: draining requests")
        self.readiness["recovered"] = False
        await self._runner.cleanup()  # stops listening, waits for handlers in flight
        self._ticker.cancel()
        supervisor = self.supervisor
        await asyncio.get_running_loop().run_in_executor(None, lambda: supervisor.stop(block=True, timeout=30))
        await self.channels.stop()
        await self.pool.close()
        log.info("stopped")


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    database = Database(args.data_dir, args.database_url)
    dsn = await asyncio.to_thread(database.start)
    try:
        service = Service(args, dsn, database.kind, api_token(args.data_dir))
        await service.start()
        await stop.wait()
        await service.stop()
    finally:
        await asyncio.to_thread(database.stop)
    return 0


# --- check ------------------------------------------------------------------------------


async def check(args: argparse.Namespace) -> int:
    import asyncpg

    from persistence.check import check_database
    from persistence.migrate import apply_migrations

    database = Database(args.data_dir, args.database_url)
    dsn = await asyncio.to_thread(database.start)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
            report = await check_database(conn)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(database.stop)
    orders = ", ".join(f"{n} {status}" for status, n in sorted(report.orders.items())) or "none"
    print(f"{report.skus} SKUs, {report.events} stock events, orders: {orders}")
    for v in report.violations[:200]:
        print(f"VIOLATION {v.check}: {v.subject}: {v.detail}")
    if report.ok:
        print("OK: every invariant holds")
        return 0
    print(f"FAILED: {len(report.violations)} violations")
    return 1


# --- main -------------------------------------------------------------------------------


def _run(coro, event_loop: str) -> int:
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "simulate-channels":
        from channels.simulator import run_simulator

        return run_simulator(argv[1:])
    if argv and argv[0] == "loadtest":  # its own parser: see `invsync loadtest --help`
        from loadtest.cli import run_loadtest

        return run_loadtest(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(args.log_format)
    if args.command == "serve":
        return _run(serve(args), args.event_loop)
    if args.command == "check":
        return _run(check(args), args.event_loop)
    return 2


if __name__ == "__main__":
    sys.exit(main())
