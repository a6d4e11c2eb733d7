"""`invsync loadtest` end to end with small numbers: it passes its own verification and writes the
documented JSON (loadtest/README.md) and a self-contained HTML page.  No timing is asserted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadtest.cli import run_loadtest

TOP_FIELDS = {"format", "version", "started_at", "duration_s", "command", "machine", "config", "runs", "summary", "ratios", "ok"}
RUN_FIELDS = {
    "system", "round", "scenario", "ok", "violations", "checks", "throughput", "latency_ms", "duplicates",
    "propagation", "channels", "server", "dead_letters", "timeline", "notes",
}
THROUGHPUT_FIELDS = {"operations", "answered", "elapsed_s", "operations_per_s", "accepted", "refused", "oversold",
                     "oversold_units", "restocks", "nothing_shown", "skipped", "errors", "errors_by_kind"}
LATENCY_FIELDS = {"p50", "p90", "p99", "p999", "max", "mean"}
PROPAGATION_FIELDS = {"p50_ms", "p90_ms", "p99_ms", "max_ms", "changes_measured", "changes_unconfirmed"}
CHANNEL_FIELDS = {"count", "kinds", "requests", "requests_per_order", "converged", "settle_s", "poller_polls"}
SERVER_FIELDS = {"peak_rss_mb", "cpu_percent", "database_cpu_percent"}
SUMMARY_FIELDS = {"operations_per_s", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "refused", "oversold",
                  "duplicates_absorbed", "propagation_p50_ms", "propagation_p99_ms", "channel_requests_per_order",
                  "peak_rss_mb", "runs", "ok"}
CHECKS = {"no_negative_stock", "accepted_within_supply", "acknowledged_orders_stored", "nothing_unacknowledged_counted",
          "stock_conservation", "invsync_check", "channels_converged", "dead_letters_accounted"}


def _assert_documented_shape(report: dict, systems: list[str]) -> None:
    assert TOP_FIELDS <= set(report)
    assert report["format"] == "invsync-loadtest" and report["version"] == 1
    assert [r["system"] for r in report["runs"]] == systems
    for run in report["runs"]:
        assert RUN_FIELDS <= set(run), run.keys()
        assert THROUGHPUT_FIELDS <= set(run["throughput"])
        assert LATENCY_FIELDS <= set(run["latency_ms"])
        assert PROPAGATION_FIELDS <= set(run["propagation"])
        assert CHANNEL_FIELDS <= set(run["channels"])
        assert SERVER_FIELDS <= set(run["server"])
        assert set(run["checks"]) == CHECKS
        assert run["violations"] == [], run["violations"]
        t = run["throughput"]
        assert t["answered"] + t["skipped"] + t["errors"] == t["operations"]
    for system in systems:
        assert SUMMARY_FIELDS <= set(report["summary"][system])


def test_flash_sale_against_invsync_and_naive_db(tmp_path: Path) -> None:
    out, page = tmp_path / "report.json", tmp_path / "report.html"
    code = run_loadtest([
        "--scenario", "flash-sale", "--orders", "400", "--stock", "150", "--connections", "8", "--channels", "2",
        "--duplicate-rate", "0.05", "--compare", "naive-db", "--settle", "20", "--progress", "off",
        "--json", str(out), "--html", str(page),
    ])
    report = json.loads(out.read_text())
    assert code == 0, [r["violations"] for r in report["runs"]]
    _assert_documented_shape(report, ["invsync", "naive-db"])
    invsync = report["runs"][0]
    assert invsync["checks"]["invsync_check"] == "pass"
    assert invsync["checks"]["channels_converged"] == "pass"
    assert invsync["throughput"]["accepted"] == 150  # the stock sold out exactly
    assert invsync["duplicates"]["sent"] == invsync["duplicates"]["absorbed"] > 0
    assert report["runs"][1]["checks"]["invsync_check"] == "skipped"  # the baseline keeps no audit log
    assert "invsync/naive-db" in report["ratios"]
    html = page.read_text()
    assert "<svg" in html and "latency p99 over time" in html
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)


@pytest.mark.parametrize("compare", [[], ["polling"]], ids=["invsync", "invsync+polling"])
def test_marketplace_store_webhooks(tmp_path: Path, compare: list[str]) -> None:
    out = tmp_path / "report.json"
    args = ["--scenario", "marketplace", "--orders", "300", "--skus", "20", "--stock", "5", "--channels", "2",
            "--connections", "8", "--duplicate-rate", "0.05", "--settle", "20", "--progress", "off", "--json", str(out)]
    if compare:
        args += ["--compare", ",".join(compare), "--poll-interval", "0.5"]
    code = run_loadtest(args)
    report = json.loads(out.read_text())
    assert code == 0, [r["violations"] for r in report["runs"]]
    _assert_documented_shape(report, ["invsync", *compare])
    run = report["runs"][0]
    assert run["channels"]["kinds"] == ["shopify", "woocommerce"]
    assert run["throughput"]["accepted"] + run["throughput"]["oversold"] > 0
