"""Task parameters (diffusers' names) and their checks: bad values -> ValueError naming the value and the range."""

from __future__ import annotations

import math
from dataclasses import dataclass

from latent_demo.config import Settings
from latent_demo.schedulers import MODEL_DEFAULT, SCHEDULER_NAMES

MAX_SEED = 2**63 - 1
MAX_GUIDANCE = 30.0
MAX_FEATHER = 64.0


@dataclass(frozen=True)
class SamplingParams:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    num_inference_steps: int = 4
    guidance_scale: float = 0.0  # <= 1: no classifier-free guidance (one UNet call per step)
    scheduler: str = MODEL_DEFAULT
    fast_decode: bool = False  # decode the result with the TAESD-size decoder instead of the full VAE


@dataclass(frozen=True)
class GenerateParams(SamplingParams):
    width: int = 512
    height: int = 512


@dataclass(frozen=True)
class Img2ImgParams(SamplingParams):
    strength: float = 0.6  # how far down the schedule to start: 1 = from pure noise, 0 = keep the input


@dataclass(frozen=True)
class InpaintParams(SamplingParams):
    strength: float = 1.0
    feather_radius: float = 0.0  # soft edge (px) when pasting the result back into the original


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_int(name: str, value, low: int, high: int) -> int:
    if not _is_number(value) or value != int(value):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {int(value)}")
    return int(value)


def check_float(name: str, value, low: float, high: float) -> float:
    if not _is_number(value):
        raise ValueError(f"{name} must be a number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value}")
    return float(value)


def check_sampling(params: SamplingParams, settings: Settings) -> None:
    check_int("seed", params.seed, 0, MAX_SEED)
    check_int("num_inference_steps", params.num_inference_steps, 1, settings.max_steps)
    check_float("guidance_scale", params.guidance_scale, 0.0, MAX_GUIDANCE)
    if params.scheduler not in SCHEDULER_NAMES:
        raise ValueError(f"scheduler {params.scheduler!r} is unknown; choose one of: {', '.join(SCHEDULER_NAMES)}")
    if not isinstance(params.negative_prompt, str):
        raise ValueError(f"negative_prompt must be text, got {type(params.negative_prompt).__name__}")
    if isinstance(params, Img2ImgParams | InpaintParams):
        check_float("strength", params.strength, 0.0, 1.0)
    if isinstance(params, InpaintParams):
        check_float("feather_radius", params.feather_radius, 0.0, MAX_FEATHER)


def check_size(width, height, settings: Settings, multiple: int) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        check_int(name, value, settings.min_image_side, settings.max_image_side)
        if int(value) % multiple:
            raise ValueError(f"{name} must be a multiple of {multiple} (the VAE's downsampling), got {int(value)}")
    return int(width), int(height)
