"""The launched app (offline model) called through gradio_client: one test per api_name, real output properties."""

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from safetensors.torch import load_file

from latent_demo.ui.examples import asset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DEFAULT = "model default"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def assert_png(path):
    with open(path, "rb") as file:
        assert file.read(8) == PNG_MAGIC, f"{path} is not a PNG (lossy formats would falsify the pixels)"


def generate(client, prompt="a fox", seed=3, randomize=False, steps=2, guidance=0.0, size=128):
    return client.predict(prompt, "", seed, randomize, steps, guidance, DEFAULT, size, size, False,
                          api_name="/generate")


def test_encode_shows_channels_numbers_reconstruction_and_latents_file(client):
    gallery, facts, original, reconstruction, error_map, latents_path = client.predict(
        handle_file(asset("astronaut.png")), False, api_name="/encode")
    assert len(gallery) == 4
    for item in gallery:
        assert_png(item["image"])
        assert Image.open(item["image"]).size == (256, 256)  # 64x64 latent cells, enlarged 4x
        assert item["caption"].startswith("channel")
    assert "512×512×3 = 786,432 pixel values → 4×64×64 = 16,384 latent values (48× fewer)" in facts
    for path in (original, reconstruction, error_map):
        assert_png(path)
        assert Image.open(path).size == (512, 512)
    assert np.array_equal(pixels(original), pixels(asset("astronaut.png")))
    latents = load_file(latents_path)["latents"]
    assert latents.shape == (1, 4, 64, 64) and torch.isfinite(latents).all()
    assert "PSNR" in facts


def test_generate_same_seed_same_image_and_random_seed_is_reported(client):
    seed, noise, live, final, trajectory, gif, status = generate(client, seed=3)
    assert seed == 3 and "Seed **3**" in status and "UNet per step" in status
    assert_png(final)
    image = pixels(final)
    assert image.shape == (128, 128, 3) and image.std() > 1  # not blank
    assert len(noise) == 4 and len(trajectory) == 3  # 2 steps + the decoded image
    assert Image.open(gif).n_frames == 3
    assert np.array_equal(pixels(generate(client, seed=3)[3]), image)
    assert not np.array_equal(pixels(generate(client, seed=4)[3]), image)
    random_seed = generate(client, seed=3, randomize=True)[0]
    assert isinstance(random_seed, int) and 0 <= random_seed < 2**32


def test_img2img_reports_its_start_step(client):
    seed, encoded, noised, live, result, status = client.predict(
        "the uploaded image", handle_file(asset("astronaut.png")), "a tiger", "", 5, False, 4, 0.0, 0.5, DEFAULT,
        False, api_name="/img2img")
    assert "Started at step **2 of 4**" in status and "2 steps run" in status
    assert_png(result)
    assert Image.open(result).size == (512, 512)
    assert not np.array_equal(pixels(encoded), pixels(noised))


def test_img2img_from_encode_uses_this_visitors_latents_only(client, app_url):
    from gradio_client import Client

    newcomer = Client(app_url, verbose=False)  # a new session: the Encode tab's latents of others are not shared
    with pytest.raises(AppError, match="no latents yet"):
        newcomer.predict("the latents from the Encode tab", None, "a tiger", "", 5, False, 4, 0.0, 0.5, DEFAULT,
                       False, api_name="/img2img")
    newcomer.predict(handle_file(asset("astronaut.png")), False, api_name="/encode")
    status = newcomer.predict("the latents from the Encode tab", None, "a tiger", "", 5, False, 4, 0.0, 0.5,
                              DEFAULT, False, api_name="/img2img")[-1]
    assert "Started at step **2 of 4**" in status


def inpaint(client, mask_name="astronaut-mask.png", feather=0):
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset(mask_name))],
              "composite": None}
    return client.predict(editor, "sunflowers", "", 9, False, 2, 0.0, 1.0, feather, DEFAULT, False,
                          api_name="/inpaint")


def test_inpaint_keeps_pixels_outside_the_mask_exactly(client):
    seed, grid, live, result, status = inpaint(client)
    assert "latent blending" in status
    mask = np.asarray(Image.open(asset("astronaut-mask.png")).getchannel("A")) > 0
    out, original = pixels(result), pixels(asset("astronaut.png"))
    assert np.array_equal(out[~mask], original[~mask])
    assert np.abs(out[mask].astype(int) - original[mask]).mean() > 5  # the inside was repainted
    grid_pixels = pixels(grid)
    assert grid_pixels.shape == (512, 512, 3) and set(np.unique(grid_pixels)) == {0, 255}


def test_inpaint_with_an_empty_mask_is_a_readable_error(client, tmp_path):
    empty = tmp_path / "empty.png"
    Image.new("RGBA", (512, 512), (0, 0, 0, 0)).save(empty)
    with pytest.raises(AppError, match="the mask is empty"):
        client.predict({"background": handle_file(asset("astronaut.png")), "layers": [handle_file(str(empty))],
                        "composite": None}, "x", "", 1, False, 2, 0.0, 1.0, 0, DEFAULT, False, api_name="/inpaint")


def test_add_noise_mixes_signal_and_noise_by_the_schedule(client):
    early = client.predict(handle_file(asset("astronaut.png")), 0, 0, api_name="/add_noise")
    late = client.predict(handle_file(asset("astronaut.png")), 999, 0, api_name="/add_noise")
    channels, decoded, plot, note = early
    assert len(channels) == 4 and "t = **0**" in note and "**1.000** · x_0 + **0.029** · ε" in note
    assert "t = **999**" in late[3] and "**0.068** · x_0" in late[3]
    assert_png(decoded)
    assert Image.open(decoded).size == (512, 512)


def test_seed_walk_starts_at_seed_a_and_ends_at_seed_b(client):
    gallery, gif, status = client.predict("a fox", 3, 4, 3, 2, 0.0, DEFAULT, 128, 128, api_name="/seed_walk")
    assert len(gallery) == 3 and Image.open(gif).n_frames == 3 and status == "3 frames"
    first, last = pixels(gallery[0]["image"]).astype(int), pixels(gallery[-1]["image"]).astype(int)
    assert np.abs(first - pixels(generate(client, seed=3)[3])).max() <= 2  # same noise up to slerp rounding
    assert np.abs(last - pixels(generate(client, seed=4)[3])).max() <= 2


@pytest.mark.parametrize("prompt, steps, message", [
    ("", 2, "the prompt is empty"),
    ("a fox", 0, "Value 0 is less than minimum value 1"),  # Gradio's own slider check
    ("a fox", 500, "Value 500 is greater than maximum value 50"),
])
def test_bad_values_arrive_as_readable_errors(client, prompt, steps, message):
    with pytest.raises(AppError, match=message):
        generate(client, prompt=prompt, steps=steps)


def test_a_text_file_posing_as_png_is_refused_and_the_server_keeps_serving(client, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image at all")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(fake)), False, api_name="/encode")
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
    assert "42 " in printed and "UNet per step" in printed
    assert "512×512×3 = 786,432 pixel values → 4×64×64 = 16,384 latent values (48× fewer)" in printed
