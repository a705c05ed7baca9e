"""The tabs' pictures of the denoising steps, made in the page's process off the GPU's clock: the live view of a
step, the trajectory, x_t beside x̂₀, GIF canvases, enlarged latent grids."""

from __future__ import annotations

from typing import Any

import gradio as gr
import torch
from PIL import Image

from latent_demo.models import Models
from latent_demo.serving.previews import linear_picture, preview_size
from latent_demo.serving.runner import ModelRunner, Step

# What the live preview, the trajectory gallery and the GIF show of each step (label, value).
VIEWS = [("x_t and x̂₀ side by side", "both"), ("x̂₀: the clean image the UNet predicts", "denoised"),
         ("x_t: the noisy latents", "noisy"),
         ("guidance: ε̂ without the prompt | ε̂ with it | s·(difference)", "guidance")]
GUIDANCE = "guidance"  # the trajectory shows each step's two predictions; live pictures stay x_t | x̂₀
DEFAULT_VIEW = "both"


CHANNEL_PICTURE_SIDE = 256  # px: latent channel pictures are enlarged to about this, one latent cell a square


def channel_scale(latents: torch.Tensor) -> int:
    """How much to enlarge a latent-grid picture so it shows at about CHANNEL_PICTURE_SIDE pixels."""
    return max(1, CHANNEL_PICTURE_SIDE // latents.shape[-1])


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Latent-grid pictures, enlarged with hard edges so each latent cell stays visible."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def trajectory_pictures(models: Models, result: Any, view: str = DEFAULT_VIEW, shown: dict | None = None
                        ) -> list[Image.Image]:
    """The trajectory as pictures in the chosen view: made in the job (screened) when they need a model, else here
    (linear). `shown`: step index -> the live picture of that step in this view, when live pictures are the
    trajectory's own (linear previews: see `reusable_live_pictures`); those are reused as they are."""
    if not result.trajectory:
        return []
    if view == GUIDANCE and result.guidance and not result.trajectory_previews:  # not with the safety checker on
        return guidance_pictures(result)
    size, shown = preview_size(result.trajectory[0]), shown or {}

    def noisy(index: int) -> Image.Image:
        made = result.trajectory_previews
        return made[index] if made else linear_picture(result.trajectory[index], size)

    def denoised(index: int) -> Image.Image:
        made = result.denoised_previews
        return made[index] if made else linear_picture(result.denoised_trajectory[index], size)

    def picture(index: int) -> Image.Image:
        if isinstance(shown.get(index), Image.Image):
            return shown[index]
        if view == "noisy":
            return noisy(index)
        return denoised(index) if view == "denoised" else side_by_side(noisy(index), denoised(index))

    return [picture(index) for index in range(len(result.trajectory))]


def reusable_live_pictures(runner: ModelRunner) -> bool:
    """Live pictures are the trajectory's own (linear previews, screened the same way) unless previews use the fast
    decoder or are off."""
    return runner.settings.preview == "approx"


def live_picture(runner: ModelRunner, step: Step, view: str = DEFAULT_VIEW) -> Image.Image | dict:
    """The live view of one step: the job's previews or the linear ones made here, or gr.skip() with previews off."""
    if runner.settings.preview == "none":
        return gr.skip()
    size = preview_size(step.latents)

    def picture(made: Image.Image | None, latents: torch.Tensor) -> Image.Image:
        return made if made is not None else linear_picture(latents, size)

    if view == "noisy":
        return picture(step.preview, step.latents)
    if view == "denoised":
        return picture(step.denoised_preview, step.denoised)
    # both (and guidance: the live view shows x_t | x̂₀; the two predictions are drawn once the run is over)
    return side_by_side(picture(step.preview, step.latents), picture(step.denoised_preview, step.denoised))


SIDE_BY_SIDE_GAP = 8  # px of white between x_t and x̂₀


def side_by_side(first: Image.Image, *others: Image.Image) -> Image.Image:
    """Pictures left to right at the first one's size (x_t | x̂₀; ε̂_uncond | ε̂_cond | direction)."""
    width, height = first.size
    row = Image.new("RGB", ((1 + len(others)) * width + len(others) * SIDE_BY_SIDE_GAP, height), "white")
    for index, picture in enumerate((first, *others)):
        row.paste(picture.convert("RGB").resize(first.size), (index * (width + SIDE_BY_SIDE_GAP), 0))
    return row


def guidance_pictures(result: Any) -> list[Image.Image]:
    """Per guided step: ε̂ without the prompt | ε̂ with it | the guidance direction, through the linear latent->RGB
    map on one fixed scale (so their sizes compare)."""
    size = preview_size(result.trajectory[0])
    return [side_by_side(*(linear_picture(tensor, size) for tensor in
                           (step.unconditional, step.conditional, step.direction))) for step in result.guidance]


def guidance_sheet(result: Any) -> Image.Image:
    """Every guided step's three pictures (see guidance_pictures) as one picture, a row per step from the first down:
    where a tab has no trajectory gallery (img2img), its live view ends on this."""
    rows = guidance_pictures(result)
    sheet = Image.new("RGB", (rows[0].width, len(rows) * (rows[0].height + SIDE_BY_SIDE_GAP) - SIDE_BY_SIDE_GAP),
                      "white")
    for index, row in enumerate(rows):
        sheet.paste(row, (0, index * (row.height + SIDE_BY_SIDE_GAP)))
    return sheet


def guidance_captions(result: Any) -> list[str]:
    return [f"step {i + 1}, t={t}: RMS ε̂_uncond {uncond:.2f}, ε̂_cond {cond:.2f}, s·Δ {direction:.2f}"
            for i, (t, (uncond, cond, direction)) in enumerate(zip(result.timesteps,
                                                                    (step.norms() for step in result.guidance),
                                                                    strict=True))]


def on_canvas(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled to fit `size` and centred on a white canvas of that size (a GIF's frames share one size)."""
    if image.size == size:
        return image
    fitted = image.convert("RGB")
    fitted.thumbnail(size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", size, "white")
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return canvas


def check_view(view: str) -> str:
    """The view an API caller asked for, or a ValueError naming the allowed ones."""
    allowed = [value for _, value in VIEWS]
    if view not in allowed:
        raise ValueError(f"view {view!r} is unknown; choose one of: {', '.join(allowed)}")
    return view
