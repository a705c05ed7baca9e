"""A visitor's session in Chromium: every tab and both hand-offs used through the page, outputs checked, screenshots
saved. What depends on the dtype (streamed generation, the hand-offs, inpainting) runs on every configuration of the
matrix (conftest.CONFIGURATIONS); page behaviour that does not runs on the default one (test_api.py calls those
endpoints in every configuration)."""

import io
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from conftest import MATRIX_SIDE
from PIL import Image
from playwright.sync_api import Page, expect

from latent_demo.images import fit_size
from latent_demo.ui.examples import asset

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SLOW = 60_000  # ms: model work on 2 CPU cores, with the queue


def opened(page: Page, url: str, screenshot_suffix: str):
    """The page, opened on the app, recording every request it makes (all must stay on this machine)."""
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.screenshot_suffix = screenshot_suffix
    page.goto(url)
    expect(page.locator("#encode-button")).to_be_visible(timeout=SLOW)
    yield page
    outside = [url for url in requests if urlparse(url).scheme in ("http", "https", "ws", "wss")
               and urlparse(url).hostname not in LOCAL_HOSTS]
    assert not outside, f"the page made requests outside 127.0.0.1: {outside[:5]}"


@pytest.fixture
def visitor(page: Page, configured_app_url, configuration):
    """A visitor of the app of each configuration in turn."""
    yield from opened(page, configured_app_url, "" if configuration == "default" else f"-{configuration}")


@pytest.fixture
def plain_visitor(page: Page, app_url):
    """A visitor of the float32 app, for what does not depend on the dtype (texts, error messages)."""
    yield from opened(page, app_url, "")


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}{page.screenshot_suffix}.png"), full_page=True)


def served_image(page: Page, selector: str) -> np.ndarray:
    """Wait for an output image and fetch the file the browser shows (checks it is a PNG, not blank)."""
    image = page.locator(f"{selector} img").first
    expect(image).to_be_visible(timeout=SLOW)
    response = page.request.get(image.get_attribute("src"))
    assert response.ok and response.body()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
    assert pixels.std() > 1, f"{selector} shows a blank image"
    return pixels


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_intro_and_offline_banner(plain_visitor: Page):
    visitor = plain_visitor
    expect(visitor.locator("#offline-banner")).to_contain_text("Offline model in use")
    expect(visitor.locator("#intro")).to_contain_text("786,432")
    shot(visitor, "0-intro")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_encode_an_example_with_one_click(visitor: Page):
    visitor.locator("button:has(img[src*='astronaut'])").first.click()
    expect(visitor.locator("#encode-channels img")).to_have_count(4, timeout=SLOW)
    expect(visitor.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)
    served_image(visitor, "#encode-reconstruction")
    served_image(visitor, "#encode-error")
    shot(visitor, "1-encode")
    visitor.locator("#send-inpaint").click()  # the encoded image moves on to the Inpainting tab
    expect(visitor.locator("#inpaint-editor canvas").first).to_be_visible(timeout=SLOW)


def test_generate_streams_and_shows_the_trajectory(visitor: Page):
    open_tab(visitor, "2 · Generate")
    visitor.locator("#generate-steps input[type=number]").fill("3")
    visitor.locator("#generate-width input[type=number]").fill(str(MATRIX_SIDE))
    visitor.locator("#generate-height input[type=number]").fill(str(MATRIX_SIDE))
    visitor.locator("#generate-button").click()
    final = served_image(visitor, "#generate-final")
    assert final.shape == (MATRIX_SIDE, MATRIX_SIDE, 3)
    expect(visitor.locator("#generate-trajectory img")).to_have_count(4, timeout=SLOW)  # 3 steps + decoded
    expect(visitor.locator("#generate-status")).to_contain_text("UNet per step")
    shot(visitor, "2-generate")


