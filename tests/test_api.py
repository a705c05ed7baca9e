"""The launched app (offline model) called through gradio_client: one test per api_name, real output properties.

The endpoint tests run on every configuration of the matrix (conftest.CONFIGURATIONS: the CPU's default dtype,
the other full dtype, and the CUDA-like mix of a half-precision UNet with a float32 VAE)."""

import numpy as np
import pytest
import torch
from conftest import MATRIX_SIDE as SIDE
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors.torch import load_file

from latent_demo.images import prepare_image
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import CHANNEL_PICTURE_SIDE, SIDE_BY_SIDE_GAP

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT = "model default"


def prepared(name: str) -> Image.Image:
    """A bundled image as the matrix apps fit it before encoding."""
    return prepare_image(Image.open(asset(name)).convert("RGB"), SIDE, 64, 8)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def assert_png(path):
    with open(path, "rb") as file:
        assert file.read(8) == PNG_MAGIC, f"{path} is not a PNG (lossy formats would falsify the pixels)"


@pytest.fixture
def client(configured_client):
    """This module's endpoint tests talk to the app of each configuration in turn."""
    return configured_client


def generate(client, prompt="a fox", seed=3, randomize=False, steps=2, guidance=0.0, size=128):
    return client.predict(prompt, "", seed, randomize, steps, guidance, DEFAULT, size, size, False,
                          api_name="/generate_page")


def test_encode_shows_channels_numbers_reconstruction_and_latents_file(client):
    gallery, facts, original, reconstruction, error_map, latents_path = client.predict(
        handle_file(asset("astronaut.png")), False, api_name="/encode_page")
    assert len(gallery) == 4
    for item in gallery:
        assert_png(item["image"])
        assert Image.open(item["image"]).size == (256, 256)  # 16x16 latent cells, enlarged 16x
        assert item["caption"].startswith("channel")
    assert "128×128×3 = 49,152 pixel values → 4×16×16 = 1,024 latent values (48× fewer)" in facts
    for path in (original, reconstruction, error_map):
        assert_png(path)
        assert Image.open(path).size == (SIDE, SIDE)
    assert np.array_equal(pixels(original), np.asarray(prepared("astronaut.png")))
    latents = load_file(latents_path)["latents"]
    assert latents.dtype == torch.float32  # whatever the model's dtype: files hold float32
    assert latents.shape == (1, 4, 16, 16) and torch.isfinite(latents).all()
    assert "PSNR" in facts


def test_generate_same_seed_same_image_and_random_seed_is_reported(client):
    seed, noise, live, final, trajectory, gif, status = generate(client, seed=3)
    assert seed == 3 and "Seed **3**" in status and "UNet per step" in status
    assert_png(final)
    image = pixels(final)
    assert image.shape == (128, 128, 3) and image.std() > 1  # not blank
    assert len(trajectory) == 3  # 2 steps + the decoded image
    side = CHANNEL_PICTURE_SIDE  # the 4 noise channels in one picture, one latent cell a square
    assert Image.open(noise).size == (4 * side + 3 * SIDE_BY_SIDE_GAP, side)
    assert Image.open(gif).n_frames == 3
    assert np.array_equal(pixels(generate(client, seed=3)[3]), image)
    assert not np.array_equal(pixels(generate(client, seed=4)[3]), image)
    random_seed = generate(client, seed=3, randomize=True)[0]
    assert isinstance(random_seed, int) and 0 <= random_seed < 2**32


def test_img2img_reports_its_start_step(client):
    seed, encoded, noised, live, result, status = client.predict(
        "the uploaded image", handle_file(asset("astronaut.png")), "a tiger", "", 5, False, 4, 0.0, 0.5, DEFAULT,
        False, api_name="/img2img_page")
    assert "Started at step **2 of 4**" in status and "2 steps run" in status
    assert_png(result)
    assert Image.open(result).size == (SIDE, SIDE)
    assert not np.array_equal(pixels(encoded), pixels(noised))


def test_img2img_from_encode_uses_this_visitors_latents_only(configured_app_url):
    from gradio_client import Client

    newcomer = Client(configured_app_url, verbose=False)  # a new session: others' Encode tab latents are not shared
    with pytest.raises(AppError, match="no latents yet"):
        newcomer.predict("the latents from the Encode tab", None, "a tiger", "", 5, False, 4, 0.0, 0.5, DEFAULT,
                       False, api_name="/img2img_page")
    newcomer.predict(handle_file(asset("astronaut.png")), False, api_name="/encode_page")
    status = newcomer.predict("the latents from the Encode tab", None, "a tiger", "", 5, False, 4, 0.0, 0.5,
                              DEFAULT, False, api_name="/img2img_page")[-1]
    assert "Started at step **2 of 4**" in status


