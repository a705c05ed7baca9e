"""In Chromium: the live preview changes while the UNet runs, and the Cancel button stops the run at its next step.

Event-based: the test counts the UNet's calls on the server (the in-process app's models) instead of timing."""

import pytest
from playwright.sync_api import Page, expect
from test_browser import SLOW, open_tab, served_image


@pytest.fixture
def unet_calls(models):
    calls = []
    handle = models.unet.register_forward_hook(lambda *args: calls.append(1))
    yield calls
    handle.remove()


def wait_for_calls(page: Page, calls: list, count: int) -> None:
    deadline = 600  # polls of 50 ms: 30 s at most
    while len(calls) < count and deadline:
        page.wait_for_timeout(50)
        deadline -= 1
    assert len(calls) >= count, f"the run stopped after {len(calls)} UNet calls"


def test_the_live_preview_updates_and_cancel_stops_the_run(page: Page, app_url, unet_calls):
    page.goto(app_url)
    open_tab(page, "2 · Generate")
    page.locator("#generate-steps input[type=number]").fill("50")
    page.locator("#generate-button").click()
    wait_for_calls(page, unet_calls, 3)
    expect(page.locator("#generate-status")).to_contain_text("of 50", timeout=SLOW)
    first = page.locator("#generate-live img").first.get_attribute("src")
    wait_for_calls(page, unet_calls, 8)
    expect(page.locator("#generate-live img").first).not_to_have_attribute("src", first, timeout=SLOW)
    page.locator("#generate-cancel").click()
    # the page shows the run as stopped (its outputs are no longer marked as generating)...
    expect(page.locator("#generate-live .wrap.generating")).to_have_count(0, timeout=SLOW)
    stopped_at = len(unet_calls)
    # ...and the next run starts only once the cancelled one has left the models (one model job at a time)
    page.locator("#generate-steps input[type=number]").fill("2")
    page.locator("#generate-button").click()
    served_image(page, "#generate-final")
    expect(page.locator("#generate-status")).to_contain_text("Seed 42", timeout=SLOW)
    assert len(unet_calls) <= stopped_at + 1 + 2  # at most the step in flight, then the new run's 2 steps
    assert len(unet_calls) < 50
