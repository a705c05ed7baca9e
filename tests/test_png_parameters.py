"""Settings inside the PNG: AUTOMATIC1111's `parameters` text (written from its documented format) and our JSON."""

import io

import pytest
from PIL import Image

from latent_demo.png_parameters import (
    GenerationSettings,
    a1111_text,
    parse_a1111,
    png_info,
    read_settings,
)

SETTINGS = GenerationSettings(prompt="a fox, in snow: at dusk\nsecond line", negative_prompt="blurry, low",
                              steps=20, scheduler="Euler a", guidance=7.5, seed=1234, width=512, height=384,
                              model="stabilityai/sd-turbo", strength=0.6)
# As AUTOMATIC1111 writes it (modules/processing.py create_infotext), with keys this app has no control for
WEBUI = """masterpiece, a lighthouse on a cliff
at sunset
Negative prompt: lowres, bad anatomy
Steps: 28, Sampler: DPM++ 2M Karras, Schedule type: Karras, CFG scale: 6.5, Seed: 987654321, Size: 640x448, \
Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, Lora hashes: "style: 1a2b3c", Version: v1.10.1"""


def saved(image: Image.Image, **kwargs) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "png", **kwargs)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_our_text_reads_back_exactly_and_quotes_what_needs_it():
    text = a1111_text(SETTINGS)
    assert text.splitlines()[-1].startswith("Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 512x384")
    assert 'Model: stabilityai/sd-turbo' in text and "Denoising strength: 0.6" in text
    read = parse_a1111(text)
    assert read.values == {"prompt": SETTINGS.prompt, "negative_prompt": "blurry, low", "steps": 20,
                           "scheduler": "Euler a", "guidance": 7.5, "seed": 1234, "width": 512, "height": 384,
                           "model": "stabilityai/sd-turbo", "strength": 0.6, "version": "latent-demo 0.1.0"}


def test_a_webui_png_fills_what_it_can_and_lists_the_rest():
    read = parse_a1111(WEBUI)
    assert read.values["prompt"] == "masterpiece, a lighthouse on a cliff\nat sunset"
    assert read.values["negative_prompt"] == "lowres, bad anatomy"
    assert (read.values["steps"], read.values["guidance"], read.values["seed"]) == (28, 6.5, 987654321)
    assert (read.values["width"], read.values["height"], read.values["scheduler"]) == (640, 448, "DPM++ 2M Karras")
    assert read.unsupported == {"Schedule type": "Karras", "Model hash": "6ce0161689", "Clip skip": "2",
                                "Lora hashes": "style: 1a2b3c"}


@pytest.mark.parametrize("text, prompt, negative", [
    ("just a prompt", "just a prompt", ""),  # no parameter line at all
    ("a cat\nSteps: 4, Sampler: Euler, Seed: 3", "a cat", ""),  # "Negative prompt:" missing
    ("Negative prompt: only this\nSteps: 4, Sampler: Euler, Seed: 3", "", "only this"),
    ("x\nNegative prompt: a\nb\nSteps: 4, Sampler: Bogus Sampler, Seed: 3, Foo: bar", "x", "a\nb"),
])
def test_odd_webui_texts(text, prompt, negative):
    read = parse_a1111(text)
    assert (read.values["prompt"], read.values["negative_prompt"]) == (prompt, negative)
    if "Bogus" in text:
        assert read.unsupported == {"Foo": "bar", "Sampler": "Bogus Sampler"} and "scheduler" not in read.values


def test_a_png_carries_both_chunks_and_ours_wins():
    image = saved(Image.new("RGB", (8, 8)), pnginfo=png_info(SETTINGS))
    assert image.text["parameters"] == a1111_text(SETTINGS)
    read = read_settings(image)
    assert read.source == "latent-demo" and read.values["prompt"] == SETTINGS.prompt and read.values["seed"] == 1234
    webui = saved(Image.new("RGB", (8, 8)), pnginfo=_text("parameters", WEBUI))
    assert read_settings(webui).source == "AUTOMATIC1111 parameters"


def _text(key, value):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    return info


@pytest.mark.parametrize("image, message", [
    (Image.new("RGB", (8, 8)), "carries no generation settings"),
    (saved(Image.new("RGB", (8, 8)), pnginfo=_text("latent-demo", "{not json")), "not valid JSON"),
    (saved(Image.new("RGB", (8, 8)), pnginfo=_text("latent-demo", "[1, 2]")), "does not hold generation settings"),
])
def test_a_png_without_usable_settings_gets_a_readable_error(image, message):
    with pytest.raises(ValueError, match=message):
        read_settings(image)


def test_hostile_texts_get_a_readable_error_quickly(tmp_path):
    import time

    from latent_demo.png_parameters import read_settings_from_file

    started = time.perf_counter()
    with pytest.raises(ValueError, match="the limit is 20,000"):
        parse_a1111("a" * 1_000_000)  # one long line: the pattern would take hours on it
    assert time.perf_counter() - started < 1
    nested = saved(Image.new("RGB", (8, 8)), pnginfo=_text("latent-demo", "[" * 10_000))
    with pytest.raises(ValueError, match="not valid JSON"):
        read_settings(nested)
    assert "Size" not in parse_a1111("p\nSteps: 4, Sampler: Euler, Size: ²x64").values  # not a number: skipped
    rgba = tmp_path / "rgba.png"  # settings survive whatever the image's mode (read before any conversion)
    Image.new("RGBA", (64, 64)).save(rgba, pnginfo=png_info(SETTINGS))
    assert read_settings_from_file(str(rgba), 10**6).values["seed"] == 1234