def inpaint(client, mask_name="astronaut-mask.png", feather=0):
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset(mask_name))],
              "composite": None}
    return client.predict(editor, "sunflowers", "", 9, False, 2, 0.0, 1.0, feather, DEFAULT, False,
                          api_name="/inpaint_page")


def test_inpaint_keeps_pixels_outside_the_mask_exactly(client):
    seed, grid, live, result, status = inpaint(client)
    assert "latent blending" in status
    painted = Image.fromarray((np.asarray(Image.open(asset("astronaut-mask.png")).getchannel("A")) > 0)
                              .astype(np.uint8) * 255)
    mask = np.asarray(painted.resize((SIDE, SIDE), Image.Resampling.LANCZOS)) >= 128  # as the app fits it
    out, original = pixels(result), np.asarray(prepared("astronaut.png"))
    assert np.array_equal(out[~mask], original[~mask])
    assert np.abs(out[mask].astype(int) - original[mask]).mean() > 5  # the inside was repainted
    grid_pixels = pixels(grid)
    assert grid_pixels.shape == (SIDE, SIDE, 3) and set(np.unique(grid_pixels)) == {0, 255}


def test_inpaint_with_an_empty_mask_is_a_readable_error(client, tmp_path):
    empty = tmp_path / "empty.png"
    Image.new("RGBA", (512, 512), (0, 0, 0, 0)).save(empty)
    with pytest.raises(AppError, match="the mask is empty"):
        client.predict({"background": handle_file(asset("astronaut.png")), "layers": [handle_file(str(empty))],
                        "composite": None}, "x", "", 1, False, 2, 0.0, 1.0, 0, DEFAULT, False,
                            api_name="/inpaint_page")


def test_add_noise_mixes_signal_and_noise_by_the_schedule(client):
    early = client.predict(handle_file(asset("astronaut.png")), 0, 0, api_name="/add_noise")
    late = client.predict(handle_file(asset("astronaut.png")), 999, 0, api_name="/add_noise")
    channels, decoded, plot, note = early
    assert len(channels) == 4 and "t = **0**" in note and "**1.000** · x_0 + **0.029** · ε" in note
    assert "t = **999**" in late[3] and "**0.068** · x_0" in late[3]
    assert_png(decoded)
    assert Image.open(decoded).size == (SIDE, SIDE)


def test_seed_walk_starts_at_seed_a_and_ends_at_seed_b(client):
    gallery, gif, status = client.predict("a fox", 3, 4, 3, 2, 0.0, DEFAULT, 128, 128, api_name="/seed_walk_page")
    assert len(gallery) == 3 and Image.open(gif).n_frames == 3 and status == "3 frames"
    first, last = pixels(gallery[0]["image"]).astype(int), pixels(gallery[-1]["image"]).astype(int)
    assert np.abs(first - pixels(generate(client, seed=3)[3])).max() <= 2  # same noise up to slerp rounding
    assert np.abs(last - pixels(generate(client, seed=4)[3])).max() <= 2


@pytest.mark.parametrize("prompt, steps, message", [
    ("   ", 2, "the prompt is only spaces"),
    ("a fox", 0, "Value 0 is less than minimum value 1"),  # Gradio's own slider check
    ("a fox", 500, "Value 500 is greater than maximum value 50"),
])
def test_bad_values_arrive_as_readable_errors(client, prompt, steps, message):
    with pytest.raises(AppError, match=message):
        generate(client, prompt=prompt, steps=steps)


def test_an_empty_prompt_is_unconditional_generation(client):
    seed, noise, live, final, trajectory, gif, status = generate(client, prompt="", guidance=0.0)
    assert "unconditional generation" in status
    assert pixels(final).std() > 1
    assert not np.array_equal(pixels(final), pixels(generate(client, prompt="a fox")[3]))


def test_every_parameter_but_the_images_has_a_default(client):
    """A caller gives only what matters to them; Gradio makes a parameter without a default required."""
    image_types = ("Image", "Imageeditor", "ImageEditor")
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/encode", "/generate", "/img2img", "/inpaint", "/add_noise", "/seed_walk", "/compare_vaes",
                 "/compress", "/encoder_grid", "/posterior", "/predict_noise", "/noise_space"):
        for parameter in endpoints[name]["parameters"]:
            if parameter["component"] not in image_types:
                assert parameter["parameter_has_default"], f"{name}: {parameter['parameter_name']} has no default"


