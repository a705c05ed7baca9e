"""The lesson's views used through the page (float32 app, this CPU's default): x̂₀ per step, what compression keeps,
why latents, and the quiz marked in the page with the visitor's own numbers. Screenshots go to artifacts/."""

import pytest
from playwright.sync_api import Page, expect
from test_browser import SLOW, open_tab, opened, served_image, shot

from latent_demo.quiz import QUESTIONS
from latent_demo.serving.previews import PREVIEW_CELL_PX
from latent_demo.ui.pictures import SIDE_BY_SIDE_GAP

SIDE = 128  # px: small runs, the pictures' shapes still checked
STEP_SIDE = SIDE // 8 * PREVIEW_CELL_PX  # a step's picture: PREVIEW_CELL_PX per latent cell


@pytest.fixture
def visitor(page: Page, app_url):
    yield from opened(page, app_url, "")


def run_in_the_guidance_view(visitor: Page, tab: str) -> None:
    """The tab's guidance view, guidance 5, and its run button."""
    visitor.locator(f"#{tab}-view label", has_text="guidance").click()
    guidance = visitor.locator(f"#{tab}-guidance input[type=number]")
    guidance.fill("5")
    guidance.press("Enter")
    visitor.locator(f"#{tab}-button").click()


def test_generate_shows_the_predicted_clean_image_beside_the_noisy_latents(visitor: Page):
    open_tab(visitor, "2 · Generate")
    visitor.locator("#generate-steps input[type=number]").fill("4")
    for side in ("width", "height"):
        visitor.locator(f"#generate-{side} input[type=number]").fill(str(SIDE))
    expect(visitor.locator("#generate-view input:checked")).to_have_value("both")
    visitor.locator("#generate-button").click()
    served_image(visitor, "#generate-final")
    expect(visitor.locator("#generate-trajectory img")).to_have_count(5, timeout=SLOW)  # 4 steps + decoded
    first_step = served_image(visitor, "#generate-trajectory")
    assert first_step.shape[:2] == (STEP_SIDE, 2 * STEP_SIDE + SIDE_BY_SIDE_GAP)  # x_t | x̂₀
    expect(visitor.locator("#generate-status")).to_contain_text("x̂₀ per step: the scheduler's")
    shot(visitor, "lesson-1-denoised-steps")
    visitor.locator("#generate-view label", has_text="x̂₀: the clean image").click()
    shown = visitor.locator("#generate-trajectory img").first
    previous = shown.get_attribute("src")
    visitor.locator("#generate-button").click()
    expect(shown).not_to_have_attribute("src", previous, timeout=SLOW)  # the new run's trajectory
    expect(visitor.locator("#generate-trajectory img")).to_have_count(5, timeout=SLOW)
    assert served_image(visitor, "#generate-trajectory").shape[:2] == (STEP_SIDE, STEP_SIDE)
    run_in_the_guidance_view(visitor, "generate")
    expect(visitor.locator("#generate-status")).to_contain_text("Guidance, decomposed", timeout=SLOW)
    expect(visitor.locator("#generate-trajectory img")).to_have_count(5, timeout=SLOW)
    expect(visitor.locator("#generate-trajectory")).to_contain_text("RMS ε̂_uncond")
    three = (STEP_SIDE, 3 * STEP_SIDE + 2 * SIDE_BY_SIDE_GAP)  # ε̂ without the prompt | ε̂ with it | s·difference
    assert served_image(visitor, "#generate-trajectory").shape[:2] == three
    shot(visitor, "lesson-5-guidance")
    visitor.locator("#compare-button").click()  # nothing changed since that run
    report = visitor.locator("#compare-report")
    expect(report).to_contain_text("Your last run against this one", timeout=SLOW)
    expect(report).to_contain_text("Identical")
    seed = visitor.locator("#generate-seed input")
    seed.fill("43")
    seed.press("Enter")
    visitor.locator("#compare-button").click()
    expect(report).to_contain_text("seed 42 → 43", timeout=SLOW)
    expect(report).to_contain_text("Different")
    assert served_image(visitor, "#compare-heatmap").max() > 0
    shot(visitor, "lesson-6-compare")
    # img2img has no trajectory gallery: in the guidance view its live picture ends on the predictions, a row a step
    visitor.locator("#generate-send-img2img").click()
    visitor.locator("#img2img-prompt textarea").fill("a fox")
    run_in_the_guidance_view(visitor, "img2img")
    expect(visitor.locator("#img2img-status")).to_contain_text("a row per step", timeout=SLOW)
    sheet = served_image(visitor, "#img2img-live")
    assert sheet.shape[1] == 3 * STEP_SIDE + 2 * SIDE_BY_SIDE_GAP
    assert (sheet.shape[0] + SIDE_BY_SIDE_GAP) % (STEP_SIDE + SIDE_BY_SIDE_GAP) == 0  # whole rows of step pictures


