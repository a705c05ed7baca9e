"""Examples computed once for every visitor (serving/example_cache.py): the remembered result is the one the model
made, a changed setting runs the model again, failures and Cancel are not remembered, and a replay in the page
survives Gradio's cache clean-up."""

import time

import numpy as np
import pytest
from conftest import APP_SETTINGS, free_port, launched
from playwright.sync_api import Page, expect

from latent_demo.config import Settings
from latent_demo.params import GenerateParams
from latent_demo.serving.example_cache import REPLAYED_NOTE, RememberingRunner, request_key
from latent_demo.ui.app import model_runner
from latent_demo.ui.examples import PROMPTS

SLOW = 60_000  # ms


class CountingRunner:
    """The app's runner, counting the jobs that really ran."""

    def __init__(self, runner):
        self.runner, self.ran = runner, []

    def stream(self, name, *args):
        self.ran.append(name)
        yield from self.runner.stream(name, *args)


@pytest.fixture
def counted(models, settings):
    inner = CountingRunner(model_runner(models, settings))
    return inner, RememberingRunner(inner, capacity=2)


def params(seed=1, **more) -> GenerateParams:
    return GenerateParams(**{"prompt": "a red fox", "num_inference_steps": 2, "guidance_scale": 0.0, "width": 64,
                             "height": 64, "seed": seed, **more})


def test_the_second_request_is_the_first_result_without_the_model(counted):
    inner, remembering = counted
    first = list(remembering.stream("generate", params()))
    second = list(remembering.stream("generate", params()))
    assert inner.ran == ["generate"] and remembering.replays == 1
    assert first[0][0] == "step" and first[-1][0] == "done"  # the first click streams its steps (some, paced)
    assert [kind for kind, _ in second] == ["done"]
    assert second[0][1] is first[-1][1]
    recomputed = inner.runner.run("generate", params())  # and it is what the model makes for that request
    np.testing.assert_array_equal(np.asarray(recomputed.image), np.asarray(second[0][1].image))


def test_any_changed_setting_runs_the_model_and_the_oldest_is_forgotten(counted):
    inner, remembering = counted
    for request in (params(seed=1), params(seed=2), params(seed=1, guidance_scale=2.0), params(seed=1)):
        remembering.run("generate", request)
    # capacity 2: the third request pushed out the first, so asking for it again runs the model again
    assert inner.ran == ["generate"] * 4 and remembering.replays == 0
    remembering.run("generate", params(seed=1, guidance_scale=2.0))
    assert remembering.replays == 1
    assert request_key("generate", (params(seed=1),)) != request_key("encode", (params(seed=1),))


def test_a_failed_or_cancelled_request_is_not_remembered(counted):
    inner, remembering = counted
    for _ in range(2):  # asked twice, run twice: an error is never replayed
        with pytest.raises(Exception, match="num_inference_steps must be from 1"):
            remembering.run("generate", params(num_inference_steps=10_000))
    stream = remembering.stream("generate", params())
    assert next(stream)[0] == "step"
    stream.close()  # Cancel: Gradio closes the handler's generator
    remembering.run("generate", params())
    assert remembering.replays == 0 and inner.ran == ["generate"] * 4


@pytest.fixture(scope="module")
def forgetful_app(models):
    """An app whose clean-up deletes every cached file older than a second (each second): a replayed example must
    still show its pictures."""
    with launched(models, Settings(**{**APP_SETTINGS, "cache_max_age_s": 1}, port=free_port())) as url:
        yield url


def clicked_example(page: Page) -> float:
    """On a fresh page, click the rocket example on Encode and wait for its result; returns the seconds it took."""
    expect(page.locator("#encode-button")).to_be_visible(timeout=SLOW)
    started = time.perf_counter()
    page.locator("button:has(img[src*='rocket'])").first.click()
    expect(page.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)
    expect(page.locator("#encode-channels img")).to_have_count(4, timeout=SLOW)
    return time.perf_counter() - started


def clicked_generate_example(page: Page) -> float:
    """On a fresh page, click Generate's first example prompt and wait for its trajectory; returns the seconds."""
    page.get_by_role("tab", name="2 · Generate").click()
    started = time.perf_counter()
    page.get_by_text(PROMPTS[0]).first.click()
    expect(page.locator("#generate-status")).to_contain_text("UNet per step", timeout=SLOW)
    expect(page.locator("#generate-gif")).to_be_visible(timeout=SLOW)
    expect(page.locator("#generate-trajectory img").first).to_be_visible(timeout=SLOW)
    return time.perf_counter() - started


def shown_picture(page: Page, selector: str = "#encode-reconstruction") -> bytes:
    image = page.locator(f"{selector} img").first
    expect(image).to_be_visible(timeout=SLOW)
    response = page.request.get(image.get_attribute("src"))
    assert response.ok and response.body()[:8] == b"\x89PNG\r\n\x1a\n"
    return response.body()


def test_an_example_clicked_again_by_another_visitor_replays_after_the_clean_up(page: Page, forgetful_app, browser):
    page.goto(forgetful_app)
    first_s = clicked_example(page)
    first = shown_picture(page)
    expect(page.get_by_text(REPLAYED_NOTE[:40])).to_have_count(0)
    time.sleep(3)  # the clean-up has deleted every file the first click made
    other = browser.new_page()  # another visitor, with a session of their own
    other.goto(forgetful_app)
    second_s = clicked_example(other)
    expect(other.get_by_text(REPLAYED_NOTE[:40]).first).to_be_visible(timeout=SLOW)
    assert shown_picture(other) == first  # the same picture, made again from the remembered result
    first_generate_s = clicked_generate_example(page)
    first_final = shown_picture(page, "#generate-final")
    time.sleep(3)
    second_generate_s = clicked_generate_example(other)
    assert shown_picture(other, "#generate-final") == first_final
    print(f"\nOffline model, float32, 512 px, page wait of an example's first click and of another visitor's second:"
          f"\n  Encode (rocket) {first_s:.2f} s, {second_s:.2f} s, ratio {second_s / first_s:.2f}"
          f"\n  Generate (first prompt) {first_generate_s:.2f} s, {second_generate_s:.2f} s, "
          f"ratio {second_generate_s / first_generate_s:.2f}")
    other.close()
