"""The report of `invsync loadtest`: the final table, the JSON file and the self-contained HTML page."""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROWS = (
    ("throughput (op/s)", "operations_per_s", "{:,.0f}"),
    ("latency p50 (ms)", "latency_p50_ms", "{:.2f}"),
    ("latency p99 (ms)", "latency_p99_ms", "{:.2f}"),
    ("latency p99.9 (ms)", "latency_p999_ms", "{:.2f}"),
    ("refused", "refused", "{:,.0f}"),
    ("oversold", "oversold", "{:,.0f}"),
    ("duplicates absorbed", "duplicates_absorbed", "{:,.0f}"),
    ("propagation p50 (ms)", "propagation_p50_ms", "{:.1f}"),
    ("propagation p99 (ms)", "propagation_p99_ms", "{:.1f}"),
    ("channel requests / order", "channel_requests_per_order", "{:.2f}"),
    ("server peak RSS (MB)", "peak_rss_mb", "{:,.0f}"),
)


def _fmt(value, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def print_table(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    systems = list(report["summary"])
    config = report["config"]
    table = Table(title=f"invsync loadtest: {config['scenario']} (seed {config['workload']['seed']}, "
                        f"median of {config['rounds']} round{'s' if config['rounds'] > 1 else ''})")
    table.add_column("figure")
    for system in systems:
        table.add_column(system, justify="right")
    for ratio in report["ratios"]:
        table.add_column(ratio, justify="right", style="cyan")
    for label, key, pattern in ROWS:
        cells = [_fmt(report["summary"][s].get(key), pattern) for s in systems]
        cells += [_fmt(report["ratios"][r].get(key), "{:.3g}×") for r in report["ratios"]]
        table.add_row(label, *cells)
    verdicts = []
    for s in systems:
        verdicts.append("[green]pass" if report["summary"][s]["ok"] else "[red]FAIL")
    table.add_row("verification", *verdicts, *[""] * len(report["ratios"]))
    console.print(table)
    for run in report["runs"]:
        for violation in run["violations"][:20]:
            console.print(f"[red]{run['system']} r{run['round']} VIOLATION {violation['check']}: "
                          f"{violation['subject']}: {violation['detail']}")
        for note in run.get("notes", []):
            console.print(f"{run['system']} r{run['round']}: {note}")


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


# --- HTML ---------------------------------------------------------------------------------------

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _svg_lines(series: list[tuple[str, list[tuple[float, float]]]], title: str, y_label: str,
               width: int = 760, height: int = 260) -> str:
    """A small line chart as inline SVG (log-free, linear axes, no external assets)."""
    pad_l, pad_r, pad_t, pad_b = 60, 150, 28, 36
    points = [p for _, pts in series for p in pts]
    if not points:
        return f"<p><em>{html.escape(title)}: no data</em></p>"
    x_max = max(p[0] for p in points) or 1.0
    y_max = max(p[1] for p in points) or 1.0
    y_max *= 1.05
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + plot_w * x / x_max

    def sy(y: float) -> float:
        return pad_t + plot_h * (1 - y / y_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{pad_l}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" y2="{pad_t + plot_h}" stroke="#444"/>',
             f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + plot_h}" stroke="#444"/>']
    for i in range(5):
        y = y_max * i / 4
        parts.append(f'<text x="{pad_l - 6}" y="{sy(y) + 4:.1f}" font-size="11" text-anchor="end">{y:.3g}</text>')
        parts.append(f'<line x1="{pad_l}" y1="{sy(y):.1f}" x2="{pad_l + plot_w}" y2="{sy(y):.1f}" stroke="#ddd"/>')
    for i in range(6):
        x = x_max * i / 5
        parts.append(f'<text x="{sx(x):.1f}" y="{pad_t + plot_h + 16}" font-size="11" text-anchor="middle">{x:.0f}</text>')
    parts.append(f'<text x="{pad_l + plot_w / 2}" y="{height - 4}" font-size="11" text-anchor="middle">seconds</text>')
    parts.append(f'<text x="14" y="{pad_t + plot_h / 2}" font-size="11" transform="rotate(-90 14 {pad_t + plot_h / 2})" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    for index, (name, pts) in enumerate(series):
        colour = _COLOURS[index % len(_COLOURS)]
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}"/>')
        ly = pad_t + 14 + 16 * index
        parts.append(f'<rect x="{pad_l + plot_w + 12}" y="{ly - 9}" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{pad_l + plot_w + 28}" y="{ly - 4}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_html(report: dict, path: Path) -> None:
    systems = list(report["summary"])
    rows = []
    header = "".join(f"<th>{html.escape(s)}</th>" for s in systems) + "".join(
        f"<th>{html.escape(r)}</th>" for r in report["ratios"])
    for label, key, pattern in ROWS:
        cells = "".join(f"<td>{_fmt(report['summary'][s].get(key), pattern)}</td>" for s in systems)
        cells += "".join(f"<td>{_fmt(report['ratios'][r].get(key), '{:.3g}×')}</td>" for r in report["ratios"])
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    verdict = "".join(
        f"<td class={'ok' if report['summary'][s]['ok'] else 'bad'}>{'pass' if report['summary'][s]['ok'] else 'FAIL'}</td>"
        for s in systems)
    rows.append(f"<tr><th>verification</th>{verdict}</tr>")
    charts = []
    for figure, index, label in (("latency p50", 2, "ms"), ("latency p99", 3, "ms"), ("answered per second", 1, "op/s")):
        series = [(f"{r['system']} r{r['round']}", [(row[0], row[index]) for row in r["timeline"]]) for r in report["runs"]]
        charts.append(_svg_lines(series, f"{figure} over time", label))
    checks = []
    for run in report["runs"]:
        items = "".join(
            f"<li class={'ok' if v == 'pass' else 'bad' if v == 'fail' else 'skip'}>{html.escape(k)}: {v}</li>"
            for k, v in run["checks"].items())
        violations = "".join(
            f"<li>{html.escape(v['check'])}: {html.escape(v['subject'])}: {html.escape(v['detail'])}</li>"
            for v in run["violations"][:50])
        checks.append(f"<h3>{html.escape(run['system'])}, round {run['round']}</h3><ul>{items}</ul>"
                      + (f"<p>Violations:</p><ul>{violations}</ul>" if violations else ""))
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>invsync loadtest: {html.escape(report['config']['scenario'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child {{ text-align: left; }}
.ok {{ color: #1a7f37; }} .bad {{ color: #c62828; font-weight: bold; }} .skip {{ color: #888; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>invsync loadtest: {html.escape(report['config']['scenario'])}</h1>
<p>{html.escape(report['started_at'])}, {report['machine']['cpus']} CPUs, {html.escape(report['machine']['platform'])};
overall: <strong class={'ok' if report['ok'] else 'bad'}>{'pass' if report['ok'] else 'FAIL'}</strong></p>
<pre>{html.escape(report['command'])}</pre>
<table><tr><th>figure</th>{header}</tr>{''.join(rows)}</table>
{''.join(charts)}
<h2>Verification</h2>{''.join(checks)}
<h2>Configuration</h2><pre>{html.escape(json.dumps(report['config'], indent=2))}</pre>
</body></html>
"""
    path.write_text(document)