def test_an_error_is_a_readable_message_and_marks_no_input(plain_visitor: Page):
    visitor = plain_visitor
    open_tab(visitor, "2 · Generate")
    visitor.locator("#generate-prompt textarea").fill("   ")
    visitor.locator("#generate-button").click()
    expect(visitor.get_by_text("the prompt is only spaces").first).to_be_visible(timeout=SLOW)
    for field in ("#generate-seed", "#generate-prompt", "#generate-steps"):
        expect(visitor.locator(field)).not_to_contain_text("Error")
    shot(visitor, "2-generate-error")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_an_empty_prompt_generates_unconditionally(visitor: Page):
    open_tab(visitor, "2 · Generate")
    visitor.locator("#generate-prompt textarea").fill("")
    visitor.locator("#generate-steps input[type=number]").fill("2")
    visitor.locator("#generate-width input[type=number]").fill("128")
    visitor.locator("#generate-height input[type=number]").fill("128")
    visitor.locator("#generate-button").click()
    served_image(visitor, "#generate-final")
    expect(visitor.locator("#generate-status")).to_contain_text("unconditional generation", timeout=SLOW)


def encode_example(visitor: Page) -> None:
    visitor.locator("button:has(img[src*='astronaut'])").first.click()
    expect(visitor.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)


def test_encode_then_img2img_in_one_click(visitor: Page):
    encode_example(visitor)
    visitor.locator("#send-img2img").click()
    expect(visitor.locator("#img2img-button")).to_be_visible(timeout=SLOW)  # the hand-off switched the tab
    visitor.locator("#img2img-button").click()  # nothing else: the latents and every default are there
    result = served_image(visitor, "#img2img-result")
    assert result.shape == (MATRIX_SIDE, MATRIX_SIDE, 3)
    expect(visitor.locator("#img2img-status")).to_contain_text("Started at step", timeout=SLOW)
    for field in ("#img2img-seed", "#img2img-prompt", "#img2img-source"):
        expect(visitor.locator(field)).not_to_contain_text("Error")
    shot(visitor, "3-img2img-from-encode")


def paint_a_stroke(visitor: Page, editor) -> None:
    canvas = editor.locator(".pixi-target canvas").first
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
    visitor.mouse.move(x, y)
    visitor.mouse.down()
    visitor.mouse.move(x + box["width"] * 0.2, y + box["height"] * 0.2, steps=5)
    visitor.mouse.up()


def paint_the_handed_over_image(visitor: Page):
    """After "Use this image for inpainting": wait for the editor, pick the brush if needed, paint a stroke."""
    editor = visitor.locator("#inpaint-editor")
    expect(editor.locator(".pixi-target canvas").first).to_be_visible(timeout=SLOW)
    if not editor.get_by_role("button", name="Brush Size").is_visible():
        editor.get_by_role("button", name="Brush").first.click()
    expect(editor.get_by_role("button", name="Brush Size")).to_be_visible(timeout=SLOW)
    paint_a_stroke(visitor, editor)


def test_encode_then_inpaint_with_a_painted_mask(visitor: Page):
    encode_example(visitor)
    visitor.locator("#send-inpaint").click()  # the encoded image moves on to the Inpainting tab
    paint_the_handed_over_image(visitor)
    visitor.locator("#inpaint-button").click()
    grid = served_image(visitor, "#inpaint-grid")
    assert grid.shape == (MATRIX_SIDE, MATRIX_SIDE, 3)
    assert set(np.unique(grid)) == {0, 255} and (grid == 255).mean() > 0.01
    served_image(visitor, "#inpaint-result")
    expect(visitor.locator("#inpaint-status")).to_contain_text("latent blending")
    shot(visitor, "4-inpaint-from-encode")


