"""The encode stage end to end: image -> latents -> back to pixels, with everything the Encode tab shows."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.images import error_heatmap, pil_to_pixels, pixels_to_pil, prepare_image, psnr
from latent_demo.latents import (
    ChannelStats,
    CompressionFacts,
    channel_stats,
    compression_facts,
    latents_to_channel_images,
    latents_to_pixels,
    pixels_to_latents,
)
from latent_demo.models import Models


@dataclass
class EncodeReport:
    image: Image.Image  # the input as encoded (resized to fit the limits and the VAE factor)
    latents: torch.Tensor  # (1, 4, H/8, W/8), x scaling_factor, float32 on the CPU
    channel_images: list[Image.Image]
    stats: list[ChannelStats]
    facts: CompressionFacts
    reconstruction: Image.Image
    error_map: Image.Image
    psnr_db: float
    timings: dict[str, float]  # seconds: encode, decode, total


def prepare_and_encode(models: Models, image: Image.Image, settings: Settings
                       ) -> tuple[Image.Image, torch.Tensor, torch.Tensor]:
    """image -> (the image fitted to the limits and the VAE factor, its pixels, its latents: posterior mean)."""
    prepared = prepare_image(image, settings.max_image_side, settings.min_image_side, models.vae_scale_factor)
    pixels = pil_to_pixels(prepared)
    return prepared, pixels, pixels_to_latents(models.vae, pixels).float().cpu()


def encode_image(models: Models, image: Image.Image, settings: Settings, fast_decode: bool = False) -> EncodeReport:
    """Encode with the posterior mean (deterministic), decode with the full VAE (or the fast decoder)."""
    # 1. Fit the image to the limits and the VAE factor, and encode it
    started = time.perf_counter()
    decoder = models.decoder(fast_decode)
    prepared, pixels, latents = prepare_and_encode(models, image, settings)
    encoded = time.perf_counter()
    # 2. Decode back to pixels
    reconstruction = latents_to_pixels(decoder, latents)
    decoded = time.perf_counter()
    # 3. Measure what was lost and what the latents look like
    return EncodeReport(
        image=prepared, latents=latents, channel_images=latents_to_channel_images(latents),
        stats=channel_stats(latents), facts=compression_facts(pixels, latents),
        reconstruction=pixels_to_pil(reconstruction), error_map=error_heatmap(pixels, reconstruction),
        psnr_db=psnr(pixels, reconstruction),
        timings={"encode": encoded - started, "decode": decoded - encoded, "total": time.perf_counter() - started})
