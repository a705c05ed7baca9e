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
    outputs = client.predict("a fox", "", 3, False, 3, 0.0, scheduler, SIDE, SIDE, False, view,
                             api_name="/generate_page")
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
        client.predict("a fox", "", 3, False, 1, 0.0, DEFAULT, SIDE, SIDE, False, "sideways",
                       api_name="/generate_page")


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
    decoders, squeezed, curve, table = client.predict(handle_file(asset("coffee.png")), chosen,
                                                      api_name="/compress_page")
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
        client.predict(handle_file(asset("coffee.png")), ["pool ×3"], api_name="/compress_page")


def test_the_quiz_marks_right_and_wrong_answers(client):
    right = [question.answer for question in QUESTIONS]
    marks = client.predict(*right, api_name="/check_quiz")
    count = len(QUESTIONS)
    assert marks.startswith(f"### {count} of {count} right") and "✗" not in marks
    wrong = [question.choices[(question.choices.index(question.answer) + 1) % 4] for question in QUESTIONS[:1]]
    marks = client.predict(*(wrong + right[1:]), api_name="/check_quiz")
    assert marks.startswith(f"### {count - 1} of {count} right") and marks.count("✗ Not quite") == 1
    assert f"The answer: **{QUESTIONS[0].answer}**" in marks
    unanswered = client.predict(*([None] * count), api_name="/check_quiz")
    assert unanswered.startswith(f"### 0 of {count} right") and unanswered.count("✗ Not answered") == count


def test_predict_noise_shows_the_noise_the_prediction_and_the_training_loss(client):
    channels, denoised, curve, note = client.predict(handle_file(asset("coffee.png")), 500, 3, "",
                                                     api_name="/predict_noise_page")
    assert [item["caption"] for item in channels[:3]] == ["ε, channel 0", "ε̂, channel 0", "ε̂ − ε, channel 0"]
    assert len(channels) == 12  # 4 channels × (target, prediction, difference)
    width, height = prepare_image(Image.open(asset("coffee.png")), SIDE, 64, 8).size
    assert Image.open(denoised).size == (width, height)
    loss = float(note.split("Mean squared error of its answer: **")[1].split("**")[0])
    assert "At t = **500**" in note and "`prediction_type: epsilon`" in note
    timesteps = [row[0] for row in curve["data"]]
    assert timesteps == list(range(50, 1000, 100))
    assert loss > 0 and all(row[1] > 0 for row in curve["data"])
    again = client.predict(handle_file(asset("coffee.png")), 500, 3, "", api_name="/predict_noise_page")[3]
    assert again == note  # same image, t, seed: the same loss
    with pytest.raises(AppError, match="greater than maximum|timestep must be"):
        client.predict(handle_file(asset("coffee.png")), 1000, 3, "", api_name="/predict_noise_page")


def test_noise_space_compares_latent_and_pixel_noise_and_measures_the_autoencoder(client):
    latent, pixel, rebuilt, note = client.predict(handle_file(asset("chelsea.png")), 300, 1,
                                                  api_name="/noise_space_page")
    width, height = prepare_image(Image.open(asset("chelsea.png")), SIDE, 64, 8).size
    assert Image.open(latent).size == Image.open(pixel).size == (width, height)
    assert [item["caption"].split(":")[0] for item in rebuilt] == ["std 0.05", "std 0.1", "std 0.2"]
    assert "| noise std | noisy | after encode → decode | change |" in note
    assert ("removes part of the pixel noise" in note) != ("does not remove this pixel noise" in note)


def test_the_guidance_view_decomposes_each_guided_step(client):
    outputs = client.predict("a fox", "", 3, False, 2, 5.0, DEFAULT, SIDE, SIDE, False, "guidance",
                             api_name="/generate_page")
    trajectory, status = outputs[4], outputs[6]
    three = (3 * STEP_SIDE + 2 * SIDE_BY_SIDE_GAP, STEP_SIDE)
    assert [Image.open(item["image"]).size for item in trajectory[:-1]] == [three] * 2
    assert all("RMS ε̂_uncond" in item["caption"] for item in trajectory[:-1])
    assert "**Guidance, decomposed**" in status and "with s = 5" in status and status.count("\n| 2 |") == 1
    off = client.predict("a fox", "", 3, False, 2, 0.0, DEFAULT, SIDE, SIDE, False, "guidance",
                         api_name="/generate_page")
    assert "Guidance is off" in off[6] and "one prediction" in off[6]
    img2img = client.predict("the uploaded image", handle_file(asset("chelsea.png")), "a tiger", "", 1, False,
                             4, 5.0, 0.5, DEFAULT, False, "guidance", api_name="/img2img_page")
    assert "**Guidance, decomposed**" in img2img[-1] and "a row per step" in img2img[-1]
    # img2img has no trajectory: its live view ends on the sheet, one row per step run (4 × 0.5 = 2 steps)
    sheet = np.asarray(Image.open(img2img[3]).convert("RGB"))
    row_height, width = (sheet.shape[0] - SIDE_BY_SIDE_GAP) // 2, (sheet.shape[1] - 2 * SIDE_BY_SIDE_GAP) // 3
    assert (sheet[row_height:row_height + SIDE_BY_SIDE_GAP] == 255).all()  # the gap between the two rows
    for column in (1, 2):  # and between the three pictures of a row
        start = column * width + (column - 1) * SIDE_BY_SIDE_GAP
        assert (sheet[:, start:start + SIDE_BY_SIDE_GAP] == 255).all()
    assert sheet[:row_height].std() > 1 and sheet[-row_height:].std() > 1


