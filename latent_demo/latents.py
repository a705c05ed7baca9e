"""Latents: encode pixels with the VAE, decode them back, and make them visible (channels, previews, numbers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderDC, AutoencoderKL, AutoencoderTiny
from PIL import Image

# Linear map from SD 1.x/2.x latents (already scaled) to RGB in about [-1, 1]: a least-squares fit of the VAE
# decoder over many images, as used for previews by ComfyUI and AUTOMATIC1111. Costs one 4x3 matmul.
SD_LATENT_RGB_FACTORS = torch.tensor([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
])


def check_latents(latents: torch.Tensor, channels: int) -> None:
    if latents.ndim != 4 or latents.shape[1] != channels:
        raise ValueError(f"latents have shape {tuple(latents.shape)}; expected (batch, {channels}, height, width)")
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or infinite values")


def down_factor(vae: AutoencoderKL | AutoencoderDC) -> int:
    """How many pixels one latent cell spans per side, read from the config (2 per down-sampling stage)."""
    stages = vae.config.encoder_block_out_channels if isinstance(vae, AutoencoderDC) else vae.config.block_out_channels
    return 2 ** (len(stages) - 1)


def shift_factor(vae) -> float:
    """FLUX.1 and SD3 centre their latents before scaling (`shift_factor`); SD, SDXL, DC-AE and TAESD do not."""
    return float(getattr(vae.config, "shift_factor", None) or 0.0)


@torch.inference_mode()
def pixels_to_latents(vae: AutoencoderKL | AutoencoderDC, pixels: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """pixels in [-1, 1] -> latents as the diffusion model sees them: (raw - shift_factor) x scaling_factor. The
    posterior mean, or a sample when a generator is given (a DC-AE encodes deterministically)."""
    pixels = convolution_layout(pixels.to(device=vae.device, dtype=vae.dtype))
    encoded = vae.encode(pixels)
    if isinstance(vae, AutoencoderDC):
        raw = encoded.latent
    else:
        raw = encoded.latent_dist.mean if generator is None else encoded.latent_dist.sample(generator)
    shift = shift_factor(vae)
    return ((raw - shift if shift else raw) * vae.config.scaling_factor).contiguous()


@torch.inference_mode()
def latents_to_pixels(vae: AutoencoderKL | AutoencoderDC | AutoencoderTiny, latents: torch.Tensor) -> torch.Tensor:
    """latents (scaled, shifted) -> pixels in about [-1, 1], float32 on the CPU. Works with the full VAE, TAESD and
    the other families' autoencoders."""
    check_latents(latents, vae.config.latent_channels)
    raw = latents.to(device=vae.device, dtype=vae.dtype) / vae.config.scaling_factor
    shift = shift_factor(vae)
    batch = convolution_layout(raw + shift if shift else raw)
    return vae.decode(batch).sample.float().cpu().contiguous()  # AutoencoderTiny also decodes to [-1, 1]


def convolution_layout(batch: torch.Tensor) -> torch.Tensor:
    """On a CPU, the VAE's input in channels_last (NHWC), oneDNN's native layout: convolutions then skip reordering
    their input and output. At 512 px: decode ×1.2–1.3, bf16 encode ×1.3, ~200 MB fewer temporaries; the values
    differ by float rounding only. The activations are converted, not the weights: that would copy memory-mapped
    weights, and the UNet gains nothing from it (benchmarks/README.md)."""
    return batch.to(memory_format=torch.channels_last) if batch.device.type == "cpu" else batch


def latents_to_rgb_preview(latents: torch.Tensor) -> Image.Image:
    """latents -> a small RGB image (latent resolution) by the linear approximation; no decoder call.

    In numpy: the server makes these pictures on threads beside the model's, and torch's einsum and rounding start
    an OpenMP team in the calling thread, which slows the model's own team until it is released (openmp.py)."""
    values = latents[0, :4].detach().to("cpu", torch.float32).numpy()
    rgb = np.einsum("chw,cr->hwr", values, SD_LATENT_RGB_FACTORS.numpy())
    return Image.fromarray(((np.clip(rgb, -1, 1) + 1) * 127.5).round().astype(np.uint8))


@dataclass(frozen=True)
class ChannelStats:
    channel: int
    mean: float
    std: float
    min: float
    max: float


def channel_stats(latents: torch.Tensor) -> list[ChannelStats]:
    values = latents[0].float().cpu()
    return [ChannelStats(c, v.mean().item(), v.std().item(), v.min().item(), v.max().item())
            for c, v in enumerate(values)]


def latents_to_channel_images(latents: torch.Tensor, peaks: list[float] | None = None) -> list[Image.Image]:
    """Each latent channel -> a uint8 RGB image of the latent's size, blue (negative) - white (0) - red.

    Per-channel normalisation: each channel is divided by its own 99th-percentile |value| (a few outliers would
    otherwise wash the rest out), so 0 stays white and both signs use the full colour range. `peaks` (one per
    channel, from `channel_peaks` of other latents) puts several tensors on one scale, to be compared.
    """
    channels = latents[0].float().cpu()
    peaks = channel_peaks(latents) if peaks is None else peaks
    return [Image.fromarray(_diverging_colormap((channel / peak).numpy()))
            for channel, peak in zip(channels, peaks, strict=True)]


def channel_peaks(latents: torch.Tensor) -> list[float]:
    """Each channel's 99th-percentile |value|: the colour scale of its channel image."""
    return [max(channel.abs().flatten().quantile(0.99).item(), 1e-8) for channel in latents[0].float().cpu()]


def _diverging_colormap(values: np.ndarray) -> np.ndarray:
    """values in [-1, 1] -> RGB uint8: -1 blue (59, 76, 192), 0 white, +1 red (180, 4, 38) (coolwarm ends)."""
    blue, white, red = np.array([59, 76, 192.0]), np.array([255, 255, 255.0]), np.array([180, 4, 38.0])
    t = np.clip(values, -1, 1)[..., None]
    rgb = np.where(t < 0, white + (blue - white) * (-t), white + (red - white) * t)
    return rgb.round().astype(np.uint8)


@dataclass(frozen=True)
class CompressionFacts:
    pixel_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]
    pixel_values: int
    latent_values: int

    @property
    def ratio(self) -> float:
        return self.pixel_values / self.latent_values

    def describe(self) -> str:
        h, w, c = self.pixel_shape
        lc, lh, lw = self.latent_shape
        return (f"{h}×{w}×{c} = {self.pixel_values:,} pixel values → {lc}×{lh}×{lw} = "
                f"{self.latent_values:,} latent values ({self.ratio:.0f}× fewer)")


def compression_facts(pixels: torch.Tensor, latents: torch.Tensor) -> CompressionFacts:
    """Counted from the tensors themselves, so any VAE or image size reports its own numbers."""
    _, c, h, w = pixels.shape
    return CompressionFacts(pixel_shape=(h, w, c), latent_shape=tuple(latents.shape[1:]),
                            pixel_values=pixels[0].numel(), latent_values=latents[0].numel())
