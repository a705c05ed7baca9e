"""What compression keeps: one image's latents decoded by each decoder, and squeezed further before decoding.

Sizes are counted in bits, as stored: pixels are 8 bits per value; latents 16-bit floats (how half-precision models
hold them); a quantized variant counts its b bits per value plus each channel's range (two 16-bit floats).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from latent_demo.config import Settings
from latent_demo.encoding import prepare_and_encode
from latent_demo.images import pil_to_pixels, pixels_to_pil, psnr
from latent_demo.latents import latents_to_pixels, latents_to_rgb_preview
from latent_demo.models import Models

PIXEL_BITS = 8  # per value: uint8 RGB
LATENT_BITS = 16  # per value: a 16-bit float
RANGE_BITS = 2 * 16  # per channel of a quantized variant: its min and max as 16-bit floats

# Each squeeze: (kind, amount). pool: average k×k latent cells, then upsample back; channels: keep the first c (the
# others set to 0); bits: uniform quantization to 2^b levels between each channel's min and max.
SQUEEZES = {"pool ×2": ("pool", 2), "pool ×4": ("pool", 4), "3 channels": ("channels", 3),
            "2 channels": ("channels", 2), "8-bit": ("bits", 8), "4-bit": ("bits", 4), "2-bit": ("bits", 2)}
DEFAULT_SQUEEZES = list(SQUEEZES)
FULL_DECODER, FAST_DECODER, LINEAR_DECODER = "full VAE decoder", "fast decoder (TAESD size)", "linear 4×3 map"


@dataclass(frozen=True)
class Decoded:
    """One picture made from the latents, measured against the original."""

    label: str
    image: Image.Image
    psnr_db: float
    seconds: float  # the decode alone (full VAE, fast decoder or linear map)
    stored_bits: int  # what the latents it was decoded from take to store
    ratio: float  # the original image's bits / stored_bits


@dataclass(frozen=True)
class CompressionReport:
    image: Image.Image  # the original, as encoded (fitted to the limits)
    latents: torch.Tensor  # posterior mean, CPU float32
    pixel_bits: int
    decoders: list[Decoded]  # full VAE, fast decoder (when loaded), linear 4×3 map: the same 16-bit latents
    squeezed: list[Decoded]  # each squeeze, decoded by the full VAE


def squeeze(latents: torch.Tensor, name: str) -> tuple[torch.Tensor, int]:
    """latents -> (what the decoder gets after the squeeze, the bits the squeezed latents take to store)."""
    kind, amount = SQUEEZES[check_squeeze(name)]
    _, channels, height, width = latents.shape
    if kind == "pool":  # a grid that does not divide evenly keeps its last, partial cells
        pooled = F.adaptive_avg_pool2d(latents, (math.ceil(height / amount), math.ceil(width / amount)))
        return F.interpolate(pooled, size=(height, width), mode="bilinear"), pooled.numel() * LATENT_BITS
    if kind == "channels":
        kept = torch.zeros_like(latents)
        kept[:, :amount] = latents[:, :amount]
        return kept, amount * height * width * LATENT_BITS
    return quantize(latents, amount), latents.numel() * amount + channels * RANGE_BITS


def check_squeeze(name: str) -> str:
    if name not in SQUEEZES:
        raise ValueError(f"squeeze {name!r} is unknown; choose from: {', '.join(SQUEEZES)}")
    return name


def quantize(latents: torch.Tensor, bits: int) -> torch.Tensor:
    """Uniform quantization to 2^bits levels per channel between its min and max, returned as the decoded values."""
    low = latents.amin(dim=(0, 2, 3), keepdim=True)
    high = latents.amax(dim=(0, 2, 3), keepdim=True)
    step = (high - low).clamp_min(1e-8) / (2**bits - 1)
    return ((latents - low) / step).round() * step + low


def compare_compression(models: Models, image: Image.Image, settings: Settings,
                        squeezes: list[str] | None = None) -> CompressionReport:
    """Encode once (posterior mean), decode with each decoder, then squeeze and decode with the full VAE."""
    # 1. Check the squeezes, fit the image and encode it
    names = DEFAULT_SQUEEZES if squeezes is None else list(squeezes)
    for name in names:  # an unknown name fails before any work
        check_squeeze(name)
    prepared, pixels, latents = prepare_and_encode(models, image, settings)
    stored = latents.numel() * LATENT_BITS
    # 2. The decoders, all from the same latents
    decoders = [measured_decode(FULL_DECODER, lambda: latents_to_pixels(models.vae, latents), pixels, stored)]
    if models.fast_decoder is not None:
        decoders.append(measured_decode(FAST_DECODER, lambda: latents_to_pixels(models.fast_decoder, latents),
                                        pixels, stored))
    decoders.append(measured_decode(LINEAR_DECODER, lambda: linear_decode(latents, prepared.size), pixels, stored))
    # 3. Squeezed further, decoded by the full VAE
    return CompressionReport(prepared, latents, pixel_bits(pixels), decoders,
                             squeezed_decodes(models, pixels, latents, names))


def pixel_bits(pixels: torch.Tensor) -> int:
    """What one image takes to store as 8-bit RGB."""
    return pixels[0].numel() * PIXEL_BITS


def measured_decode(label: str, decode, pixels: torch.Tensor, bits: int) -> Decoded:
    """Time `decode()` (-> pixels) and measure it against the original `pixels`."""
    start = time.perf_counter()
    decoded = decode()
    seconds = time.perf_counter() - start
    return Decoded(label, pixels_to_pil(decoded), psnr(pixels, decoded), seconds, bits, pixel_bits(pixels) / bits)


def squeezed_decodes(models: Models, pixels: torch.Tensor, latents: torch.Tensor, names: list[str]) -> list[Decoded]:
    """Each squeeze of `latents` (the encoding of `pixels`), decoded by the full VAE."""
    squeezed = []
    for name in names:
        smaller, bits = squeeze(latents, name)
        squeezed.append(measured_decode(name, lambda smaller=smaller: latents_to_pixels(models.vae, smaller), pixels,
                                        bits))
    return squeezed


def linear_decode(latents: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The per-step preview's linear latent->RGB map, upsampled (bilinear) to the image's size: pixels in [-1, 1]."""
    return pil_to_pixels(latents_to_rgb_preview(latents).resize(size, Image.Resampling.BILINEAR))
