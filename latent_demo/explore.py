"""Exploring the latent space: the forward (noising) process at any t, and walks between two seeds' noise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from latent_demo.config import Settings
from latent_demo.latents import check_latents
from latent_demo.models import Models
from latent_demo.params import MAX_SEED, GenerateParams, check_int, check_size
from latent_demo.sampling import StepCallback, draw_noise
from latent_demo.tasks import TaskResult, generate


@dataclass(frozen=True)
class NoisedLatents:
    latents: torch.Tensor  # x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise
    noise: torch.Tensor
    timestep: int
    signal_weight: float  # sqrt(alpha_bar_t)
    noise_weight: float  # sqrt(1 - alpha_bar_t)


def noise_schedule(models: Models) -> torch.Tensor:
    """alpha_bar_t for t = 0 .. T-1: the share of the signal's variance left at each training timestep."""
    return DDPMScheduler.from_config(models.scheduler_config).alphas_cumprod.clone()


def add_noise(models: Models, latents: torch.Tensor, timestep: int, seed: int) -> NoisedLatents:
    """The forward process q(x_t | x_0) at one timestep, with noise drawn from the seed."""
    check_latents(latents, models.latent_channels)
    alphas_cumprod = noise_schedule(models)
    timestep = check_int("timestep", timestep, 0, len(alphas_cumprod) - 1)
    seed = check_int("seed", seed, 0, MAX_SEED)
    noise = draw_noise(tuple(latents.shape), torch.Generator("cpu").manual_seed(seed), torch.device("cpu"),
                       torch.float32)
    alpha_bar = alphas_cumprod[timestep].item()
    signal_weight, noise_weight = alpha_bar ** 0.5, (1 - alpha_bar) ** 0.5
    noisy = signal_weight * latents.float().cpu() + noise_weight * noise
    return NoisedLatents(noisy, noise, timestep, signal_weight, noise_weight)


def preview_decoder(models: Models):
    """The noise explorer decodes with the fast decoder when one is loaded (it is shown at every slider move)."""
    return models.decoder(fast=models.fast_decoder is not None)


def slerp(a: torch.Tensor, b: torch.Tensor, fraction: float) -> torch.Tensor:
    """Spherical interpolation: keeps the norm of Gaussian noise, which a straight line would shrink mid-way."""
    a_flat, b_flat = a.flatten().double(), b.flatten().double()
    cos = torch.dot(a_flat / a_flat.norm(), b_flat / b_flat.norm()).clamp(-1, 1)
    angle = torch.arccos(cos)
    if angle.abs() < 1e-6:
        return ((1 - fraction) * a.double() + fraction * b.double()).to(a.dtype)
    mixed = (torch.sin((1 - fraction) * angle) * a.double() + torch.sin(fraction * angle) * b.double()) / torch.sin(
        angle)
    return mixed.to(a.dtype)


def interpolate(models: Models, seed_a: int, seed_b: int, count: int, height: int, width: int,
                max_count: int) -> list[torch.Tensor]:
    """`count` noise latents from seed_a's to seed_b's (both ends included), for an image of height x width."""
    seed_a, seed_b = check_int("seed_a", seed_a, 0, MAX_SEED), check_int("seed_b", seed_b, 0, MAX_SEED)
    count = check_int("count", count, 2, max_count)
    shape = models.latent_shape(height, width)
    ends = [draw_noise(shape, torch.Generator("cpu").manual_seed(s), torch.device("cpu"), torch.float32)
            for s in (seed_a, seed_b)]
    return [slerp(ends[0], ends[1], i / (count - 1)) for i in range(count)]


def seed_walk(models: Models, params: GenerateParams, settings: Settings, seed_b: int, count: int,
              on_frame: Callable[[int, TaskResult], None] | None = None, callback: StepCallback | None = None
              ) -> list[TaskResult]:
    """Generate from each point of the slerp between params.seed's noise and seed_b's: one image per frame."""
    width, height = check_size(params.width, params.height, settings, models.vae_scale_factor)
    frames = interpolate(models, params.seed, seed_b, count, height, width, settings.max_seed_walk_frames)
    results = []
    for i, noise in enumerate(frames):
        results.append(generate(models, params, settings, callback, initial_noise=noise))
        if on_frame is not None:
            on_frame(i, results[-1])
    return results
