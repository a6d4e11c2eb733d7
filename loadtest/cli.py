"""`invsync loadtest`: reproduce a flash sale (or a catalog, or a marketplace) against invsync and its
baselines with one command, verify every invariant at the end, and report the figures side by side.

    invsync loadtest --scenario flash-sale --orders 20000 --connections 64 --compare naive-db
    invsync loadtest --scenario catalog --skus 10000 --zipf 1.1 --duration 20
    invsync loadtest --scenario marketplace --channels 40 --compare polling --poll-interval 5
    invsync loadtest --scenario recovery --skus 1000000
    invsync loadtest --target http://host:8080 --token T --scenario catalog --orders 5000

Exit status: 0 when every verified invariant held (for every system; see
--allow-baseline-violations), 1 on a violation, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

DEFAULTS = {
    # scenario: skus, hot_skus, stock, orders, channels, channel kind, max qty, restock rate, connections
    "flash-sale": dict(skus=1, hot_skus=1, stock=1000, orders=20_000, channels=4, channel_kind="webhook",
                       max_qty=1, restock_rate=0.0, connections=64),
    "catalog": dict(skus=10_000, hot_skus=1, stock=1000, orders=20_000, channels=4, channel_kind="webhook",
                    max_qty=3, restock_rate=0.02, connections=64),
    "marketplace": dict(skus=100, hot_skus=1, stock=20, orders=5_000, channels=10, channel_kind="stores",
                        max_qty=2, restock_rate=0.0, connections=32),
    "recovery": dict(skus=1_000_000, hot_skus=1, stock=100, orders=0, channels=0, channel_kind="webhook",
                     max_qty=1, restock_rate=0.0, connections=1),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="invsync loadtest", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Scenario defaults (any flag overrides them):\n" + "\n".join(
                                    f"  {name}: " + ", ".join(f"{k}={v}" for k, v in d.items()) for name, d in DEFAULTS.items()))
    p.add_argument("--scenario", choices=list(DEFAULTS), default="flash-sale")
    w = p.add_argument_group("workload")
    w.add_argument("--skus", type=int, help="SKUs in the catalogue")
    w.add_argument("--hot-skus", type=int, help="flash-sale: SKUs that draw --hot-share of the demand")
    w.add_argument("--hot-share", type=float, default=0.9, help="flash-sale: share of orders on the hot SKUs (0.9)")
    w.add_argument("--stock", type=int, help="initial units per SKU")
    amount = w.add_mutually_exclusive_group()
    amount.add_argument("--orders", type=int, help="operations to send (orders, restocks and duplicates together)")
    amount.add_argument("--duration", type=float, help="seconds to send for (instead of --orders)")
    w.add_argument("--connections", type=int, help="concurrent connections (closed loop: the concurrency)")
    w.add_argument("--rate", type=float, default=None, help="open loop: operations per second (closed loop when absent)")
    w.add_argument("--lines-per-order", type=int, default=1)
    w.add_argument("--max-qty", type=int, help="units per line: uniform in 1..max")
    w.add_argument("--duplicate-rate", type=float, default=0.0, help="share of operations that resend an earlier order")
    w.add_argument("--restock-rate", type=float, help="catalog, marketplace: share of operations that are restocks")
    w.add_argument("--restock-units", type=int, default=20)
    w.add_argument("--zipf", type=float, default=None, metavar="S", help="catalog/marketplace: Zipf demand with exponent S (uniform when absent)")
    w.add_argument("--seed", type=int, default=1)
    c = p.add_argument_group("channels")
    c.add_argument("--channels", type=int, help="simulated channels")
    c.add_argument("--channel-kind", choices=["webhook", "shopify", "woocommerce", "stores"],
                   help="stores = Shopify and WooCommerce alternating (marketplace needs stores: they send order webhooks)")
    c.add_argument("--channel-latency-ms", type=float, default=0.0)
    c.add_argument("--channel-jitter-ms", type=float, default=0.0)
    c.add_argument("--channel-error-rate", type=float, default=0.0, help="share of pushes answered 500")
    c.add_argument("--channel-rate-limit", type=float, default=None, help="requests/s per channel; 429 beyond")
    c.add_argument("--settle", type=float, default=30.0, help="seconds the channels get to converge after the load")
    s = p.add_argument_group("systems")
    s.add_argument("--compare", default="", help="baselines to run too: naive-db,polling")
    s.add_argument("--only-baselines", action="store_true", help="run the --compare systems without invsync")
    s.add_argument("--poll-interval", type=float, default=5.0, help="polling baseline: seconds between syncs")
    s.add_argument("--rounds", type=int, default=1, help="alternating runs per system; the report shows medians")
    s.add_argument("--target", default=None, help="a running invsync instead of starting one")
    s.add_argument("--token", default=os.environ.get("INVSYNC_API_TOKEN"), help="API token for --target")
    s.add_argument("--database-url", default=None, help="--target's database, for `invsync check` and exact snapshots")
    s.add_argument("--run-tag", default=None, help="prefix of SKUs, order ids and channel ids (default: LT, or a fresh tag with --target)")
    s.add_argument("--server-arg", action="append", default=[], help="extra argument for `invsync serve` (repeatable)")
    s.add_argument("--allow-baseline-violations", action="store_true",
                   help="report the baselines' violations but exit 0 if invsync kept every invariant")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, help="write the report as JSON (see loadtest/README.md)")
    o.add_argument("--html", type=Path, default=None, help="write a self-contained HTML report")
    o.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    o.add_argument("--keep", action="store_true", help="keep the temporary directories (databases, logs)")
    return p


def config_from_args(args: argparse.Namespace):
    from loadtest import workload as wl
    from loadtest.harness import SYSTEMS, Config

    d = DEFAULTS[args.scenario]

    def pick(name: str):
        value = getattr(args, name)
        return d[name] if value is None else value

    compare = [s.strip() for s in args.compare.split(",") if s.strip()]
    for s in compare:
        if s not in SYSTEMS or s == "invsync":
            raise ValueError(f"--compare takes naive-db and/or polling, not {s!r}")
    systems = ([] if args.only_baselines else ["invsync"]) + compare
    if not systems:
        raise ValueError("nothing to run")
    if args.target and compare:
        raise ValueError("--compare starts its own baselines; it cannot be combined with --target")
    if args.target and not args.token:
        raise ValueError("--target needs --token (or INVSYNC_API_TOKEN)")
    scenario = args.scenario
    if scenario == "marketplace" and "naive-db" in systems:
        raise ValueError("naive-db takes orders on its own API only; marketplace compares with polling")
    channels = pick("channels")
    kind = pick("channel_kind")
    if scenario == "marketplace" and kind == "webhook":
        raise ValueError("marketplace channels must be stores (shopify, woocommerce or stores): they report their sales")
    orders = args.orders
    duration = args.duration
    if orders is None and duration is None:
        orders = d["orders"]
    run_tag = args.run_tag if args.run_tag is not None else (f"LT{int(time.time()) % 10**8}" if args.target else "")
    spec = wl.WorkloadSpec(
        scenario=scenario,
        skus=pick("skus"),
        hot_skus=min(pick("hot_skus"), pick("skus")),
        stock=pick("stock"),
        orders=orders,
        duration_s=duration,
        lines_per_order=args.lines_per_order,
        max_qty=pick("max_qty"),
        duplicate_rate=args.duplicate_rate,
        restock_rate=pick("restock_rate"),
        restock_units=args.restock_units,
        zipf=args.zipf,
        hot_share=args.hot_share,
        channels=channels,
        seed=args.seed,
        prefix=run_tag or "LT",
    )
    wl.validate(spec)
    return Config(
        scenario=scenario, workload=spec, systems=systems, connections=pick("connections"), rate=args.rate,
        rounds=args.rounds, channels=channels, channel_kind=kind,
        channel_latency_ms=args.channel_latency_ms, channel_jitter_ms=args.channel_jitter_ms,
        channel_error_rate=args.channel_error_rate, channel_rate_limit=args.channel_rate_limit,
        settle_s=args.settle, poll_interval_s=args.poll_interval, target=args.target, token=args.token,
        database_url=args.database_url, server_args=args.server_arg, keep=args.keep,
        allow_baseline_violations=args.allow_baseline_violations, run_tag=run_tag,
    )


def run_loadtest(argv: list[str]) -> int:
    """Entry point of `invsync loadtest`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scenario == "recovery":
        from loadtest.recovery import run_recovery

        return run_recovery(args)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    from rich.console import Console

    from loadtest.harness import run
    from loadtest.report import print_table, write_html, write_json

    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        report = _run_async(run(config, progress_enabled=progress))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_table(report, Console())
    if args.json:
        write_json(report, args.json)
    if args.html:
        write_html(report, args.html)
    return 0 if report["ok"] else 1


def _run_async(coro):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
