"""GPU seconds a request will hold: the `duration` a ZeroGPU Space asks for before each model call.

On ZeroGPU every call states how long it will hold the GPU; a call asking for more than the visitor's remaining
daily quota is refused outright (2 minutes a day for visitors who are not logged in, 3.5 for a free account). So
the request is estimated from what it will do (UNet evaluations, VAE passes, image area) instead of asking for a
fixed worst case. The per-unit costs come from the served app on an H100 with SD 1.5-size weights
(benchmarks/README.md, "H100 figures reported before this repository measured them"); a ZeroGPU slice is a part
of an H200, so the margin covers a slower slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFERENCE_PIXELS = 512 * 512  # the costs below are for a 512×512 image


@dataclass(frozen=True)
class GpuCosts:
    fixed_s: float = 1.0  # per call: the worker hand-off, prompt encoding, moving results to the CPU
    unet_eval_s: float = 0.055  # one UNet evaluation of one latent image at 512 px (0.11 s/step at batch 2)
    vae_pass_s: float = 0.1  # one VAE encode or decode at 512 px
    margin: float = 1.5  # requested = margin × predicted: a call that overruns its request is cut off
    # A cold worker (the first call, or one the scheduler gives a fresh process) first pays ZeroGPU's `allow`, CUDA's
    # initialisation and the move of every packed weight to the GPU, inside the billed time. Not measured on a GPU
    # yet (scripts/zerogpu_check.sh prints cold against warm calls): until then every call keeps this much spare.
    cold_start_s: float = 3.0
    floor_s: int = 5
    cap_s: int = 120  # a single call never asks for more than a not-logged-in visitor's whole day


COSTS = GpuCosts()


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size an image is scaled to before encoding (an estimate: never raises; the task checks the limits)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return int(width * scale), int(height * scale)


def area_factor(width: int, height: int) -> float:
    """Cost relative to 512×512: convolutions scale with the pixel count."""
    return max(width * height, 1) / REFERENCE_PIXELS


def denoising_seconds(steps: int, guidance_scale: float, width: int, height: int, costs: GpuCosts = COSTS) -> float:
    """UNet time of one loop: one evaluation per step, two with classifier-free guidance."""
    evaluations = steps * (2 if guidance_scale > 1.0 else 1)
    return evaluations * costs.unet_eval_s * area_factor(width, height)


def requested_seconds(predicted: float, costs: GpuCosts = COSTS) -> int:
    """What to ask ZeroGPU for: the prediction with the margin, at least the floor. Over the cap -> ValueError:
    a call cut off at its duration would cost the visitor the seconds and give them nothing."""
    requested = max(costs.floor_s, math.ceil(costs.margin * (costs.fixed_s + predicted) + costs.cold_start_s))
    if requested > costs.cap_s:
        raise ValueError(f"this request needs about {requested} s of GPU, more than the {costs.cap_s} s one call may "
                         "hold: use fewer steps or frames, or a smaller image")
    return int(requested)


def generation_seconds(steps: int, guidance_scale: float, width: int, height: int, vae_passes: int = 1,
                       frames: int = 1, costs: GpuCosts = COSTS) -> int:
    """Generate (vae_passes=1: the decode), img2img / inpaint (more passes: the encodes), seed walk (frames)."""
    per_frame = denoising_seconds(steps, guidance_scale, width, height, costs)
    per_frame += vae_passes * costs.vae_pass_s * area_factor(width, height)
    return requested_seconds(frames * per_frame, costs)


def vae_seconds(width: int, height: int, passes: int, costs: GpuCosts = COSTS) -> int:
    """Encode tab and noise explorer: VAE passes only."""
    return requested_seconds(passes * costs.vae_pass_s * area_factor(width, height), costs)


def calls_per_quota(quota_s: float, requested_s: float, held_s: float) -> int:
    """How many calls fit in a daily quota: each call is charged what it holds, but is refused once the quota left
    is below what it asks for."""
    if requested_s > quota_s:
        return 0
    return int((quota_s - requested_s) // held_s) + 1