def test_img2img_from_an_upload(visitor: Page):
    open_tab(visitor, "3 · img2img")
    visitor.locator("#img2img-input input[type=file]").set_input_files(asset("chelsea.png"))
    expect(visitor.locator("#img2img-input img")).to_be_visible(timeout=SLOW)
    visitor.locator("#img2img-prompt textarea").fill("a tiger")
    visitor.locator("#img2img-button").click()
    result = served_image(visitor, "#img2img-result")
    width, height = fit_size(451, 300, MATRIX_SIDE, 64, 8)  # chelsea.png fitted to the limit and multiples of 8
    assert result.shape == (height, width, 3)
    expect(visitor.locator("#img2img-status")).to_contain_text("Started at step")
    served_image(visitor, "#img2img-noised")
    shot(visitor, "3-img2img")


def test_inpaint_with_a_drawn_mask(plain_visitor: Page):
    """The upload path of the editor, once: every configuration paints a mask in the Encode hand-off test."""
    visitor = plain_visitor
    open_tab(visitor, "4 · Inpainting")
    editor = visitor.locator("#inpaint-editor")
    expect(editor.get_by_role("button", name="Upload")).to_be_visible(timeout=SLOW)
    editor.locator("input[type=file]").set_input_files(asset("astronaut.png"))
    expect(editor.get_by_role("button", name="Brush Size")).to_be_visible(timeout=SLOW)
    paint_a_stroke(visitor, editor)
    visitor.locator("#inpaint-prompt textarea").fill("a sunflower")
    visitor.locator("#inpaint-button").click()
    grid = served_image(visitor, "#inpaint-grid")
    assert set(np.unique(grid)) == {0, 255} and (grid == 255).mean() > 0.01
    served_image(visitor, "#inpaint-result")
    expect(visitor.locator("#inpaint-status")).to_contain_text("latent blending")
    shot(visitor, "4-inpaint")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_noise_explorer_slider(visitor: Page):
    open_tab(visitor, "5 · Noise explorer")
    slider = visitor.locator("#noise-timestep input[type=number]")
    slider.fill("800")
    slider.press("Enter")
    visitor.locator("#noise-button").click()
    expect(visitor.locator("#noise-note")).to_contain_text("t = 800", timeout=SLOW)
    served_image(visitor, "#noise-decoded")
    expect(visitor.locator("#noise-channels img")).to_have_count(4)
    shot(visitor, "5-noise")
    visitor.locator("#predict-prompt textarea, #predict-prompt input").first.fill("a cat")
    visitor.locator("#predict-button").click()  # the same image, t = 800 and seed as above
    expect(visitor.locator("#predict-note")).to_contain_text("At t = 800", timeout=SLOW)
    expect(visitor.locator("#predict-channels img")).to_have_count(12)
    served_image(visitor, "#predict-denoised")
    expect(visitor.locator("#predict-curve")).to_contain_text("training loss", timeout=SLOW)
    shot(visitor, "5-noise-predicted")
    visitor.locator("#space-button").click()
    expect(visitor.locator("#space-note")).to_contain_text("after encode → decode", timeout=SLOW)
    served_image(visitor, "#space-latent")
    served_image(visitor, "#space-pixel")
    expect(visitor.locator("#space-rebuilt img")).to_have_count(3)
    shot(visitor, "5-noise-space")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_seed_walk(visitor: Page):
    open_tab(visitor, "6 · Seed walk")
    visitor.locator("#walk-frames input[type=number]").fill("3")
    visitor.locator("#walk-width input[type=number]").fill("128")
    visitor.locator("#walk-height input[type=number]").fill("128")
    visitor.locator("#walk-button").click()
    expect(visitor.locator("#walk-gallery img")).to_have_count(3, timeout=SLOW)
    expect(visitor.locator("#walk-status")).to_have_text("3 frames", timeout=SLOW)
    shot(visitor, "6-seed-walk")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_a_png_dropped_in_fills_the_generate_controls(visitor: Page, tmp_path):
    from latent_demo.png_parameters import GenerationSettings, png_info

    made = GenerationSettings(prompt="a red kite over dunes", negative_prompt="fog", steps=3, scheduler="DDIM",
                              guidance=4.5, seed=31337, width=96, height=64, model="elsewhere")
    png = tmp_path / "made-elsewhere.png"
    Image.new("RGB", (96, 64), "orange").save(png, pnginfo=png_info(made))
    open_tab(visitor, "2 · Generate")
    visitor.get_by_text("Read settings from a PNG").click()
    visitor.locator("#png-info-input input[type=file]").set_input_files(str(png))
    expect(visitor.locator("#png-info-note")).to_contain_text("Read from the PNG's latent-demo settings", timeout=SLOW)
    expect(visitor.locator("#generate-prompt textarea")).to_have_value("a red kite over dunes")
    expect(visitor.locator("#generate-seed input")).to_have_value("31337")
    expect(visitor.locator("#generate-steps input[type=number]")).to_have_value("3")
    expect(visitor.locator("#generate-width input[type=number]")).to_have_value("96")
    shot(visitor, "2-generate-png-info")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_a_result_is_sent_on_with_its_latents_and_its_seed_reused(visitor: Page):
    open_tab(visitor, "2 · Generate")
    for side in ("width", "height"):
        visitor.locator(f"#generate-{side} input[type=number]").fill(str(MATRIX_SIDE))
    visitor.locator("#generate-random input").check()
    visitor.locator("#generate-button").click()
    generated = served_image(visitor, "#generate-final")
    used = visitor.locator("#generate-used-seed input").input_value()
    visitor.locator("#generate-reuse-seed").click()
    expect(visitor.locator("#generate-seed input")).to_have_value(used)
    expect(visitor.locator("#generate-random input")).not_to_be_checked()
    visitor.locator("#generate-send-img2img").click()  # the image's latents, not the image: no re-encode
    expect(visitor.locator("#img2img-source input:checked")).to_have_value("the latents from the Encode tab")
    visitor.locator("#img2img-button").click()
    expect(visitor.locator("#img2img-status")).to_contain_text("From the latents of the Generate tab", timeout=SLOW)
    assert served_image(visitor, "#img2img-result").shape == generated.shape
    visitor.locator("#img2img-send-inpaint").click()
    paint_the_handed_over_image(visitor)
    visitor.locator("#inpaint-button").click()
    assert served_image(visitor, "#inpaint-result").shape == generated.shape  # img2img's image was the background
    shot(visitor, "4-inpaint-from-img2img")


