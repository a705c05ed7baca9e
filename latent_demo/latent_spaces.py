"""Latent spaces compared: the visitor's image through this model's VAE and through other families' autoencoders
(`--compare-vaes`), each with its own down-factor and channels, against the squeezes of "What compression keeps".

Every figure is read from a config or counted from the tensors: down-factor and channels from the config, values and
ratios from the latents each encoder returned, PSNR and times measured here. Bits are counted as compression.py
counts them (pixels 8 bits a value, latents 16-bit floats).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from diffusers import AutoencoderDC, AutoencoderKL
from PIL import Image

from latent_demo.compression import LATENT_BITS, Decoded, check_squeeze, pixel_bits, squeezed_decodes
from latent_demo.config import Settings
from latent_demo.images import error_heatmap, pil_to_pixels, pixels_to_pil, prepare_image, psnr
from latent_demo.latents import down_factor, latents_to_pixels, pixels_to_latents, shift_factor
from latent_demo.models import Models


@dataclass(frozen=True)
class LatentSpace:
    """One autoencoder's latent space, measured on one image."""

    name: str
    architecture: str  # the diffusers class
    down_factor: int
    channels: int
    latent_shape: tuple[int, int, int]  # (channels, height, width), as the encoder returned it
    pixel_values: int
    scaling_factor: float
    shift_factor: float
    reconstruction: Image.Image
    error_map: Image.Image
    psnr_db: float
    encode_seconds: float
    decode_seconds: float

    @property
    def latent_values(self) -> int:
        return math.prod(self.latent_shape)

    @property
    def value_ratio(self) -> float:
        """How many times fewer values than the pixels."""
        return self.pixel_values / self.latent_values

    @property
    def bit_ratio(self) -> float:
        """How many times fewer bits, latents stored as 16-bit floats against 8-bit pixels (value ratio / 2)."""
        return self.pixel_values * 8 / (self.latent_values * LATENT_BITS)


@dataclass(frozen=True)
class LatentSpacesReport:
    image: Image.Image  # as encoded: fitted to the limits and to every autoencoder's down-factor
    pixel_bits: int
    spaces: list[LatentSpace]  # this model's VAE first, then each --compare-vaes one in the order named
    squeezed: list[Decoded]  # this model's latents squeezed further, decoded by its VAE


def measure(name: str, vae: AutoencoderKL | AutoencoderDC, pixels: torch.Tensor) -> tuple[LatentSpace, torch.Tensor]:
    """Encode (the posterior mean) and decode `pixels` with one autoencoder, timed; -> (its row, its latents)."""
    started = time.perf_counter()
    latents = pixels_to_latents(vae, pixels).float().cpu()
    encoded = time.perf_counter()
    rebuilt = latents_to_pixels(vae, latents)
    decoded = time.perf_counter()
    space = LatentSpace(name, type(vae).__name__, down_factor(vae), vae.config.latent_channels,
                        tuple(latents.shape[1:]), pixels[0].numel(), float(vae.config.scaling_factor),
                        shift_factor(vae), pixels_to_pil(rebuilt), error_heatmap(pixels, rebuilt),
                        psnr(pixels, rebuilt), encoded - started, decoded - encoded)
    return space, latents


def common_multiple(models: Models) -> int:
    """The image side must be a multiple of every autoencoder's down-factor (8 and 32: 32)."""
    return math.lcm(models.vae_scale_factor, *(extra.down_factor for extra in models.extra_autoencoders))


def compare_latent_spaces(models: Models, image: Image.Image, settings: Settings, squeezes: list[str]
                          ) -> LatentSpacesReport:
    """This model's VAE, its squeezes, then every extra autoencoder, all on the same pixels."""
    # 1. Check the squeezes and fit the image to the limits and to every down-factor
    for name in squeezes:  # an unknown name fails before any work
        check_squeeze(name)
    prepared = prepare_image(image, settings.max_image_side, settings.min_image_side, common_multiple(models))
    pixels = pil_to_pixels(prepared)
    # 2. This model's VAE, and its latents squeezed further
    own, latents = measure("this model's VAE", models.vae, pixels)
    squeezed = squeezed_decodes(models, pixels, latents, squeezes)
    # 3. Every other family's autoencoder
    others = [measure(extra.name, extra.model, pixels)[0] for extra in models.extra_autoencoders]
    return LatentSpacesReport(prepared, pixel_bits(pixels), [own, *others], squeezed)
