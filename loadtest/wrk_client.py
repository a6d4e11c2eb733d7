"""The same closed-loop order load as ``load_client``, driven by ``wrk``.

Why it exists: on a 2-core machine the load generator shares the CPU with
the server and PostgreSQL.  The Python client spends ~80-130 µs of CPU per
request, wrk ~11 µs, so with the Python client the faster system is handicapped
more (measured on 2 cores, medians of 2 rounds: naive 3.2k/5.8k orders/s hot/
uniform with the Python client, 3.7k/7.6k with wrk; invsync hot 4.4k vs 5.3k).
Install with ``loadtest/install_wrk.sh``.

Differences from the Python client: duration only (no exact order count);
latency covers every response wrk saw, including non-201/409 ones; SKU
choice uses LuaJIT's generator, so the stream is deterministic per seed but
not the same stream as the Python client's.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import tempfile
from pathlib import Path

import msgspec

from loadtest.load_client import LoadResult, LoadSpec, MachineCpu

SCRIPT_PATH = Path(__file__).with_name("wrk_orders.lua")
RESULT_MARKER = "WRK_RESULT "
WRK_TIMEOUT = "60s"


class WrkNotInstalled(RuntimeError):
    pass


class _WrkSummary(msgspec.Struct):
    accepted: int
    refused: int
    unexpected: int
    requests: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    mean_us: float
    max_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkNotInstalled("wrk not found; run loadtest/install_wrk.sh")
    return path


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _run_wrk(
    spec: LoadSpec, skus_file: Path, duration_s: float, seed: int, prefix: str, threads: int
) -> tuple[_WrkSummary, float]:
    """One wrk invocation: (summary, CPU seconds wrk used)."""
    command = [
        wrk_path(), f"-t{threads}", f"-c{spec.connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout", WRK_TIMEOUT, "-s", str(SCRIPT_PATH), spec.base_url,
        "--", str(skus_file), spec.token, str(seed), prefix, spec.channel, str(spec.qty),
    ]
    cpu_before = _children_cpu_s()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    cpu = _children_cpu_s() - cpu_before
    text = output.decode(errors="replace")
    for line in text.splitlines():
        if line.startswith(RESULT_MARKER):
            return msgspec.json.decode(line[len(RESULT_MARKER):], type=_WrkSummary), cpu
    raise RuntimeError(f"wrk exited with {process.returncode} without a result:\n{text}")


async def run_wrk_load(spec: LoadSpec, threads: int = 1) -> LoadResult:
    """Apply ``spec`` (duration mode) with wrk and return the same result as ``run_load``."""
    if spec.duration_s is None or spec.total_orders is not None:
        raise ValueError("the wrk client runs for a duration only")
    with tempfile.TemporaryDirectory(prefix="wrk-skus-") as tmp:
        skus_file = Path(tmp) / "skus.txt"
        skus_file.write_text("\n".join(spec.skus) + "\n")
        if spec.warmup_s > 0:
            # Own order-id space so warm-up orders are never replays of
            # measured ones; own seed so the measured stream does not shift.
            await _run_wrk(spec, skus_file, spec.warmup_s, spec.seed + 1_000_003,
                           f"{spec.order_id_prefix}-warm", threads)
        machine = MachineCpu()
        summary, cpu_s = await _run_wrk(spec, skus_file, spec.duration_s, spec.seed, spec.order_id_prefix, threads)
        machine_cpu_percent = machine.busy_percent()
    elapsed = summary.duration_us / 1e6
    errors_by_kind = {
        name: count
        for name, count in (
            ("unexpected_status", summary.unexpected),
            ("connect", summary.connect_errors),
            ("read", summary.read_errors),
            ("write", summary.write_errors),
            ("timeout", summary.timeouts),
        )
        if count
    }
    errors = sum(errors_by_kind.values())
    return LoadResult(
        accepted=summary.accepted,
        refused=summary.refused,
        errors=errors,
        sent=summary.accepted + summary.refused + errors,
        elapsed_s=elapsed,
        orders_per_s=(summary.accepted + summary.refused) / elapsed if elapsed > 0 else 0.0,
        mean_ms=summary.mean_us / 1000,
        p50_ms=summary.p50_us / 1000,
        p90_ms=summary.p90_us / 1000,
        p99_ms=summary.p99_us / 1000,
        p999_ms=summary.p999_us / 1000,
        max_ms=summary.max_us / 1000,
        connections=spec.connections,
        processes=threads,
        client_cpu_percent=100 * cpu_s / elapsed if elapsed > 0 else 0.0,
        machine_cpu_percent=machine_cpu_percent,
        errors_by_kind=errors_by_kind,
    )
