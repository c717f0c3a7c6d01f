"""The web UI in a real browser: Debian's headless Chromium driven by Playwright.

Types a prompt, runs a short generation and waits for the result in the gallery. The screenshot
goes to tmp_path; with CLIPGUIDE_UPDATE_SCREENSHOT=1 it replaces docs/screenshot.png (the one
the README shows). Uses the shipped demo models when they are there, else tiny random models
offered under the name "demo" (the page looks the same, the picture is noise).

Needs: ``apt-get install -y chromium`` and ``pip install playwright`` (no ``playwright install``:
the system Chromium is used). Skipped, with the reason, when either is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(),
                       reason=f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="needs the playwright Python package (pip install playwright)"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from conftest import serve

    from clipguide import api, webui
    from clipguide.demo import CLIP_DIR, VQGAN_PATH

    if VQGAN_PATH.is_file() and (CLIP_DIR / "open_clip_config.json").is_file():
        models: dict[str, dict[str, str]] = {"generators": {"demo": "demo"}, "clips": {"demo": "demo"}}
        steps = 30
    else:
        from conftest import write_tiny_clip
        from tiny_models import write_tiny_vqgan_safetensors

        root = tmp_path_factory.mktemp("browser-models")
        models = {"generators": {"demo": str(write_tiny_vqgan_safetensors(root / "vqgan.safetensors"))},
                  "clips": {"demo": str(write_tiny_clip(root / "clip"))}}
        steps = 10
    limits = webui.Limits(max_size=64, max_steps=steps, max_seeds=2)
    blocks = webui.build_app(limits=limits, session=api.Session("cpu"), demo=True, **models)
    with serve(blocks):
        yield blocks.local_url


def test_generate_in_the_browser(url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_label("Prompt").first.fill("a red circle on a blue background")
            page.get_by_role("button", name="Generate").click()
            progress = page.get_by_label("Progress")
            expect(progress).to_have_value(re.compile(r"^done: \d+ steps"), timeout=180_000)
            # the result is in the gallery, served as the saved PNG
            result = page.locator("img[src*='.png']").last
            expect(result).to_be_visible()
            assert page.locator("img[src$='-0.png']").count() >= 1
            shot = SCREENSHOT if os.environ.get("CLIPGUIDE_UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