@pytest.mark.parametrize("configuration", ["default"], indirect=True)  # page behaviour; every dtype: test_api
def test_generated_latents_download_and_decode_again(visitor: Page, tmp_path):
    import json

    from safetensors import safe_open

    open_tab(visitor, "2 · Generate")
    for side in ("width", "height"):
        visitor.locator(f"#generate-{side} input[type=number]").fill(str(MATRIX_SIDE))
    visitor.locator("#generate-button").click()
    generated = served_image(visitor, "#generate-final")
    visitor.locator("#generate-latents-button").click()
    link = visitor.locator("#generate-latents a").first
    expect(link).to_be_visible(timeout=SLOW)
    saved = tmp_path / "generated-latents.safetensors"
    saved.write_bytes(visitor.request.get(link.get_attribute("href")).body())
    with safe_open(str(saved), "pt") as stored:
        settings = json.loads(stored.metadata()["settings"])
        assert stored.get_tensor("latents").shape == (1, 4, MATRIX_SIDE // 8, MATRIX_SIDE // 8)
    assert settings["seed"] == 42 and settings["width"] == MATRIX_SIDE
    open_tab(visitor, "1 · Encode")
    visitor.locator("#decode-input input[type=file]").set_input_files(str(saved))
    visitor.locator("#decode-button").click()
    decoded = served_image(visitor, "#decode-image")
    assert np.abs(decoded.astype(int) - generated.astype(int)).max() <= 1  # the same latents, the same decoder
    shot(visitor, "1-encode-decode-latents")
