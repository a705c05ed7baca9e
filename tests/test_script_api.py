"""The API forms for scripts (ui/script_api.py) on the configuration matrix: one answer, the page's own result, the
extras only when asked for; and the README's curl example."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import MATRIX_SIDE
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors import safe_open

from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import SIDE_BY_SIDE_GAP

DEFAULT = "model default"
SIDE = MATRIX_SIDE
ROOT = Path(__file__).resolve().parents[1]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def lean_generate(client, **extras):
    return client.predict("a fox", "", 9, False, 3, 0.0, DEFAULT, SIDE, SIDE, False, api_name="/generate", **extras)


def test_generate_answers_once_with_the_pages_image_its_seed_and_the_facts(configured_client):
    job = configured_client.submit("a fox", "", 9, False, 3, 0.0, DEFAULT, SIDE, SIDE, False, api_name="/generate",
                                   return_noise=True)
    image, seed, facts, trajectory, latents, noise = job.result()
    assert len(job.outputs()) == 1  # nothing streamed before the answer
    assert seed == 9 and trajectory is None and latents is None  # the extras only when asked for
    assert facts["steps"] == 3 and len(facts["timesteps"]) == 3 and facts["width"] == SIDE
    assert {"unet", "decode", "total"} <= facts["timings_s"].keys() and facts["fingerprint"]["pixels"]
    assert Image.open(image).text["parameters"].startswith("a fox\nSteps: 3,")  # the PNG carries its settings
    page = configured_client.predict("a fox", "", 9, False, 3, 0.0, DEFAULT, SIDE, SIDE, False,
                                     api_name="/generate_page")
    assert np.array_equal(pixels(image), pixels(page[3]))  # the same image the page shows
    shown, width = pixels(page[1]), pixels(noise[0]["image"]).shape[1]  # the page shows the 4 in one picture
    assert len(noise) == 4 and all(np.array_equal(pixels(ours["image"]), shown[:, x:x + width])
                                   for ours, x in zip(noise, range(0, shown.shape[1], width + SIDE_BY_SIDE_GAP),
                                                      strict=True))


def test_generate_sends_the_trajectory_and_the_latents_when_asked(configured_client):
    """(The starting noise, asked for in the test above, is compared there with the page's.)"""
    image, seed, facts, trajectory, latents, noise = lean_generate(configured_client, return_trajectory=True,
                                                                   return_latents=True)
    assert not noise and Image.open(trajectory).n_frames == 4  # 3 steps and the image (no noise: not asked)
    with safe_open(latents, "pt") as file:
        assert file.get_tensor("latents").shape == (1, 4, SIDE // 8, SIDE // 8)
        assert json.loads(file.metadata()["settings"])["seed"] == 9


def test_encode_then_img2img_from_those_latents_in_one_session(configured_client):
    client = Client(configured_client.src, verbose=False)  # a session of its own
    reconstruction, latents, facts, channels = client.predict(handle_file(asset("chelsea.png")), api_name="/encode")
    assert not channels and facts["latent_shape"][-3] == 4 and facts["compression"] == 48
    assert Image.open(reconstruction).size == (facts["pixel_shape"][1], facts["pixel_shape"][0])  # (h, w, 3)
    with safe_open(latents, "pt") as file:
        assert list(file.get_tensor("latents").shape)[-3:] == facts["latent_shape"][-3:]
    *_, channels = client.predict(handle_file(asset("chelsea.png")), return_channels=True, api_name="/encode")
    assert len(channels) == 4
    image, seed, facts, returned = client.predict(source="the latents from the Encode tab", image=None,
                                                  api_name="/img2img")
    assert returned is None and facts["steps_run"] == len(facts["timesteps"]) > 0 and facts["start_step"] >= 0
    assert Image.open(image).text["parameters"].count("Denoising strength: 0.6") == 1


def test_inpaint_takes_an_image_and_a_mask_file(configured_client):
    image, seed, facts = configured_client.predict(handle_file(asset("astronaut.png")),
                                                   handle_file(asset("astronaut-mask.png")), "sunflowers",
                                                   api_name="/inpaint")
    assert 0 < facts["masked_latent_cells"] <= facts["latent_cells"] and "blending" in facts["method"]
    assert seed == 42 and Image.open(image).size[0] == SIDE
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset("astronaut-mask.png"))],
              "composite": None}
    page = configured_client.predict(editor=editor, prompt="sunflowers", api_name="/inpaint_page")
    assert np.array_equal(pixels(image), pixels(page[3]))  # the mask file means what the painted layer means


@pytest.mark.parametrize("configuration", ["default"], indirect=True)
def test_a_flag_that_is_not_yes_or_no_is_refused_readably(configured_client):
    with pytest.raises(AppError, match="return_trajectory must be true or false"):
        lean_generate(configured_client, return_trajectory="yes please")
    with pytest.raises(AppError, match="white = repaint"):
        configured_client.predict(handle_file(asset("astronaut.png")), None, api_name="/inpaint")


def test_the_readme_curl_example_runs(app_url):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- curl-example -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    ran = subprocess.run(["bash", "-c", block.replace("http://127.0.0.1:7860/", app_url)],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert "event: complete" in ran.stdout
    data = json.loads(ran.stdout.split("event: complete", 1)[1].split("data:", 1)[1].strip().splitlines()[0])
    image, seed, facts = data[:3]
    assert image["url"].endswith(".png") and seed == 42 and facts["steps"] == 2


def test_the_pages_own_events_are_off_the_api_page_but_answer(models):
    """Visitors' default: the API page lists the forms for scripts only; the page's events still run (the page sends
    every argument)."""
    from conftest import APP_SETTINGS, free_port, launched

    from latent_demo.config import Settings

    with launched(models, Settings(**{**APP_SETTINGS, "api_lists_page_events": False}, port=free_port())) as url:
        client = Client(url, verbose=False)
        listed = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert {"/generate", "/encode", "/compress", "/seed_walk"} <= set(listed)
        assert not [name for name in listed if name.endswith("_page")]
        outputs = client.predict("a fox", "", 3, False, 2, 0.0, DEFAULT, 64, 64, False, "both",
                                 api_name="/generate_page")
        assert outputs[0] == 3 and Image.open(outputs[3]).size == (64, 64)