def test_the_short_calls_work(client):
    seed, noise, live, final, trajectory, gif, status = client.predict(prompt="a fox", api_name="/generate_page")
    assert seed == 42 and Image.open(final).size == (SIDE, SIDE)  # the default size, fitted to the app's limit
    # Encode -> img2img with nothing but the hand-off: the session's latents and every default
    client.predict(handle_file(asset("chelsea.png")), api_name="/encode_page")
    status = client.predict(source="the latents from the Encode tab", image=None, api_name="/img2img_page")[-1]
    assert "Started at step" in status and "unconditional generation" in status
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset("astronaut-mask.png"))],
              "composite": None}
    status = client.predict(editor=editor, api_name="/inpaint_page")[-1]
    assert "latent blending" in status


def test_a_text_file_posing_as_png_is_refused_and_the_server_keeps_serving(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image at all")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(fake)), False, api_name="/encode_page")
    assert generate(client)[0] == 3


def test_long_prompt_is_truncated_and_says_so(client):
    status = generate(client, prompt="a " * 80 + "lighthouse")[-1]
    assert "CLIP reads only 75" in status and "lighthouse" in status


def test_build_app_constructs_without_launching(models, settings):
    from latent_demo.ui.app import build_app

    demo = build_app(models, settings)
    api_names = {dep.api_name for dep in demo.fns.values() if dep.api_visibility == "public"}
    assert {"encode", "generate", "img2img", "inpaint", "add_noise", "seed_walk"} <= api_names
    assert not demo.is_running


def test_the_readme_api_example_runs(app_url, capsys, monkeypatch):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("<!-- api-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'Client("http://127.0.0.1:7860/")' in block
    monkeypatch.chdir(root)
    exec(compile(block.replace("http://127.0.0.1:7860/", app_url), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "\n42 /" in printed and "'unet_per_step'" in printed
    assert "786432 -> 16384 (48× fewer)" in printed


def test_a_generated_png_carries_its_settings_and_generates_the_same_image_again(client, tmp_path):
    seed, _, _, image, _, _, _ = client.predict("a fox, at dusk", "blurry", 77, False, 2, 3.0, "Euler", SIDE, SIDE,
                                                False, api_name="/generate_page")
    png = Image.open(image)
    assert png.text["parameters"].startswith("a fox, at dusk\nNegative prompt: blurry\nSteps: 2, Sampler: Euler, ")
    filled = client.predict(handle_file(image), api_name="/png_info")
    prompt, negative, read_seed, randomize, steps, guidance, scheduler, width, height, note = filled
    assert (prompt, negative, read_seed, randomize, steps, guidance, scheduler, width, height) == (
        "a fox, at dusk", "blurry", 77, False, 2, 3.0, "Euler", SIDE, SIDE)
    assert "latent-demo settings" in note
    again = client.predict(prompt, negative, read_seed, randomize, steps, guidance, scheduler, width, height, False,
                           api_name="/generate_page")[3]
    assert np.array_equal(pixels(image), pixels(again))
    plain = tmp_path / "plain.png"
    Image.new("RGB", (64, 64)).save(plain)
    with pytest.raises(AppError, match="carries no generation settings"):
        client.predict(handle_file(str(plain)), api_name="/png_info")


def test_latents_go_out_and_come_back_in_without_an_encoder(client):
    """Encode's latents file, decoded again: the same picture as Encode's reconstruction; then img2img from it."""
    *_, reconstruction, _, latents_path = client.predict(handle_file(asset("chelsea.png")), False,
                                                         api_name="/encode_page")
    decoded, facts = client.predict(handle_file(latents_path), api_name="/decode_latents")
    assert np.abs(pixels(decoded).astype(int) - pixels(reconstruction).astype(int)).max() <= 1
    assert "with no encoder involved" in facts and "made by" not in facts  # same model: no warning
    status = client.predict(source="the latents from the Encode tab", image=None, api_name="/img2img_page")[-1]
    assert "From the latents of an uploaded latents file" in status


def test_img2img_and_inpainting_results_carry_stable_fingerprints(client):
    def fingerprints(status: str) -> str:
        return status.split("Fingerprint: ")[1].split(" (")[0]

    first = client.predict("the uploaded image", handle_file(asset("chelsea.png")), "a tiger",
                           api_name="/img2img_page")[-1]
    again = client.predict("the uploaded image", handle_file(asset("chelsea.png")), "a tiger",
                           api_name="/img2img_page")[-1]
    assert fingerprints(first) == fingerprints(again) and "latents `" in fingerprints(first)
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset("astronaut-mask.png"))],
              "composite": None}
    status = client.predict(editor=editor, prompt="sunflowers", api_name="/inpaint_page")[-1]
    assert "pixels `" in fingerprints(status)
