"""The page on a phone (390×844) and in dark mode: every tab's main action reachable without scrolling sideways,
and the offline banner readable in both themes (contrast computed from the rendered colours)."""

import pytest
from playwright.sync_api import Browser, expect
from test_browser import SCREENSHOTS, SLOW

TABS = [("1 · Encode", "encode-button"), ("2 · Generate", "generate-button"), ("3 · img2img", "img2img-button"),
        ("4 · Inpainting", "inpaint-button"), ("5 · Noise explorer", "noise-button"), ("6 · Seed walk", "walk-button"),
        ("7 · Why latents", "why-button"), ("8 · Check yourself", "quiz-button")]
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 1000}}
CONTRAST = """element => {
  const rgb = value => value.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = ([r, g, b]) => {
    const linear = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  };
  const background = luminance(rgb(getComputedStyle(element).backgroundColor));
  const ratios = [...element.querySelectorAll('p, strong, span')].filter(e => e.textContent.trim()).map(e => {
    const text = luminance(rgb(getComputedStyle(e).color));
    return (Math.max(text, background) + 0.05) / (Math.min(text, background) + 0.05);
  });
  return Math.min(...ratios);
}"""


@pytest.fixture(params=["light", "dark"])
def theme(request):
    return request.param


@pytest.mark.parametrize("size", list(SIZES))
def test_every_tab_fits_the_screen_and_the_banner_is_readable(browser: Browser, app_url, theme, size):
    viewport = SIZES[size]
    context = browser.new_context(viewport=viewport, color_scheme=theme, is_mobile=size == "phone",
                                  has_touch=size == "phone")
    page = context.new_page()
    try:
        page.goto(app_url + ("?__theme=dark" if theme == "dark" else ""))
        expect(page.locator("#encode-button")).to_be_visible(timeout=SLOW)
        if theme == "dark":
            expect(page.locator("body.dark, .dark").first).to_be_attached()
        banner = page.locator("#offline-banner")
        assert banner.evaluate(CONTRAST) >= 4.5
        for tab, button in TABS:
            if page.get_by_role("tab", name=tab).is_visible():
                page.get_by_role("tab", name=tab).click()
            else:  # a phone shows the first tabs; the others are one tap away, under "More tabs"
                page.get_by_role("button", name="More tabs").click()
                page.get_by_role("button", name=tab, exact=True).last.click()
            action = page.locator(f"#{button}")
            action.scroll_into_view_if_needed()
            expect(action).to_be_visible()
            box = action.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (tab, box)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{tab}: the page scrolls sideways ({width} px)"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.get_by_role("tab", name="1 · Encode").click()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{size}-{theme}.png"), full_page=False)
    finally:
        context.close()
