"""Step pictures made where the model work runs: the linear latent->RGB look (free), or the fast decoder and the
safety checker when those are on (then they must run where the GPU is, inside the job)."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from latent_demo.images import pixels_to_pil
from latent_demo.latents import latents_to_pixels, latents_to_rgb_preview
from latent_demo.models import Models


def linear_picture(latents: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Latents seen through the linear latent->RGB map (no model call), enlarged to `size` with hard edges."""
    return latents_to_rgb_preview(latents).resize(size, Image.Resampling.NEAREST)


PREVIEW_CELL_PX = 4  # a step's picture shows each latent cell as 4×4 px (the page enlarges it with hard edges)


def preview_size(latents: torch.Tensor) -> tuple[int, int]:
    """(width, height) of a step's picture: PREVIEW_CELL_PX per latent cell, half a 512-px image's side. Every cell
    stays visible, and each streamed picture costs a quarter of a full-size one to make and encode (PNG)."""
    return latents.shape[3] * PREVIEW_CELL_PX, latents.shape[2] * PREVIEW_CELL_PX


def preview_image(models: Models, latents: torch.Tensor, size: tuple[int, int], fast: bool = False) -> Image.Image:
    """A per-step picture: the linear latent->RGB approximation (free) or the fast decoder, at display size."""
    if fast and models.fast_decoder is not None:
        preview = pixels_to_pil(latents_to_pixels(models.fast_decoder, latents)).resize(size)
    else:
        preview = linear_picture(latents, size)
    if models.safety_filter is not None:  # previews show what is being generated: screened like the result
        preview, _ = models.safety_filter.screen(preview)
    return preview


def attach_trajectory_previews(models: Models, result: Any, screened: dict | None = None,
                               screened_denoised: dict | None = None) -> None:
    """With the safety checker on, the trajectory's pictures (x_t and x̂₀) are screened in the job, where the checker
    runs (`screened...`: step index -> the live previews, when they are those same pictures; the steps the stream
    dropped are made here)."""
    if not getattr(result, "trajectory", None):
        return
    size = preview_size(result.trajectory[0])
    result.trajectory_previews = _screened(models, result.trajectory, size, screened)
    result.denoised_previews = _screened(models, result.denoised_trajectory, size, screened_denoised)


def _screened(models: Models, steps: list, size: tuple[int, int], made: dict | None) -> list[Image.Image]:
    made = made or {}
    return [made.get(index) or preview_image(models, latents, size) for index, latents in enumerate(steps)]
