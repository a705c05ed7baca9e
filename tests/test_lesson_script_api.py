"""The lesson's API forms for scripts (ui/lesson_script_api.py) on the configuration matrix: one answer, the
page's own numbers as JSON, the pictures only when asked for."""

import pytest
from conftest import MATRIX_SIDE
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from latent_demo.ui.examples import asset

DEFAULT = "model default"
SIDE = MATRIX_SIDE


@pytest.fixture
def client(configured_client):
    return configured_client


def captions(gallery) -> list[str]:
    return [item["caption"] for item in gallery]


def test_compress_answers_with_the_pages_numbers(client):
    job = client.submit(handle_file(asset("coffee.png")), ["pool ×2", "2-bit"], api_name="/compress")
    facts, pictures = job.result()
    assert len(job.outputs()) == 1 and pictures == []  # one answer; no picture unless asked for
    assert [d["label"] for d in facts["squeezed"]] == ["pool ×2", "2-bit"] and facts["decoders"][0]["fewer_bits"] == 24
    decoders, squeezed, curve, table = client.predict(handle_file(asset("coffee.png")), ["pool ×2", "2-bit"],
                                                      api_name="/compress_page")[:4]
    for shown, counted in zip(decoders + squeezed, facts["decoders"] + facts["squeezed"], strict=True):
        assert shown["caption"].startswith(f"{counted['label']}: {counted['psnr_db']:.1f} dB")
    facts, pictures = client.predict(handle_file(asset("coffee.png")), ["2-bit"], True, api_name="/compress")
    assert captions(pictures) == [d["label"] for d in facts["decoders"] + facts["squeezed"]]


def test_compare_vaes_and_the_encoder_grid_answer_with_numbers(client):
    facts, pictures = client.predict(handle_file(asset("coffee.png")), ["8-bit"], api_name="/compare_vaes")
    assert pictures == [] and [a["name"] for a in facts["autoencoders"]] == ["this model's VAE", "flux-shaped",
                                                                               "dc-ae-shaped"]
    assert [(a["down_factor"], a["channels"]) for a in facts["autoencoders"]] == [(8, 4), (8, 16), (32, 32)]
    assert facts["autoencoders"][1]["shift_factor"] == 0.1159 and "squeezed to a similar size" in facts["note"]
    facts, pictures = client.predict(handle_file(asset("coffee.png")), [], True, api_name="/compare_vaes")
    assert len(pictures) == 6 and facts["squeezed"] == []
    facts, pictures = client.predict(handle_file(asset("coffee.png")), api_name="/encoder_grid")
    shown = client.predict(handle_file(asset("coffee.png")), api_name="/encoder_grid_page")[0]
    assert pictures == [] and [c["encoder"] for c in facts["cells"]] == ["full VAE"]
    assert shown[0]["caption"].endswith(f"{facts['cells'][0]['psnr_db']:.1f} dB")


def test_posterior_predict_noise_and_noise_space_answer_with_numbers(client):
    facts, pictures = client.predict(handle_file(asset("astronaut.png")), 5, api_name="/posterior")
    assert facts["seed"] == 5 and len(facts["sample_psnr_db"]) == 2 and pictures == []
    assert facts["latent_shape"] == [4, SIDE // 8, SIDE // 8]
    facts, pictures = client.predict(handle_file(asset("coffee.png")), 500, 1, "", True, api_name="/predict_noise")
    assert facts["timestep"] == 500 and facts["prediction_type"] == "epsilon" and len(facts["loss_curve"]) == 10
    assert len(pictures) == 13 and captions(pictures)[-1].startswith("x̂₀")  # 4 channels × (ε, ε̂, ε̂ − ε), x̂₀
    note = client.predict(handle_file(asset("coffee.png")), 500, 1, "", api_name="/predict_noise_page")[3]
    assert f"**{facts['loss']:.4f}**" in note  # the page's loss, the same call
    facts, pictures = client.predict(handle_file(asset("coffee.png")), 300, 2, api_name="/noise_space")
    assert facts["timestep"] == 300 and [level["noise_std"] for level in facts["pixel_noise_through_vae"]] == [
        0.05, 0.1, 0.2] and pictures == []


def test_seed_walk_answers_with_its_gif(client):
    job = client.submit("a fox", 3, 4, 3, 2, 0.0, DEFAULT, SIDE, SIDE, api_name="/seed_walk")
    gif, facts, frames = job.result()
    assert len(job.outputs()) == 1 and frames == []  # the page's event streams each frame; this answers once
    assert Image.open(gif).n_frames == 3 and (facts["seed_a"], facts["seed_b"], facts["frames"]) == (3, 4, 3)
    assert len(facts["seconds_per_frame"]) == 3 and facts["width"] == SIDE
    gif, facts, frames = client.predict("a fox", 3, 4, 2, 2, 0.0, DEFAULT, SIDE, SIDE, True, api_name="/seed_walk")
    assert captions(frames) == ["frame 1", "frame 2"]


def test_a_yes_no_parameter_must_be_one(client):
    with pytest.raises(AppError, match="return_pictures must be true or false"):
        client.predict(handle_file(asset("coffee.png")), 0, "please", api_name="/posterior")
