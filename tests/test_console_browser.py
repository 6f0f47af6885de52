"""The console in a real browser: the system's Chromium, headless, driven by Playwright, against ``tailor serve``.

Each page is photographed into the test's output directory (``tmp_path``, or
``TAILOR_SCREENSHOTS`` when set) for a person to look at; with
``TAILOR_UPDATE_SCREENSHOTS=1`` the Try-a-user page also replaces the
README's picture, ``docs/img/console.png``. A missing Chromium skips these
tests, and fails them under ``TAILOR_REQUIRE_BROWSER=1`` (as in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import no_browser
from server_process import KEY, Server, eventually, servers

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("overview", "rules", "try", "playground", "experiments")
WAIT_MS = 60_000  # the bound of every wait in the page (reached only when something is broken)
README_PICTURE = ROOT / "docs" / "img" / "console.png"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        no_browser("no chromium on PATH: apt-get install chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert problems == [], problems  # no script error on any page


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The retail example served without a key, after simulated shoppers have used it."""
    where = tmp_path_factory.mktemp("console-live")
    shutil.copytree(ROOT / "rulesets" / "retail", where / "retail")
    with servers(where) as start:
        server = start(where / "retail", "--decision-log", str(where / "log"), "--drift-interval", "1", key=None)
        simulated = subprocess.run(
            [sys.executable, "-m", "tailor.cli", "simulate", "--url", server.url, "--users", "200"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert simulated.returncode == 0, simulated.stderr
        yield server


def shots(tmp_path: Path) -> Path:
    given = os.environ.get("TAILOR_SCREENSHOTS")
    folder = Path(given) if given else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def psi_points(server: Server, at_least: int = 0) -> list[dict[str, Any]] | None:
    """The points of p_click's drift history the server holds now that have a PSI (None: fewer than ``at_least``)."""
    response = server.http.get("/v1/models/p_click/drift/history", headers=server.auth)
    assert response.status_code == 200, response.text
    found = [point for point in response.json()["points"] if point["psi"] is not None]
    return found if len(found) >= at_least else None


def visit(page: Any, server: Server, name: str) -> None:
    page.goto(f"{server.url}/#{name}")
    page.wait_for_selector(f"body[data-loaded={name}]")


def test_every_page_shows_live_data(page: Any, live: Server, tmp_path: Path) -> None:
    folder = shots(tmp_path)
    visit(page, live, "overview")
    version = live.ruleset()["version"]
    assert version in page.inner_text("#overview-ruleset")
    assert "ready" in page.inner_text("#overview-health")
    assert page.locator("#overview-latency svg").count() == 4  # plan, fetch, finish, total
    page.screenshot(path=folder / "overview.png", full_page=True)

    visit(page, live, "rules")
    assert page.locator("#rules-table tbody tr").count() == len(live.ruleset()["rules"])
    first_order = page.locator('#rules-table tr[data-rule="first_order"]')
    assert "rule first_order" in first_order.inner_text()
    assert int(first_order.locator("td").nth(6).inner_text()) > 0  # impressions from the KPIs
    page.select_option("#slot-filter", "hero")
    assert {page.locator("#rules-table tbody tr").nth(i).locator("td").nth(1).inner_text() for i in range(5)} == {
        "hero"
    }
    page.get_by_role("button", name="Priority").click()
    priorities = [int(p) for p in page.locator("#rules-table tbody tr td:nth-child(3)").all_inner_texts()]
    assert priorities == sorted(priorities)
    page.select_option("#slot-filter", "")
    page.screenshot(path=folder / "rules.png", full_page=True)

    visit(page, live, "try")
    page.fill("#try-features", 'user.tier="gold"')
    page.click("#try-run")
    page.wait_for_selector("#decision")
    assert page.locator('mark.truth-true:has-text("context.page")').count() >= 1
    page.screenshot(path=folder / "try.png", full_page=True)
    if os.environ.get("TAILOR_UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=README_PICTURE, clip={"x": 0, "y": 0, "width": 1280, "height": 900})

    visit(page, live, "playground")
    page.wait_for_selector("#lint-status.ok")
    page.click("#play-diff")
    page.wait_for_selector("#diff-summary")
    assert "0 of" in page.inner_text("#diff-summary")  # the live file against itself
    page.screenshot(path=folder / "playground.png", full_page=True)

    drawn = eventually(lambda: psi_points(live, at_least=2), "two points of drift history")
    visit(page, live, "experiments")
    chart = page.locator('[data-model="p_click"] svg[aria-label="PSI over time"]')
    assert len(drawn) <= chart.locator("circle").count() <= len(psi_points(live) or ())  # the server's points, drawn
    assert chart.locator("circle title").first.text_content().startswith(f"{drawn[0]['at']}: PSI")
    experiment = page.locator('[data-experiment="hero_test"]')
    assert "Sample-ratio mismatch" in experiment.inner_text()
    assert experiment.locator("li").count() >= 1  # the plain-language conclusions
    assert page.locator('[data-model="p_click"] svg').count() == 2  # drift over time, calibration
    page.screenshot(path=folder / "experiments.png", full_page=True)
    for name in PAGES:
        assert (folder / f"{name}.png").stat().st_size > 10_000


def test_the_playground_shows_a_syntax_error_with_its_caret_and_clears_it(page: Any, live: Server) -> None:
    visit(page, live, "playground")
    page.select_option("#play-file", "home.rules")
    page.wait_for_function("document.getElementById('editor').value.includes('rule vip_early_access')")
    page.wait_for_selector("#lint-status.ok")
    editor = page.locator("#editor")
    fixed = editor.input_value()
    broken = fixed.replace("  then show hero_vip", "  show hero_vip")
    editor.fill("")
    editor.press_sequentially(broken[-200:], delay=0)  # typed, as a person would, ...
    editor.fill(broken)  # ... then the whole broken file
    page.wait_for_selector("#lint-status.error")
    message = page.inner_text("#lint-output")
    assert "home.rules:17:3: error: expected 'then'" in message
    assert "17 |   show hero_vip in hero\n   |   ^^^^" in message
    editor.fill(fixed)
    page.wait_for_selector("#lint-status.ok")
    assert page.inner_text("#lint-output") == ""


def test_try_a_user_shows_what_decide_answers(page: Any, live: Server) -> None:
    for user in ("u42", "u2", "erin"):
        visit(page, live, "try")
        page.fill("#try-user", user)
        page.fill("#try-context", "page=product\ncategory=Electronics")
        page.click("#try-run")
        page.wait_for_selector("#decision")
        shown = {
            row.get_attribute("data-slot"): row.get_attribute("data-content")
            for row in page.locator("#decision tbody tr").all()
        }
        decided = live.http.post(
            "/v1/decide", json={"user_id": user, "context": {"page": "product", "category": "Electronics"}}
        ).json()
        assert shown == {slot: answer["content"] if answer else "" for slot, answer in decided["slots"].items()}


def test_deciding_with_the_playground_version_uses_the_scratch_rules(page: Any, live: Server) -> None:
    visit(page, live, "playground")
    page.select_option("#play-file", "home.rules")
    page.wait_for_function("document.getElementById('editor').value.includes('rule vip_early_access')")
    editor = page.locator("#editor")
    editor.fill(editor.input_value().replace('when vip and context.page == "home"', 'when context.page == "home"'))
    page.wait_for_selector("#lint-status.ok")
    page.click("#play-decide")  # for the Try-a-user page's user, u42
    page.wait_for_selector('#decision tr[data-slot="hero"]')
    assert page.get_attribute('#decision tr[data-slot="hero"]', "data-content") == "hero_vip"
    assert "playground" in page.inner_text("#decision caption")


def test_keyboard_labels_and_contrast(page: Any, live: Server) -> None:
    visit(page, live, "overview")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # Overview, then Rules
    assert page.evaluate("document.activeElement.textContent") == "Rules"
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-loaded=rules]")
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
            .filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.id)"""
    )
    assert unlabelled == []
    for name in PAGES:
        visit(page, live, name)
        assert page.evaluate(CONTRAST) == [], name


# The text elements whose colour against their background is under WCAG AA's 4.5:1.
CONTRAST = """
(() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const e of document.querySelectorAll('body *')) {
    if (e.closest('svg') || !e.offsetParent) continue;
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(background(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const text = e.textContent.trim().slice(0, 30);
    if (ratio < 4.5) low.push(`${e.tagName}.${e.className}: ${ratio.toFixed(2)} "${text}"`);
  }
  return low;
})()
"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    where = tmp_path_factory.mktemp("console-keyed")
    shutil.copytree(ROOT / "rulesets" / "retail", where / "retail")
    with servers(where) as start:
        yield start(where / "retail", "--settle-ms", "50"), where / "retail"


def test_with_a_key_no_data_shows_until_it_is_given_and_rollback_needs_it(
    page: Any, keyed: tuple[Server, Path], tmp_path: Path
) -> None:
    server, rules = keyed
    page.goto(f"{server.url}/#overview")
    page.wait_for_selector("#key-form:not([hidden])")
    assert page.is_hidden("#main")
    assert page.locator("#rules-table tbody tr").count() == 0
    assert server.ruleset()["version"] not in page.content()  # nothing of the rules reached the page
    page.screenshot(path=shots(tmp_path) / "key.png")

    page.fill("#key-input", "not-the-key")
    page.click("#key-form button")
    page.wait_for_selector("#key-message:has-text('refused')")
    assert page.is_hidden("#main")

    first = server.ruleset()["version"]
    home = rules / "home.rules"
    home.write_text(home.read_text().replace("priority 30", "priority 31"))
    second = eventually(lambda: (v := server.ruleset()["version"]) != first and v, "the edit to be served")

    page.fill("#key-input", KEY)
    page.click("#key-form button")
    page.wait_for_selector("body[data-loaded=overview]")
    assert second in page.inner_text("#overview-ruleset")
    assert page.evaluate("sessionStorage.getItem('tailor.console.key')") == KEY  # kept in this tab alone
    assert page.evaluate("localStorage.length") == 0

    page.evaluate("sessionStorage.clear()")  # the key forgotten: the button must not work
    page.click("#rollback")
    page.wait_for_selector("#key-form:not([hidden])")
    assert server.ruleset()["version"] == second

    page.fill("#key-input", KEY)
    page.click("#key-form button")
    page.wait_for_selector("body[data-loaded=overview]")
    page.click("#rollback")
    page.wait_for_selector("#rollback-message.ok")
    assert server.ruleset()["version"] == first
    assert first in page.inner_text("#rollback-message")
