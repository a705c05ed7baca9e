"""What a visitor's session carries between events and tabs (in gr.State, on the CPU): named fields, no string keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from PIL import Image


@dataclass(frozen=True)
class EncodedImage:
    """Latents handed on to img2img (and their image, to Inpainting): encoded on the Encode tab, generated, or
    uploaded as a file."""

    latents: torch.Tensor  # (1, 4, H/8, W/8), already × scaling_factor, float32 on the CPU
    image: Image.Image  # the image as it was encoded (resized to fit the limits)
    source: str  # where the latents came from, for the page: "the Encode tab", "the Generate tab", ...


@dataclass(frozen=True)
class LessonFigures:
    """The figures the visitor's own runs produced, quoted by the quiz (each field is one of quiz.LessonNumbers';
    tests/test_quiz.py checks it). None until the tab that measures it has run. `measured(psnr_db=...)` with a name
    that is not a field raises TypeError: a tab can't write a figure the quiz does not know."""

    pixel_values: int | None = None  # Encode
    latent_values: int | None = None
    psnr_db: float | None = None  # Encode (full decoder) and What compression keeps
    linear_psnr_db: float | None = None  # What compression keeps
    flop_ratio: float | None = None  # Why latents
    attention_ratio: float | None = None
    steps: int | None = None
    pixel_image_seconds: float | None = None
    latent_image_seconds: float | None = None
    noise_loss: float | None = None  # Noise explorer, What the UNet learned
    noise_loss_timestep: int | None = None

    def measured(self, **figures) -> LessonFigures:
        return dataclasses.replace(self, **figures)

    def known(self) -> dict:
        """The figures measured so far, by name."""
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


def figures(lesson: LessonFigures | None) -> LessonFigures:
    """The session's figures (a new visitor has none yet)."""
    return lesson if lesson is not None else LessonFigures()


@dataclass(frozen=True)
class LastRun:
    """The visitor's last Generate result, to compare the next run with."""

    params: object  # the GenerateParams it ran with
    latents: torch.Tensor  # final latents, float32 on the CPU
    image: Image.Image


@dataclass(frozen=True)
class NoiseCache:
    """The Noise explorer's clean latents of the visitor's image, so moving the slider only re-noises."""

    path: str  # the upload's file (Gradio gives each upload its own path)
    latents: torch.Tensor
