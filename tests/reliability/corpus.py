"""The bad-input corpus: files and values a public Space gets from visitors and bots, each with what must happen.

Every case is (id, endpoint, arguments, expected): expected is None for "a valid result" or a regex the readable
AppError message must match. Files are written into a folder given by the test.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import png_claiming
from gradio_client import handle_file
from PIL import Image

from latent_demo.ui.examples import asset

NAN, INF = float("nan"), float("inf")
UNREADABLE = "not an image this app can read"
DEFAULT = "model default"


@dataclass(frozen=True)
class Case:
    id: str
    endpoint: str
    args: tuple
    expected: str | None  # None: a valid result; else a regex of the error message


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def sample(width: int = 96, height: int = 64) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([x * 2, y * 3, (x + y)], -1).clip(0, 255).astype(np.uint8))


def noise(width: int = 96, height: int = 64) -> Image.Image:
    """Incompressible pixels: a truncated file of them really lacks image data."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


def safetensors_bytes(tensors: dict, metadata: dict | None = None) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def latents_files() -> dict[str, bytes]:
    """Latents files, good and hostile: every one a .safetensors name (checked by content, never by name)."""
    import pickle
    import struct
    import zipfile

    import torch

    good = torch.randn(1, 4, 8, 8)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data.pkl", pickle.dumps({"latents": [1, 2, 3]}))
    return {
        "latents_good.safetensors": safetensors_bytes({"latents": good}, {"model": "elsewhere"}),
        "latents_huge_header.safetensors": struct.pack("<Q", 8 * 2**30) + b"{}",
        "latents_two.safetensors": safetensors_bytes({"a": good, "b": good.clone()}),
        "latents_rank2.safetensors": safetensors_bytes({"latents": torch.randn(8, 8)}),
        "latents_3ch.safetensors": safetensors_bytes({"latents": torch.randn(1, 3, 8, 8)}),
        "latents_int.safetensors": safetensors_bytes({"latents": torch.ones(1, 4, 8, 8, dtype=torch.int64)}),
        "latents_nan.safetensors": safetensors_bytes({"latents": torch.full((1, 4, 8, 8), float("nan"))}),
        "latents_inf.safetensors": safetensors_bytes({"latents": torch.full((1, 4, 8, 8), float("inf"))}),
        "latents_huge_values.safetensors": safetensors_bytes({"latents": good * 1e6}),
        "latents_giant.safetensors": safetensors_bytes({"latents": torch.zeros(1, 4, 200, 200, dtype=torch.float16)}),
        "latents_pickle.safetensors": pickle.dumps({"latents": good.tolist()}),
        "latents_zip.safetensors": archive.getvalue(),
        "latents_truncated.safetensors": safetensors_bytes({"latents": good})[:-100],
    }


