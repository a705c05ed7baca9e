"""Bad input raises ValueError with a message that names the value and what is allowed."""

import dataclasses
import io

import numpy as np
import pytest
import torch
from conftest import make_image, make_mask, png_claiming
from PIL import Image

from latent_demo import tasks
from latent_demo.images import open_image, prepare_image
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams

LIMIT = 40_000_000


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"", "not an image"),
    (b"this is plain text, not a PNG", "not an image"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
    (png_bytes(make_image())[:200], "damaged or truncated"),
    (png_claiming(20000, 20000), "limit is 40,000,000"),
])
def test_unreadable_files_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        open_image(data, LIMIT)


def test_truncated_jpeg_is_refused():
    buffer = io.BytesIO()
    make_image(256, 256).save(buffer, format="JPEG")
    with pytest.raises(ValueError, match="damaged or truncated"):
        open_image(buffer.getvalue()[:600], LIMIT)


def test_zero_size_and_tiny_images_are_refused():
    with pytest.raises(ValueError, match="no pixels"):
        open_image(Image.new("RGB", (0, 0)), LIMIT)
    for size in [(1, 1), (7, 9), (63, 500)]:
        image = open_image(png_bytes(Image.new("RGB", size)), LIMIT)
        with pytest.raises(ValueError, match="at least 64 px"):
            prepare_image(image, 768, 64, 8)


def test_large_images_are_scaled_to_the_limit_and_the_vae_factor():
    prepared = prepare_image(make_image(1000, 700), max_side=512, min_side=64, multiple=8)
    assert prepared.size == (512, 352)


def test_odd_modes_become_rgb():
    sixteen_bit = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    cases = [sixteen_bit, Image.new("CMYK", (64, 64), (0, 255, 0, 0)), Image.new("P", (64, 64), 3),
             Image.new("LA", (64, 64), (10, 0)), Image.new("RGBA", (64, 64), (0, 0, 0, 0))]
    for source in cases:
        image = open_image(png_bytes(source) if source.mode != "CMYK" else source, LIMIT)
        assert image.mode == "RGB" and image.size == (64, 64)
    assert open_image(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), LIMIT).getpixel((0, 0)) == (255, 255, 255)
    bright = open_image(png_bytes(sixteen_bit), LIMIT)
    assert bright.getpixel((63, 63))[0] > 200 and bright.getpixel((0, 0))[0] < 5  # scaled, not clipped


def test_exif_rotation_is_applied():
    image = make_image(96, 64)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert open_image(buffer.getvalue(), LIMIT).size == (64, 96)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert open_image(buffer.getvalue(), LIMIT).getpixel((5, 5))[0] > 200


BASE = dict(prompt="a cat", num_inference_steps=2, width=64, height=64)


@pytest.mark.parametrize("change, message", [
    (dict(num_inference_steps=0), "num_inference_steps must be from 1 to 50, got 0"),
    (dict(num_inference_steps=51), "num_inference_steps must be from 1 to 50, got 51"),
    (dict(num_inference_steps=2.5), "whole number"),
    (dict(guidance_scale=-1.0), "guidance_scale must be from 0.0 to 30.0"),
    (dict(guidance_scale=float("nan")), "guidance_scale must be a number"),
    (dict(guidance_scale=float("inf")), "guidance_scale must be a number"),
    (dict(seed=-1), "seed must be from 0 to"),
    (dict(seed=2**64), "seed must be from 0 to"),
    (dict(width=100), "width must be a multiple of 8"),
    (dict(width=32), "width must be from 64 to 768"),
    (dict(height=100000), "height must be from 64 to 768"),
    (dict(scheduler="Bogus"), "scheduler 'Bogus' is unknown"),
    (dict(prompt="   \n"), "prompt is only spaces"),
    (dict(prompt="word " * 400), "the limit is 300"),
])
def test_generate_rejects_out_of_range_values(models, settings, change, message):
    with pytest.raises(ValueError, match=message):
        tasks.generate(models, GenerateParams(**{**BASE, **change}), settings)


def test_long_prompt_within_the_limit_is_truncated_and_says_so(models, settings):
    long_prompt = "a " * 80 + "tail words"  # 90 byte-level tokens > CLIP's 75
    result = tasks.generate(models, GenerateParams(**{**BASE, "prompt": long_prompt}), settings)
    assert result.prompt.truncated and result.prompt.token_limit == 75
    assert "words" in result.prompt.dropped_text
    short = tasks.generate(models, GenerateParams(**BASE), settings)
    assert not short.prompt.truncated and short.prompt.dropped_text == ""


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_strength_out_of_range(models, settings, image, strength):
    with pytest.raises(ValueError, match="strength"):
        tasks.img2img(models, Img2ImgParams(prompt="a cat", strength=strength), settings, image=image)


def test_img2img_needs_exactly_one_input_and_finite_latents(models, settings, image):
    params = Img2ImgParams(prompt="a cat", num_inference_steps=2)
    with pytest.raises(ValueError, match="exactly one"):
        tasks.img2img(models, params, settings)
    bad = torch.zeros(1, 4, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        tasks.img2img(models, params, settings, latents=bad)
    with pytest.raises(ValueError, match="expected \\(batch, 4"):
        tasks.img2img(models, params, settings, latents=torch.zeros(1, 3, 8, 8))


def test_mask_of_another_size_is_refused(models, settings, image):
    with pytest.raises(ValueError, match="mask is 32x32 px but the image is 64x64 px"):
        tasks.inpaint(models, InpaintParams(prompt="a cat"), settings, image, make_mask(32, 32, (0, 0, 8, 8)))


def test_limits_come_from_settings(models, settings):
    strict = dataclasses.replace(settings, max_steps=3, max_prompt_tokens=5)
    with pytest.raises(ValueError, match="from 1 to 3"):
        tasks.generate(models, GenerateParams(**{**BASE, "num_inference_steps": 4}), strict)
    with pytest.raises(ValueError, match="limit is 5"):
        tasks.generate(models, GenerateParams(**{**BASE, "prompt": "abcdefgh"}), strict)
