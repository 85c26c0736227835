"""Issue 17: the HTML report in a real browser (headless Chromium driven by Selenium): no console
errors, every plot drawn, a zoom changes the view, a screenshot written.

Skips, with the reason, where Chromium, chromedriver or selenium is missing (Debian:
``apt-get install chromium chromium-driver``; ``pip install selenium``). Set ``AGENTWATT_SCREENSHOTS``
to a folder to keep the screenshots.
"""
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import mix_scenario

TINY = mix_scenario(name="browser", seed=3)


def _browser_paths() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if chrome is None or driver is None:
        pytest.skip("no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    return chrome, driver


@pytest.fixture(scope="module")
def browser():
    chrome, driver = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    yield d
    d.quit()


def _shot(browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    keep = os.environ.get("AGENTWATT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def _open(browser, report: Path) -> list[dict]:
    browser.get(report.resolve().as_uri())
    browser.get_log("browser")   # drop what came before this page
    browser.get(report.resolve().as_uri())
    # on a loaded machine the inline plotly.js (several MB) can still be drawing when get() returns:
    # wait until every plot div has its SVG (or 60 s), then read them
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 60, poll_frequency=0.25).until(lambda d: d.execute_script("""
        const g = document.querySelectorAll('.plotly-graph-div');
        return g.length > 0 && Array.from(g).every(x => x.querySelector('svg.main-svg g.trace'));"""))
    return browser.execute_script("""
        return Array.from(document.querySelectorAll('.plotly-graph-div')).map(g => ({
            id: g.id, traces: g.querySelectorAll('svg.main-svg g.trace').length,
            drawn: g.querySelectorAll('svg.main-svg path').length,
            w: g.getBoundingClientRect().width, h: g.getBoundingClientRect().height}))""")


def test_run_report_in_chromium(browser, run_cli, tmp_path):
    (tmp_path / "s.toml").write_text(TINY, encoding="utf-8")
    r = run_cli(["simulate", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--no-plots"], obj={})
    assert r.exit_code == 0, r.output
    plots = _open(browser, tmp_path / "out" / "report.html")
    assert {p["id"] for p in plots} >= {"power", "racks", "lat_ttft", "lat_call", "lat_session", "timeline"}
    for p in plots:   # every plot rendered: traces drawn in a non-empty SVG
        assert p["traces"] > 0 and p["drawn"] > 5 and p["w"] > 300 and p["h"] > 200, p
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # zoom: drag a box across the middle of the power plot; the x range must shrink
    before = browser.execute_script("return document.getElementById('power').layout.xaxis.range.slice()")
    drag = browser.find_element("css selector", "#power .nsewdrag")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", drag)
    from selenium.webdriver.common.action_chains import ActionChains
    w = drag.size["width"]
    ActionChains(browser).move_to_element_with_offset(drag, -w // 4, 0).click_and_hold() \
        .move_by_offset(w // 4, 0).move_by_offset(w // 8, 0).release().perform()
    after = browser.execute_script("return document.getElementById('power').layout.xaxis.range.slice()")
    assert after[1] - after[0] < 0.7 * (before[1] - before[0]), (before, after)
    _shot(browser, tmp_path, "run_report.png")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_sweep_report_in_chromium(browser, run_cli, tmp_path):
    (tmp_path / "s.toml").write_text(TINY, encoding="utf-8")
    r = run_cli(["sweep", str(tmp_path / "s.toml"), "--set", "fleet.replicas=1,2", "--seeds", "2", "--serial",
                 "--no-plots", "--out", str(tmp_path / "sw")], obj={})
    assert r.exit_code == 0, r.output
    plots = _open(browser, tmp_path / "sw" / "report.html")
    assert "pareto" in {p["id"] for p in plots}
    assert all(p["traces"] > 0 and p["drawn"] > 3 for p in plots), plots
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    _shot(browser, tmp_path, "sweep_report.png")