def test_the_toy_encoder_and_the_posterior_on_the_encode_tabs_image(visitor: Page):
    visitor.locator("button:has(img[src*='astronaut'])").first.click()
    expect(visitor.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)
    visitor.locator("#toy-button").click()
    expect(visitor.locator("#toy-facts")).to_contain_text("1.5×", timeout=SLOW)
    expect(visitor.locator("#toy-channels img")).to_have_count(4)
    visitor.locator("#posterior-button").click()
    expect(visitor.locator("#posterior-note")).to_contain_text("img2img draws a sample", timeout=SLOW)
    expect(visitor.locator("#posterior-maps img")).to_have_count(8)
    expect(visitor.locator("#posterior-decoded img")).to_have_count(3)
    visitor.locator("#cell-button").click()
    expect(visitor.locator("#cell-facts")).to_contain_text("holds 4 numbers", timeout=SLOW)
    served_image(visitor, "#cell-heatmap")
    visitor.locator("#grid-button").click()
    expect(visitor.locator("#grid-table")).to_contain_text("the grid is 1×1", timeout=SLOW)
    shot(visitor, "lesson-7-encoder-side")


def test_latent_spaces_of_other_families_on_the_encode_tabs_image(visitor: Page):
    visitor.locator("button:has(img[src*='coffee'])").first.click()
    expect(visitor.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)
    expect(visitor.locator("#spaces-button")).to_contain_text("also loaded: flux-shaped, dc-ae-shaped")
    visitor.locator("#spaces-squeezes label", has_text="pool ×2").click()  # one squeeze fewer on the chart
    visitor.locator("#spaces-button").click()
    expect(visitor.locator("#spaces-table")).to_contain_text("dc-ae-shaped", timeout=SLOW)
    expect(visitor.locator("#spaces-reconstructions img")).to_have_count(3)
    expect(visitor.locator("#spaces-errors img")).to_have_count(3)
    expect(visitor.locator("#spaces-table")).to_contain_text("AutoencoderDC")
    expect(visitor.locator("#spaces-note")).to_contain_text("squeezed to a similar size")
    expect(visitor.locator("#spaces-chart canvas, #spaces-chart svg").first).to_be_visible()
    first = served_image(visitor, "#spaces-reconstructions")
    assert first.shape[0] % 32 == 0 and first.shape[1] % 32 == 0  # fitted to every down-factor
    shot(visitor, "lesson-8-latent-spaces")


def test_encode_then_compare_decoders_and_squeeze(visitor: Page):
    visitor.locator("button:has(img[src*='astronaut'])").first.click()
    expect(visitor.locator("#encode-facts")).to_contain_text("48× fewer", timeout=SLOW)
    visitor.locator("#compress-button").click()
    expect(visitor.locator("#compress-decoders img")).to_have_count(2, timeout=SLOW)  # full VAE, linear map
    expect(visitor.locator("#compress-squeezed img")).to_have_count(7, timeout=SLOW)
    expect(visitor.locator("#compress-table")).to_contain_text("512×512×3 × 8 bits = 6,291,456 bits")
    expect(visitor.locator("#compress-table")).to_contain_text("pool ×4")
    expect(visitor.locator("#compress-squeezed")).to_contain_text("384× fewer bits")  # pool ×4: 64×64×4/16 × 16
    expect(visitor.locator("#compress-curve canvas, #compress-curve svg").first).to_be_visible(timeout=SLOW)
    shot(visitor, "lesson-2-compression")


def test_why_latents_counts_the_loaded_unet(visitor: Page):
    open_tab(visitor, "7 · Why latents")
    visitor.locator("#why-button").click()
    table = visitor.locator("#why-table")
    expect(table).to_contain_text("4×64×64 = 16,384", timeout=SLOW)
    expect(table).to_contain_text("3×512×512 = 786,432")
    expect(table).to_contain_text("(measured)")
    expect(table).to_contain_text("× the FLOPs")
    shot(visitor, "lesson-3-why-latents")


def test_the_quiz_is_marked_in_the_page_with_the_visitors_numbers(visitor: Page):
    visitor.locator("button:has(img[src*='coffee'])").first.click()  # the visitor's own image: 512×336
    expect(visitor.locator("#encode-facts")).to_contain_text("fewer", timeout=SLOW)
    open_tab(visitor, "8 · Check yourself")
    for question in QUESTIONS:
        wrong = question.choices[(question.choices.index(question.answer) + 1) % len(question.choices)]
        choice = wrong if question.key == "encoder" else question.answer
        visitor.locator(f"#quiz-{question.key} label", has_text=choice).click()
    visitor.locator("#quiz-button").click()
    marks = visitor.locator("#quiz-marks")
    expect(marks).to_contain_text(f"{len(QUESTIONS) - 1} of {len(QUESTIONS)} right", timeout=SLOW)
    expect(marks).to_contain_text("✗ Not quite. The answer: The VAE encoder")
    expect(marks).to_contain_text("516,096 pixel values became 10,752 latents")  # the coffee image, not 512×512
    shot(visitor, "lesson-4-quiz")
