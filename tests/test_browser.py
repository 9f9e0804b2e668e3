"""report.html and nmt-explore pages in a real browser: headless Chromium (Debian's `chromium`,
/usr/bin/chromium) driven by Playwright. Skipped, with the reason, where either is missing;
.ci/run installs both. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_explore import _files

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("NMT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """The page loaded from file:// and ready, and the console errors seen so far."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.nmtReady === true", timeout=20_000)
    return page, errors


def highlighted(page) -> list[list[str]]:
    """Per heatmap, the source words marked as attended."""
    return page.eval_on_selector_all(
        "svg.heat",
        "maps => maps.map(m => [...m.querySelectorAll('text.src.hl')].map(t => t.dataset.word))",
    )


@pytest.fixture(scope="module")
def report_page(explore_runs, tmp_path_factory) -> Path:
    from nmt.report import make_report

    out = tmp_path_factory.mktemp("report")
    make_report([explore_runs], out, heatmaps=False, resamples=50)
    return out / "report.html"


def test_report_page_in_chromium(browser, report_page, tmp_path):
    page, errors = open_page(browser, report_page)
    # the leaderboard: one row per system, sortable
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2
    bleu = page.eval_on_selector_all("#leaderboard tbody tr", "rs => rs.map(r => r.dataset.system)")
    page.click("#leaderboard th[data-key=test_bleu]")  # numbers: largest first
    first = page.eval_on_selector_all(
        "#leaderboard tbody tr", "rs => rs.map(r => r.dataset.system)"
    )
    page.click("#leaderboard th[data-key=test_bleu]")  # again: the other way round
    second = page.eval_on_selector_all(
        "#leaderboard tbody tr", "rs => rs.map(r => r.dataset.system)"
    )
    assert sorted(first) == sorted(bleu) and second == first[::-1]
    # the charts: a click on a legend entry hides that system's line
    chart = page.locator("[data-chart=dev_bleu_vs_time]")
    n_points = chart.locator("circle.pt").count()
    chart.locator(".legend span").first.click()
    assert 0 < chart.locator("circle.pt").count() < n_points
    # the explorer: choose sentence 3 from the list, hover target words
    page.click("#sent-list li[data-sentence='2']")
    assert page.input_value("#sent-number") == "3"
    assert page.locator("svg.heat").count() == 2
    page.locator("svg.heat[data-system='0'] text.tgt").nth(0).hover()
    first_hl = highlighted(page)
    assert all(words for words in first_hl)  # marked in every heatmap
    page.locator("svg.heat[data-system='0'] text.tgt").nth(2).hover()
    second_hl = highlighted(page)
    assert all(words for words in second_hl)
    assert all(a != b for a, b in zip(first_hl, second_hl))  # and it changed in every one
    # a Transformer card picks its layer and head
    page.select_option(".card[data-system='1'] select.head", "0")
    assert page.locator("svg.heat").count() == 2
    # the details link of a row opens the run's details
    page.click("#leaderboard tbody tr:first-child a")
    assert page.locator("details[open]").count() == 1
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    page.close()


def test_gold_view_in_chromium(browser, explore_runs, tmp_path):
    from nmt.explore import main

    src, ref, gold = _files(explore_runs, tmp_path)
    out = tmp_path / "page.html"
    runs = [str(explore_runs / "attention=luong_general"), str(explore_runs / "model=transformer")]
    argv = [*runs, "--src", str(src), "--ref", str(ref), "--gold", str(gold), "--method", "argmax"]
    assert main([*argv, "-o", str(out)]) == 0
    page, errors = open_page(browser, out)
    page.select_option("#view", "gold")
    n_words = len(src.read_text().splitlines()[0].split())
    for k in range(2):  # the reversal gold: one sure link per word, drawn over each heatmap
        heat = page.locator(f"svg.heat[data-system='{k}']")
        assert heat.locator("rect.sure").count() == n_words
        assert heat.locator("circle.link").count() >= 1
    assert "AER" in page.locator(".card[data-system='0'] .scores").inner_text()
    # the reference is shared: hovering target word t marks source words in every system
    page.locator("svg.heat[data-system='1'] text.tgt").nth(0).hover()
    assert all(words for words in highlighted(page))
    page.screenshot(path=str(tmp_path / "gold.png"), full_page=True)
    assert errors == []
    page.close()