def test_run_again_and_compare_reports_identical_runs(client):
    from gradio_client import Client

    client = Client(client.src, verbose=False)  # a new visitor: no last run in the session, so it runs twice
    heatmap, report = client.predict("a fox", "", 11, False, 2, 0.0, DEFAULT, SIDE, SIDE, False,
                                     api_name="/compare_runs")
    assert "The same request, run twice" in report and "**Identical**" in report and "Settings changed: none" in report
    assert Image.open(heatmap).getextrema() == ((0, 0), (0, 0), (0, 0))
    status = client.predict("a fox", "", 11, False, 2, 0.0, DEFAULT, SIDE, SIDE, False, api_name="/generate_page")[6]
    latents_print = report.split("| latents | `")[1].split("`")[0]
    assert f"latents `{latents_print}`" in status  # the same request gives the fingerprint /compare_runs showed


def test_the_toy_encoder_and_the_posterior(client):
    channels, facts = client.predict(handle_file(asset("astronaut.png")), api_name="/toy_encoder")
    assert len(channels) == 4 and channels[0]["caption"] == "toy channel 0"
    assert f"| 32×{SIDE // 4}×{SIDE // 4} | {32 * (SIDE // 4) ** 2:,} | 1.5× |" in facts
    assert f"| 4×{SIDE // 8}×{SIDE // 8} | {4 * (SIDE // 8) ** 2:,} | 48× |" in facts
    maps, decoded, note = client.predict(handle_file(asset("astronaut.png")), 5, api_name="/posterior_page")
    assert [item["caption"] for item in maps[:2]] == ["mean, channel 0", "std, channel 0"] and len(maps) == 8
    assert len(decoded) == 3 and decoded[0]["caption"].startswith("the mean, decoded")
    assert "img2img draws a sample" in note


def test_the_encoder_decoder_grid_is_one_by_one_without_a_fast_decoder(client):
    pictures, errors, table = client.predict(handle_file(asset("coffee.png")), api_name="/encoder_grid_page")
    assert [item["caption"].split(":")[0] for item in pictures] == ["full VAE encoder → full VAE decoder"]
    assert len(errors) == 1 and "the grid is 1×1" in table and "| full VAE | full VAE |" in table


def test_one_latent_cell_its_numbers_and_its_reach(client):
    patch, heatmap, facts = client.predict(handle_file(asset("chelsea.png")), 5, 6, api_name="/latent_cell")
    assert Image.open(patch).size == (128, 128)  # 8×8 pixels, enlarged 16×
    width, height = prepare_image(Image.open(asset("chelsea.png")), SIDE, 64, 8).size
    assert Image.open(heatmap).size == (width, height)
    assert "holds **4 numbers**" in facts and "90 % of the change" in facts
    with pytest.raises(AppError, match="greater than maximum value 15"):  # the slider's limit: 128 px / 8 - 1
        client.predict(handle_file(asset("chelsea.png")), SIDE, 0, api_name="/latent_cell")
    with pytest.raises(AppError, match="cell row must be from 0 to 9"):  # in the slider, off the 128×80 grid
        client.predict(handle_file(asset("chelsea.png")), 15, 0, api_name="/latent_cell")


def test_latent_spaces_compared_with_the_other_families(client):
    """The matrix apps load the tiny FLUX.1- and DC-AE-shaped folders through --compare-vaes."""
    pictures, errors, chart, table, note = client.predict(handle_file(asset("coffee.png")), ["pool ×4", "2-bit"],
                                                          api_name="/compare_vaes_page")
    names = [item["caption"].split(":")[0] for item in pictures]
    assert names == ["this model's VAE", "flux-shaped", "dc-ae-shaped"] and len(errors) == 3
    width, height = prepare_image(Image.open(asset("coffee.png")), SIDE, 64, 32).size  # fitted to the DC-AE's 32
    assert {Image.open(item["image"]).size for item in pictures} == {(width, height)}
    assert pictures[1]["caption"].startswith("flux-shaped: 8× down, 16 ch")
    assert "| dc-ae-shaped | AutoencoderDC | 32× | 32 | 32×" in table and "| 0.3611 / 0.1159 |" in table
    assert f"| {4 * (height // 8) * (width // 8):,} | 48× | 24× |" in table  # this VAE, counted from its latents
    points = {row[3]: row for row in chart["data"]}  # x (× fewer bits), y (PSNR), what, name
    assert list(points) == names + ["pool ×4", "2-bit"] and points["dc-ae-shaped"][0] == 48
    assert {row[2] for row in chart["data"]} == {"autoencoder", "this VAE's latents squeezed"}
    assert points["pool ×4"][0] == 16 * 24 and points["this model's VAE"][1] == pytest.approx(
        float(table.split("| this model's VAE |")[1].split(" dB |")[0].split("| ")[-1]), abs=0.01)
    # each other autoencoder beside a squeeze within 2× of its size, when one is shown: DC-AE-shaped 48× has none
    # (pool ×4 384×, 2-bit ~190×), FLUX-shaped 6× neither; DC-AE-shaped meets 2-bit only when asked for 8-bit
    flux, own = points["flux-shaped"], points["this model's VAE"]
    assert f"**flux-shaped** (8× down, 16 channels): {flux[1]:.1f} dB at 6× fewer bits" in note
    assert f"this VAE's own latents (24×) keep {own[1]:.1f} dB, and no squeeze shown comes within 2×" in note
    note = client.predict(handle_file(asset("coffee.png")), ["8-bit"], api_name="/compare_vaes_page")[-1]
    assert "**dc-ae-shaped** (32× down, 32 channels)" in note and "squeezed to a similar size (8-bit, 4" in note
