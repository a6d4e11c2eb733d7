"""The dashboard renders real figures in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.http_client import Client, run

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    """Chromium from Debian's packages, installed here when missing (CI runs as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and apt-get cannot install it here (not root or no apt)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.skip(f"chromium could not be installed from Debian's packages: {result.stderr[-300:]}")
    return shutil.which("chromium") or pytest.skip("chromium installed but not on PATH")


def test_dashboard_renders_in_headless_chromium(service, tmp_path):
    browser = chromium()

    async def orders():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("dash", 3)
            for i in range(5):
                await c.order(f"d{i}", [("dash", 1)])

    run(orders())
    url = service.url + "/internal/"
    common = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert 'data-rendered="true"' in dom.stdout, dom.stderr[-2000:]
    assert '<div class="value" id="accepted">3</div>' in dom.stdout
    assert '<div class="value" id="refused">2</div>' in dom.stdout
    assert "<td>shard 0</td>" in dom.stdout
    assert '<div id="error"></div>' in dom.stdout
    shot = tmp_path / "dashboard.png"
    subprocess.run([*common, "--window-size=1200,900", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("INVSYNC_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["INVSYNC_KEEP_SCREENSHOT"])