def write_files(folder: Path) -> dict[str, str]:
    """Every odd file of the corpus, by name -> path."""
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90°
    frames = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 0, 255)]]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    sixteen = Image.fromarray((np.arange(64 * 96).reshape(64, 96) * 10).astype(np.uint16))
    files = {
        "empty.png": b"",
        "truncated.png": encoded(noise(), "PNG")[:300],
        "truncated.jpg": encoded(sample(256, 256), "JPEG")[:700],
        "text.png": b"Hello, I am a text file with an image's name.\n",
        "vector.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="9"/></svg>',
        "animated.gif": gif.getvalue(),
        "sixteen_bit.png": encoded(sixteen, "PNG"),
        "cmyk.jpg": encoded(sample().convert("CMYK"), "JPEG"),
        "palette.png": encoded(sample().convert("P"), "PNG"),
        "grey_alpha.png": encoded(sample().convert("LA"), "PNG"),
        "rotated.jpg": encoded(sample(96, 64), "JPEG", exif=exif),
        "one_pixel.png": encoded(Image.new("RGB", (1, 1)), "PNG"),
        "seven_by_nine.png": encoded(Image.new("RGB", (7, 9)), "PNG"),
        "bomb_header.png": png_claiming(20000, 20000),
        "bomb_real.png": encoded(Image.new("1", (12000, 12000)), "PNG"),  # 144 MP that compresses to ~20 kB
        "bomb_48mp.png": encoded(Image.new("1", (8000, 6000)), "PNG"),  # between our limit and PIL's 2x refusal
        "mask_small.png": encoded(Image.new("RGBA", (32, 32), (255, 255, 255, 255)), "PNG"),
        "mask_empty.png": encoded(Image.new("RGBA", (512, 512), (0, 0, 0, 0)), "PNG"),
        "mask_full.png": encoded(Image.new("RGBA", (512, 512), (255, 255, 255, 255)), "PNG"),
        **latents_files(),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = str(folder / name)
    return paths


def generate_args(prompt="a fox", negative="", seed=1, randomize=False, steps=2, guidance=0.0, scheduler=DEFAULT,
                  width=64, height=64, fast=False, view="both") -> tuple:
    """Every parameter: Gradio's REST API (raw_call) takes no defaults."""
    return (prompt, negative, seed, randomize, steps, guidance, scheduler, width, height, fast, view)


def img2img_args(image, strength=0.5, seed=1, steps=2, source="the uploaded image") -> tuple:
    return (source, image, "a tiger", "", seed, False, steps, 0.0, strength, DEFAULT, False, "both")


def script_inpaint_args(mask) -> tuple:
    """/inpaint for scripts: the image and the mask as two files."""
    return (handle_file(asset("astronaut.png")), mask, "a flower", "", 1, False, 2, 0.0, 1.0, 0.0, DEFAULT, False)


def inpaint_args(mask, feather=0.0, background=None, strength=1.0) -> tuple:
    editor = {"background": background or handle_file(asset("astronaut.png")),
              "layers": [] if mask is None else [mask], "composite": None}
    return (editor, "a flower", "", 1, False, 2, 0.0, strength, feather, DEFAULT, False, "both")


def cases(files: dict[str, str]) -> list[Case]:
    f = {name: handle_file(path) for name, path in files.items()}
    out = [
        Case("0-byte file", "/encode_page", (f["empty.png"], False), UNREADABLE),
        Case("truncated PNG", "/encode_page", (f["truncated.png"], False), UNREADABLE + "|damaged or truncated"),
        Case("truncated JPEG", "/encode_page", (f["truncated.jpg"], False), "damaged or truncated|" + UNREADABLE),
        Case("text file named .png", "/encode_page", (f["text.png"], False), UNREADABLE),
        Case("SVG", "/encode_page", (f["vector.svg"], False), UNREADABLE),
        Case("animated GIF", "/encode_page", (f["animated.gif"], False), None),
        Case("16-bit PNG", "/encode_page", (f["sixteen_bit.png"], False), None),
        Case("CMYK JPEG", "/encode_page", (f["cmyk.jpg"], False), None),
        Case("palette PNG", "/encode_page", (f["palette.png"], False), None),
        Case("LA PNG", "/encode_page", (f["grey_alpha.png"], False), None),
        Case("EXIF-rotated JPEG", "/encode_page", (f["rotated.jpg"], False), None),
        Case("1x1 image", "/encode_page", (f["one_pixel.png"], False), "at least 64 px"),
        Case("7x9 image", "/encode_page", (f["seven_by_nine.png"], False), "at least 64 px"),
        Case("20000x20000 header", "/encode_page", (f["bomb_header.png"], False), "limit is 40,000,000|" + UNREADABLE),
        Case("decompression bomb", "/encode_page", (f["bomb_real.png"], False), "too large.*limit is 40,000,000"),
        Case("48 MP image (over the limit, under PIL's own)", "/encode_page", (f["bomb_48mp.png"], False),
             "limit is 40,000,000"),
        Case("unknown step view", "/generate_page", generate_args(view="sideways"), "not in the list of choices"),
        Case("text file to compress", "/compress_page", (f["text.png"], ["pool ×2"]), UNREADABLE),
        Case("unknown squeeze", "/compress_page", (f["palette.png"], ["pool ×3"]), "not in the list of choices"),
        Case("no squeeze at all", "/compress_page", (f["palette.png"], []), None),
        Case("why-latents side not a multiple of 8", "/why_latents", (100, 25, 7.5), "multiple of 8"),
        Case("latents file of another model", "/decode_latents", (f["latents_good.safetensors"],),
             None),
        Case("latents header claiming 8 GB", "/decode_latents", (f["latents_huge_header.safetensors"],),
             "header claims 8,589,934,592 bytes"),
        Case("two tensors in a latents file", "/decode_latents", (f["latents_two.safetensors"],), "holds 2 tensors"),
        Case("latents of rank 2", "/decode_latents", (f["latents_rank2.safetensors"],), "has shape \\(8, 8\\)"),
        Case("latents with 3 channels", "/decode_latents", (f["latents_3ch.safetensors"],), "has 3 channels"),
        Case("integer latents", "/decode_latents", (f["latents_int.safetensors"],), "dtype is I64"),
        Case("NaN latents", "/decode_latents", (f["latents_nan.safetensors"],), "NaN or infinite"),
        Case("infinite latents", "/decode_latents", (f["latents_inf.safetensors"],), "NaN or infinite"),
        Case("latents of 1e6", "/decode_latents", (f["latents_huge_values.safetensors"],), "saturated noise"),
        Case("latents for a 1600 px image", "/decode_latents", (f["latents_giant.safetensors"],),
             "decode to 1600×1600 px"),
        Case("pickle named .safetensors", "/decode_latents", (f["latents_pickle.safetensors"],),
             "looks like a pickle"),
        Case("zip named .safetensors", "/decode_latents", (f["latents_zip.safetensors"],), "looks like a zip"),
        Case("truncated latents file", "/decode_latents", (f["latents_truncated.safetensors"],),
             "truncated or padded"),
        Case("no latents file", "/decode_latents", (None,), "please upload a .safetensors latents file"),
        Case("no image for the toy encoder", "/toy_encoder", (None,), "please upload an image"),
        Case("bad file for the encoder grid", "/encoder_grid_page", (f["truncated.png"],), UNREADABLE + "|damaged"),
        Case("bad file for the toy encoder", "/toy_encoder", (f["text.png"],), UNREADABLE),
        Case("latent spaces of a 1-pixel image", "/compare_vaes_page", (f["one_pixel.png"], ["2-bit"]),
             "at least 64 px"),
        Case("latent spaces of no image", "/compare_vaes_page", (None, ["2-bit"]), "please upload an image"),
        Case("latent spaces with an unknown squeeze", "/compare_vaes_page", (f["palette.png"], ["pool ×3"]),
             "not in the list of choices|squeeze 'pool ×3' is unknown"),
        Case("posterior seed NaN", "/posterior_page", (f["palette.png"], NAN), "seed must be|not a valid value"),
        Case("posterior of a 1-pixel image", "/posterior_page", (f["one_pixel.png"], 0), "at least 64 px"),
        Case("text file as a PNG to read settings from", "/png_info", (f["text.png"],), UNREADABLE),
        Case("PNG without settings", "/png_info", (f["palette.png"],), "carries no generation settings"),
        Case("decompression bomb to read settings from", "/png_info", (f["bomb_real.png"],),
             "too large|the limit is 40,000,000"),
        Case("why-latents steps NaN", "/why_latents", (64, NAN, 7.5), "steps must be|not a valid value"),
        Case("quiz answer not a choice", "/check_quiz", ("the moon",) + (None,) * 6, "not in the list of choices"),
        Case("48 MP image into the inpainting editor", "/inpaint_page", inpaint_args(f["mask_full.png"],
                                                                                   background=f["bomb_48mp.png"]),
             "too large: the limit is 40,000,000"),
        Case("no image", "/encode_page", (None, False), "please upload an image"),
        Case("bad file to img2img", "/img2img_page", img2img_args(f["text.png"]), UNREADABLE),
        Case("bomb to img2img", "/img2img_page", img2img_args(f["bomb_header.png"]),
             "limit is 40,000,000|" + UNREADABLE),
        Case("bad file to noise explorer", "/add_noise", (f["truncated.png"], 500, 0), UNREADABLE + "|damaged"),
        Case("mask of another size", "/inpaint_page", inpaint_args(f["mask_small.png"]), "mask layer is 32x32 px"),
        Case("empty mask", "/inpaint_page", inpaint_args(f["mask_empty.png"]), "the mask is empty"),
        Case("no mask layer", "/inpaint_page", inpaint_args(None), "the mask is empty"),
        Case("full mask", "/inpaint_page", inpaint_args(f["mask_full.png"]), None),
        Case("unreadable background", "/inpaint_page", inpaint_args(f["mask_full.png"], background=f["text.png"]),
             UNREADABLE),
        # the forms for scripts (ui/script_api.py): their own parameters
        Case("a yes/no parameter that is text", "/generate", generate_args()[:10] + ("yes please", False, False),
             "return_trajectory must be true or false"),
        Case("return_noise as a number", "/generate", generate_args()[:10] + (False, False, 2),
             "return_noise must be true or false"),
        Case("a yes/no parameter that is a number", "/encode", (f["palette.png"], False, 3),
             "return_channels must be true or false"),
        Case("return_pictures as text", "/compress", (f["palette.png"], ["2-bit"], "yes"),
             "return_pictures must be true or false"),
        Case("a lesson form's timestep past the schedule", "/noise_space", (f["palette.png"], 5000, 0, False),
             "greater than maximum|timestep must be"),
        Case("a lesson form's seed NaN", "/posterior", (f["palette.png"], NAN, False), "seed must be|not a valid"),
        Case("a seed walk's return_frames as a number", "/seed_walk",
             ("a fox", 1, 2, 2, 1, 0.0, "model default", 64, 64, 7), "return_frames must be true or false"),
        Case("no mask for a script's inpainting", "/inpaint", script_inpaint_args(None), "please send a mask"),
        Case("a text file as the mask", "/inpaint", script_inpaint_args(f["text.png"]), UNREADABLE),
        Case("a bomb as the mask", "/inpaint", script_inpaint_args(f["bomb_header.png"]),
             "limit is 40,000,000|" + UNREADABLE),
        Case("a fully transparent mask", "/inpaint", script_inpaint_args(f["mask_empty.png"]), "the mask is empty"),
    ]
    seed = "seed must be|Value .+ is (less|greater) than (minimum|maximum) value|“(Noise )?[Ss]eed.*not a valid value"
    steps, guidance = "num_inference_steps must be", "guidance_scale must be"
    numbers = [
        ("seed NaN", "/generate_page", generate_args(seed=NAN), seed),
        ("seed inf", "/generate_page", generate_args(seed=INF), seed),
        ("seed -1", "/generate_page", generate_args(seed=-1), seed),
        ("seed 2^63+5", "/generate_page", generate_args(seed=2**63 + 5), seed),
        ("steps NaN", "/generate_page", generate_args(steps=NAN), steps),
        ("steps -5", "/generate_page", generate_args(steps=-5), "Value -5 is less than minimum value 1"),
        ("steps 1e9", "/generate_page", generate_args(steps=1e9), "greater than maximum value 50"),
        ("guidance NaN", "/generate_page", generate_args(guidance=NAN), guidance),
        ("guidance -1", "/generate_page", generate_args(guidance=-1), "less than minimum value 0"),
        ("guidance 1e6", "/generate_page", generate_args(guidance=1e6), "greater than maximum value 30"),
        ("width 63", "/generate_page", generate_args(width=63), "less than minimum value 64|multiple of 8"),
        ("width 1e5", "/generate_page", generate_args(width=100000), "greater than maximum value"),
        ("width NaN", "/generate_page", generate_args(width=NAN), "width must be"),
        ("height -64", "/generate_page", generate_args(height=-64), "less than minimum value 64"),
        ("strength NaN", "/img2img_page", img2img_args(f["palette.png"], strength=NAN), "strength must be"),
        ("strength 2", "/img2img_page", img2img_args(f["palette.png"], strength=2), "greater than maximum value 1"),
        ("strength -0.5", "/img2img_page", img2img_args(f["palette.png"], strength=-0.5), "less than minimum value 0"),
        ("feather NaN", "/inpaint_page", inpaint_args(f["mask_full.png"], feather=NAN), "feather_radius must be"),
        ("feather -1", "/inpaint_page", inpaint_args(f["mask_full.png"], feather=-1), "less than minimum value 0"),
        ("latent cell outside the grid", "/latent_cell", (handle_file(asset("chelsea.png")), 90, 0),
         "cell row must be|greater than maximum"),
        ("latent cell not a whole number", "/latent_cell", (handle_file(asset("chelsea.png")), 2.5, 0),
         "cell row must be|not a valid value"),
        ("latent cell NaN", "/latent_cell", (handle_file(asset("chelsea.png")), 3, NAN),
         "cell column must be|not a valid value"),
        ("timestep -1", "/add_noise", (handle_file(asset("chelsea.png")), -1, 0), "less than minimum value 0"),
        ("timestep 1000", "/add_noise", (handle_file(asset("chelsea.png")), 1000, 0), "greater than maximum"),
        ("timestep NaN", "/add_noise", (handle_file(asset("chelsea.png")), NAN, 0), "timestep must be"),
        ("noise seed inf", "/add_noise", (handle_file(asset("chelsea.png")), 10, INF), seed),
        ("predict timestep 1000", "/predict_noise_page", (handle_file(asset("chelsea.png")), 1000, 0, ""),
         "greater than maximum"),
        ("predict timestep NaN", "/predict_noise_page", (handle_file(asset("chelsea.png")), NAN, 0, ""),
         "timestep must be"),
        ("predict seed NaN", "/predict_noise_page", (handle_file(asset("chelsea.png")), 10, NAN, ""), seed),
        ("predict no image", "/predict_noise_page", (None, 500, 0, ""), "please upload an image"),
        ("predict prompt of spaces", "/predict_noise_page", (handle_file(asset("chelsea.png")), 500, 0, "  \n"),
         "the prompt is only spaces"),
        ("predict prompt too long", "/predict_noise_page", (handle_file(asset("chelsea.png")), 500, 0, "ab " * 700),
         "the limit is 300"),
        ("noise space timestep -1", "/noise_space_page", (handle_file(asset("chelsea.png")), -1, 0),
         "less than minimum value 0"),
        ("noise space timestep NaN", "/noise_space_page", (handle_file(asset("chelsea.png")), NAN, 0),
         "timestep must be"),
        ("noise space bad file", "/noise_space_page", (f["truncated.png"], 500, 0), UNREADABLE + "|damaged"),
        ("walk frames 1", "/seed_walk_page", ("a fox", 1, 2, 1, 2, 0.0, DEFAULT, 64, 64), "less than minimum value 2"),
        ("walk frames 1e6", "/seed_walk_page", ("a fox", 1, 2, 1e6, 2, 0.0, DEFAULT, 64, 64), "greater than maximum"),
        ("walk seed B NaN", "/seed_walk_page", ("a fox", 1, NAN, 3, 2, 0.0, DEFAULT, 64, 64), seed),
        ("scheduler unknown", "/generate_page", generate_args(scheduler="Bogus"), "Bogus"),
        ("compare steps NaN", "/compare_runs", generate_args(steps=NAN)[:-1], "steps must be|not a valid value"),
        ("compare width 63", "/compare_runs", generate_args(width=63)[:-1],
         "less than minimum value 64|multiple of 8"),
        ("img2img source unknown", "/img2img_page", img2img_args(f["palette.png"], source="from /etc/passwd"),
         "from /etc/passwd"),
    ]
    out += [Case(name, endpoint, args, expected) for name, endpoint, args, expected in numbers]
    prompts = [
        ("10,000-character prompt", generate_args(prompt="x" * 10_000), "10,000 characters; the limit is 2,400"),
        ("10,000-character negative prompt", generate_args(negative="y " * 5000, guidance=5.0),
         "negative prompt is 10,000 characters"),
        ("over-long prompt in tokens", generate_args(prompt="ab " * 700), "has 1400 tokens; the limit is 300"),
        ("control characters", generate_args(prompt="a fox\x00\x07\x1b[31m\r\n\t in snow"), None),
        ("emoji", generate_args(prompt="🦊 in the 🌲🌲, ✨"), None),
        ("right-to-left and combining marks", generate_args(prompt="ثعلب a\u0301\u200f fox"), None),
        ("whitespace-only prompt", generate_args(prompt=" \n\t "), "the prompt is only spaces"),
        ("missing prompt", generate_args(prompt=None), None),  # no prompt is the empty prompt: unconditional
        ("missing fields", (None,) * 10, "is not a valid value"),
    ]
    out += [Case(name, "/generate_page", args, expected) for name, args, expected in prompts]
    return out
