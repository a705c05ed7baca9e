"""Peak RSS of the app's work in a fresh process: load (build) the models, Encode tab, generate. Prints JSON."""

from __future__ import annotations

import argparse
import json
import resource

import torch

from benchmarks.components import build, weight_bytes
from latent_demo.config import Settings
from latent_demo.encoding import encode_image
from latent_demo.images import open_image
from latent_demo.latents import latents_to_rgb_preview
from latent_demo.params import GenerateParams
from latent_demo.tasks import generate
from latent_demo.ui.examples import asset


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="sd15")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    baseline = peak_rss_bytes()  # python + torch + diffusers + gradio-free imports
    models = build(args.preset, getattr(torch, args.dtype), fast_decoder=False)
    settings = Settings(max_image_side=args.size)
    encode_image(models, open_image(asset("astronaut.png"), settings.max_image_pixels), settings)
    params = GenerateParams(prompt="a red fox", num_inference_steps=args.steps, guidance_scale=7.5,
                            width=args.size, height=args.size)
    generate(models, params, settings, callback=lambda i, t, latents: latents_to_rgb_preview(latents))
    print(json.dumps({"baseline_rss": baseline, "peak_rss": peak_rss_bytes(), "weights": weight_bytes(models)}))


if __name__ == "__main__":
    main()
