"""Half-precision parity with diffusers, in one process and through the served app; prints the differences.

On CUDA the app runs the UNet and text encoder in float16 and keeps the VAE in float32. This script loads the offline
model exactly that way (the app's own loading code), then:
1. runs generate against diffusers' StableDiffusionPipeline on the same components, schedulers, guidance 0 and 7.5,
   and img2img / inpaint against their pipelines with every component in float16 (diffusers hands half-precision
   pixels to the VAE, so it needs the VAE in the same dtype); the seed's noise is drawn in float32 and cast on both
   sides (README, "What a seed reproduces");
2. starts `python app.py` on the same device and settings, calls /generate through gradio_client, and compares the
   served PNG with diffusers' latents decoded by the same VAE.
scripts/gpu_check.sh runs it on CUDA; `--device cpu --dtype bfloat16` tries the same code on a CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from conftest import make_image, make_mask  # noqa: E402
from test_parity import NEGATIVE, PROMPT, SEED, generator, pipeline  # noqa: E402
from test_parity_dtypes import seed_drawn_in_float32  # noqa: E402

from benchmarks.processes import free_port, wait_until_served  # noqa: E402
from latent_demo import tasks  # noqa: E402
from latent_demo.config import Settings  # noqa: E402
from latent_demo.images import pixels_to_pil  # noqa: E402
from latent_demo.latents import latents_to_pixels  # noqa: E402
from latent_demo.models import load_models  # noqa: E402
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams  # noqa: E402

SIZE = 256


LATENT_TOLERANCE = 0.01  # of the latents' range, as tests/test_parity_dtypes.py allows in bfloat16
PIXEL_TOLERANCE = 2  # of 255
MISSES: list[str] = []


def max_difference(ours: torch.Tensor, reference: torch.Tensor, what: str = "") -> str:
    ours, reference = ours.float().cpu(), reference.float().cpu()
    difference, scale = (ours - reference).abs().max().item(), reference.abs().max().item()
    if difference > LATENT_TOLERANCE * scale:
        MISSES.append(what)
    return f"max |Δ| {difference:.2e} (range {scale:.2f})"


def generate_rows(models, settings) -> list[str]:
    rows = []
    for scheduler in ("model default", "Euler a", "DPM++ 2M"):
        for guidance in (0.0, 7.5):
            params = GenerateParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, num_inference_steps=4,
                                    guidance_scale=guidance, scheduler=scheduler, width=SIZE, height=SIZE)
            ours = tasks.generate(models, params, settings)
            with seed_drawn_in_float32():
                reference = pipeline(StableDiffusionPipeline, models, scheduler)(
                    PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=guidance, width=SIZE,
                    height=SIZE, generator=generator(), output_type="latent").images
            difference = max_difference(ours.latents, reference, f"generate {scheduler} {guidance}")
            rows.append(f"generate, {scheduler}, guidance {guidance}: latents {difference}")
    return rows


def edit_rows(models, settings) -> list[str]:
    image, mask = make_image(SIZE, SIZE), make_mask(SIZE, SIZE, (64, 64, 192, 192))
    ours = tasks.img2img(models, Img2ImgParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED,
                                               num_inference_steps=4, guidance_scale=7.5, strength=0.5),
                         settings, image=image)
    with seed_drawn_in_float32():
        reference = pipeline(StableDiffusionImg2ImgPipeline, models, "model default")(
            PROMPT, image=image, negative_prompt=NEGATIVE, strength=0.5, num_inference_steps=4, guidance_scale=7.5,
            generator=generator(), output_type="latent").images
    difference = max_difference(ours.latents, reference, "img2img")
    rows = [f"img2img (every component {models.dtype}): latents {difference}"]
    ours = tasks.inpaint(models, InpaintParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED,
                                               num_inference_steps=4, guidance_scale=7.5, strength=0.75),
                         settings, image, mask)
    with seed_drawn_in_float32():
        reference = pipeline(StableDiffusionInpaintPipeline, models, "model default")(
            PROMPT, image=image, mask_image=mask, negative_prompt=NEGATIVE, strength=0.75, num_inference_steps=4,
            guidance_scale=7.5, generator=generator(), output_type="latent", height=SIZE, width=SIZE).images
    difference = max_difference(ours.latents, reference, "inpaint")
    rows.append(f"inpaint (every component {models.dtype}): latents {difference}")
    return rows


def served_row(models, app_flags: list[str]) -> str:
    """/generate through the server against diffusers' latents decoded by the same VAE."""
    from gradio_client import Client

    port = free_port()
    with tempfile.TemporaryFile() as log:
        app = subprocess.Popen([sys.executable, "app.py", *app_flags, "--api-lists-page-events", "--port", str(port)],
                               cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_served(url, app, 300)
            final = Client(url, verbose=False).predict(PROMPT, NEGATIVE, SEED, False, 4, 7.5, "model default", SIZE,
                                                       SIZE, False, api_name="/generate_page")[3]
        finally:
            app.terminate()
            app.wait(30)
    with seed_drawn_in_float32():
        latents = pipeline(StableDiffusionPipeline, models, "model default")(
            PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=7.5, width=SIZE, height=SIZE,
            generator=generator(), output_type="latent").images
    reference = np.asarray(pixels_to_pil(latents_to_pixels(models.vae, latents)), int)
    served = np.asarray(Image.open(final).convert("RGB"), int)
    difference = np.abs(served - reference)
    if difference.max() > PIXEL_TOLERANCE:
        MISSES.append("served /generate")
    return f"/generate served vs diffusers, 4 steps, guidance 7.5: pixels max |Δ| {difference.max()}/255, " \
           f"mean {difference.mean():.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", help="UNet and text encoder (the VAE stays float32)")
    args = parser.parse_args()
    flags = ["--model", "offline", "--fast-decoder", "none", "--offline", "--device", args.device, "--dtype",
             args.dtype, "--vae-dtype", "float32"]
    settings = Settings.from_sources(flags)
    models = load_models(settings)
    print(f"models: UNet/text {models.dtype}, VAE {models.vae_dtype} on {models.device}")
    for row in generate_rows(models, settings) + [served_row(models, flags)]:
        print(row)
    half = load_models(Settings.from_sources([*flags[:-1], args.dtype]))  # the VAE in half precision too
    for row in edit_rows(half, settings):
        print(row)
    if MISSES:  # tolerances: 1 % of the latents' range, 2/255 in pixels
        print(f"OUTSIDE THE TOLERANCE: {', '.join(MISSES)}")
        sys.exit(1)
    print("all within the tolerance (latents 1 % of their range, pixels 2/255)")


if __name__ == "__main__":
    main()
