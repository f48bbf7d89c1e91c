"""TensorBoard as a person sees it: deadcheck's charts in a real (headless) browser.

Needs Debian's chromium and chromium-driver and selenium (``.ci/run`` installs
them where it can); skipped, with the reason, only where they cannot be had.
``pytest --update-golden`` also refreshes the screenshot docs/tensorboard.md shows.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from deadcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

#: Text found anywhere on the page, shadow DOMs included (TensorBoard's plugins use them).
DEEP_TEXT = """
function walk(node) {
  let text = '';
  if (node.shadowRoot) text += walk(node.shadowRoot);
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) text += child.textContent + ' ';
    else text += walk(child);
  }
  if (node.tagName === 'IMG' && node.src) text += ' [img ' + node.src + '] ';
  return text;
}
return walk(document.body);
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(driver, texts: list[str], seconds: float = 60.0) -> str:
    deadline = time.monotonic() + seconds
    page = ""
    while time.monotonic() < deadline:
        page = " ".join(str(driver.execute_script(DEEP_TEXT)).split())
        if all(t in page for t in texts):
            return page
        time.sleep(0.5)
    missing = [t for t in texts if t not in page]
    raise AssertionError(f"not on the page after {seconds:.0f} s: {missing}")


@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no browser here: Debian's chromium and chromium-driver could not be installed",
)
def test_tensorboard_shows_deadchecks_charts_and_heatmap(tmp_path: Path, request) -> None:
    selenium = pytest.importorskip("selenium", reason="selenium is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    del selenium
    logs = tmp_path / "tb"
    result = CliRunner().invoke(
        main, ["scan", str(ROOT / "tests" / "targets" / "planted.py"), "--tensorboard", str(logs)]
    )
    assert result.exit_code == 0, result.stderr
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logs),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
        driver.get(f"{url}/#custom_scalars")
        page = _wait_for(driver, ["dead share of units, per site", "mean zero fraction, per site"])
        assert "findings by severity" in page
        shot = tmp_path / "tensorboard.png"
        driver.save_screenshot(str(shot))
        driver.get("about:blank")  # a fresh page load: a hash change alone keeps the old view
        driver.get(f"{url}/#images")
        # the heatmap's card, and its picture (an <img>) once loaded
        page = _wait_for(driver, ["tag: deadcheck/zero_fraction_heatmap", "[img "])
        assert "zero_fraction_heatmap" in page
        driver.get("about:blank")
        driver.get(f"{url}/#scalars")
        _wait_for(driver, ["deadcheck/dead_fraction/act2", "deadcheck/dormant_fraction/act1"])
        if request.config.getoption("--update-golden"):
            shutil.copy(shot, ROOT / "docs" / "images" / "tensorboard.png")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
