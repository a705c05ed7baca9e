"""Same seed and settings, same image: fingerprints of a result, and what differs between two runs."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from latent_demo.images import error_heatmap, pil_to_pixels


def fingerprint(value: torch.Tensor | Image.Image) -> str:
    """12 hex digits of SHA-256 over the exact values: latents as float32 (C order), an image as its RGB bytes."""
    if isinstance(value, Image.Image):
        data = np.asarray(value.convert("RGB")).tobytes()
    else:
        data = value.detach().float().cpu().contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True)
class RunComparison:
    """Two runs side by side: how far apart their final latents and pixels are, where, and which settings differ."""

    latents_max_difference: float  # max |Δ| of the final latents (inf when their shapes differ)
    pixels_max_difference: int  # max |Δ| of the images, 0-255 (255 when their sizes differ)
    heatmap: Image.Image | None  # where the images differ (None when their sizes differ)
    changed: dict[str, tuple]  # setting -> (first, second), for the settings that differ
    fingerprints: tuple[tuple[str, str], tuple[str, str]]  # (latents, pixels) of each run


def compare_runs(first_params, first_latents: torch.Tensor, first_image: Image.Image,
                 second_params, second_latents: torch.Tensor, second_image: Image.Image) -> RunComparison:
    """Compare two finished runs (params: the dataclasses they were run with)."""
    changed = {field.name: (getattr(first_params, field.name), getattr(second_params, field.name))
               for field in dataclasses.fields(first_params)
               if getattr(first_params, field.name) != getattr(second_params, field.name)}
    same_shape = first_latents.shape == second_latents.shape
    latents = (first_latents.float() - second_latents.float()).abs().max().item() if same_shape else float("inf")
    same_size = first_image.size == second_image.size
    if same_size:
        first_pixels, second_pixels = (np.asarray(image.convert("RGB"), int) for image in (first_image, second_image))
        pixels = int(np.abs(first_pixels - second_pixels).max())
        heatmap = error_heatmap(pil_to_pixels(first_image), pil_to_pixels(second_image))
    else:
        pixels, heatmap = 255, None
    return RunComparison(latents, pixels, heatmap, changed,
                         ((fingerprint(first_latents), fingerprint(first_image)),
                          (fingerprint(second_latents), fingerprint(second_image))))
