"""The lesson's views through the API, on every configuration of the matrix: x̂₀ per step, why latents, what
compression keeps, and the quiz."""

import numpy as np
import pytest
from conftest import MATRIX_SIDE as SIDE
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from latent_demo.images import prepare_image
from latent_demo.quiz import QUESTIONS
from latent_demo.serving.previews import PREVIEW_CELL_PX
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import SIDE_BY_SIDE_GAP

DEFAULT = "model default"
STEP_SIDE = SIDE // 8 * PREVIEW_CELL_PX  # a step's picture: PREVIEW_CELL_PX per latent cell


@pytest.fixture
def client(configured_client):
    return configured_client


def generate(client, scheduler: str, view: str) -> tuple[list[Image.Image], str, str]:
    """Three steps: (the trajectory gallery's pictures, the status line, the GIF's path)."""
    outputs = client.predict("a fox", "", 3, False, 3, 0.0, scheduler, SIDE, SIDE, False, view, api_name="/generate")
    return [Image.open(item["image"]) for item in outputs[4]], outputs[6], outputs[5]


def test_generate_shows_both_views_side_by_side(client):
    pictures, status, gif = generate(client, "DPM++ 2M", "both")
    both = (2 * STEP_SIDE + SIDE_BY_SIDE_GAP, STEP_SIDE)
    assert [p.size for p in pictures] == [both] * 3 + [(SIDE, SIDE)]  # 3 steps, then the decode
    assert "x̂₀ per step: computed from the UNet output" in status  # DPM++ 2M gives no estimate of its own
    animation = Image.open(gif)
    assert animation.n_frames == 4 and animation.size == both  # the decoded image centred on the last frame


def test_the_last_steps_prediction_looks_like_the_result(client):
    """Euler's last step lands on σ = 0: its x̂₀ picture is the final latents' picture (up to bf16 rounding); the
    first one differs."""
    denoised, status, _ = generate(client, "Euler", "denoised")
    noisy, _, _ = generate(client, "Euler", "noisy")
    assert [p.width for p in denoised] == [p.width for p in noisy] == [STEP_SIDE] * 3 + [SIDE]
    def gap(a: Image.Image, b: Image.Image) -> np.ndarray:
        return np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))

    last, first = gap(denoised[2], noisy[2]), gap(denoised[0], noisy[0])
    # float32: identical; bfloat16 rounds the two sums differently (measured: mean 0.09, max 4 levels)
    assert last.max() <= 8 and last.mean() <= 0.05 * first.mean()
    assert "x̂₀ per step: the scheduler's pred_original_sample" in status


def test_an_unknown_view_is_refused(client):
    with pytest.raises(AppError, match="'sideways' .* is not in the list of choices"):  # Gradio's Radio refuses it
        client.predict("a fox", "", 3, False, 1, 0.0, DEFAULT, SIDE, SIDE, False, "sideways", api_name="/generate")


def test_why_latents_counts_both_steps(client):
    table = client.predict(SIDE, 25, 7.5, api_name="/why_latents")
    latent_side = SIDE // 8
    assert f"4×{latent_side}×{latent_side} = {4 * latent_side**2:,}" in table
    assert f"3×{SIDE}×{SIDE} = {3 * SIDE**2:,}" in table
    assert "(measured)" in table and "(estimated)" in table and "× the FLOPs" in table
    with pytest.raises(AppError, match="image side must be a multiple of 8, got 100"):
        client.predict(100, 25, 7.5, api_name="/why_latents")


def test_compress_compares_decoders_and_squeezes(client):
    chosen = ["pool ×2", "2 channels", "4-bit"]  # one of each kind (all of them: tests/test_compression.py)
    decoders, squeezed, curve, table = client.predict(handle_file(asset("coffee.png")), chosen, api_name="/compress")
    assert [item["caption"].split(":")[0] for item in decoders] == ["full VAE decoder", "linear 4×3 map"]
    assert [item["caption"].split(":")[0] for item in squeezed] == chosen
    width, height = prepare_image(Image.open(asset("coffee.png")), SIDE, 64, 8).size
    for item in decoders + squeezed:
        assert Image.open(item["image"]).size == (width, height)
        assert " dB, " in item["caption"] and "× fewer bits" in item["caption"]
    assert f"{width}×{height}×3 × 8 bits = **{width * height * 3 * 8:,} bits**" in table
    kinds = {row[2] for row in curve["data"]}
    assert kinds == {"pool", "channels", "bits"}
    with pytest.raises(AppError, match="'pool ×3' .* is not in the list of choices"):
        client.predict(handle_file(asset("coffee.png")), ["pool ×3"], api_name="/compress")


def test_the_quiz_marks_right_and_wrong_answers(client):
    right = [question.answer for question in QUESTIONS]
    marks = client.predict(*right, api_name="/check_quiz")
    assert marks.startswith("### 6 of 6 right") and "✗" not in marks
    wrong = [question.choices[(question.choices.index(question.answer) + 1) % 4] for question in QUESTIONS[:1]]
    marks = client.predict(*(wrong + right[1:]), api_name="/check_quiz")
    assert marks.startswith("### 5 of 6 right") and marks.count("✗ Not quite") == 1
    assert f"The answer: **{QUESTIONS[0].answer}**" in marks
    unanswered = client.predict(*([None] * 6), api_name="/check_quiz")
    assert unanswered.startswith("### 0 of 6 right") and unanswered.count("✗ Not answered") == 6
