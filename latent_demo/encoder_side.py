"""The encoder's side of the lesson: the lesson's own two-convolution toy encoder next to the VAE's, and the VAE's
posterior as the distribution it is (a mean and a spread per latent value), not only its mean."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, AutoencoderTiny
from PIL import Image
from torch import nn

from latent_demo.images import error_heatmap, psnr
from latent_demo.latents import convolution_layout, latents_to_pixels, pixels_to_latents
from latent_demo.models import Models
from latent_demo.params import check_int

TOY_SEED = 0  # the toy encoder is untrained: its weights are PyTorch's default init from this seed


def toy_encoder() -> nn.Sequential:
    """The lesson's minimal example exactly as printed: halve the size twice while multiplying the channels.
    Untrained: every weight and bias drawn as PyTorch's default init draws them (uniform within 1/√fan_in), from a
    generator of its own, so the process's random state is left alone (requests run in parallel threads)."""
    toy = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
    ).eval()
    generator = torch.Generator().manual_seed(TOY_SEED)
    with torch.no_grad():
        for conv in (toy[0], toy[2]):
            bound = 1 / math.sqrt(conv.weight[0].numel())
            for parameter in (conv.weight, conv.bias):
                parameter.uniform_(-bound, bound, generator=generator)
    return toy


@dataclass(frozen=True)
class ToyEncoding:
    pixel_shape: tuple[int, ...]  # (3, H, W)
    toy_shape: tuple[int, ...]  # (32, H/4, W/4)
    vae_shape: tuple[int, ...]  # (4, H/8, W/8)
    features: torch.Tensor  # the toy encoder's output, (1, 32, H/4, W/4)

    @staticmethod
    def values(shape: tuple[int, ...]) -> int:
        count = 1
        for side in shape:
            count *= side
        return count

    @property
    def toy_ratio(self) -> float:
        """How many times fewer values than the pixels (1.5 at any size)."""
        return self.values(self.pixel_shape) / self.values(self.toy_shape)

    @property
    def vae_ratio(self) -> float:
        return self.values(self.pixel_shape) / self.values(self.vae_shape)


@torch.inference_mode()
def encode_with_toy(models: Models, pixels: torch.Tensor) -> ToyEncoding:
    """pixels (1, 3, H, W) in [-1, 1] -> the toy encoder's features, with the VAE's latent shape for comparison."""
    features = toy_encoder()(pixels.float().cpu())
    _, channels, height, width = models.latent_shape(pixels.shape[2], pixels.shape[3])
    return ToyEncoding(tuple(pixels.shape[1:]), tuple(features.shape[1:]), (channels, height, width), features)


@dataclass(frozen=True)
class Posterior:
    """The VAE encoder's output for one image: a Gaussian per latent value. Tensors float32 on the CPU, scaled by
    scaling_factor as the latents the app shows are."""

    mean: torch.Tensor
    std: torch.Tensor  # exp(0.5 · logvar) × scaling_factor
    samples: list[torch.Tensor]  # draws mean + std · ε
    mean_decoded: torch.Tensor  # pixels
    samples_decoded: list[torch.Tensor]
    sample_psnr_db: list[float]  # each sample's decode against the mean's decode
    mean_psnr_db: float  # the mean's decode against the original


@torch.inference_mode()
def posterior(models: Models, pixels: torch.Tensor, seed: int, count: int = 2) -> Posterior:
    """Encode once; decode the mean and `count` samples drawn from the seed (as img2img draws one)."""
    vae = models.vae
    distribution = vae.encode(convolution_layout(pixels.to(device=vae.device, dtype=vae.dtype))).latent_dist
    scale = vae.config.scaling_factor
    mean = (distribution.mean * scale).float().cpu().contiguous()
    std = (distribution.std * scale).float().cpu().contiguous()
    generator = torch.Generator("cpu").manual_seed(seed)
    samples = [mean + std * torch.randn(mean.shape, generator=generator) for _ in range(count)]
    mean_decoded = latents_to_pixels(vae, mean)
    decoded = [latents_to_pixels(vae, sample) for sample in samples]
    return Posterior(mean, std, samples, mean_decoded, decoded, [psnr(mean_decoded, d) for d in decoded],
                     psnr(pixels, mean_decoded))


@dataclass(frozen=True)
class GridCell:
    """One encoder × decoder pair on the visitor's image."""

    encoder: str
    decoder: str
    reconstruction: torch.Tensor  # pixels in about [-1, 1]
    psnr_db: float
    error_map: Image.Image
    encode_seconds: float
    decode_seconds: float


def autoencoders(models: Models) -> dict[str, AutoencoderKL | AutoencoderTiny]:
    """The autoencoders loaded: the full VAE, and TAESD (`--fast-decoder`) when it is loaded; TAESD has an encoder
    too, trained to give latents the full VAE's decoder also reads."""
    found = {"full VAE": models.vae}
    if models.fast_decoder is not None:
        found["TAESD"] = models.fast_decoder
    return found


@torch.inference_mode()
def encode_with(encoder: AutoencoderKL | AutoencoderTiny, pixels: torch.Tensor) -> torch.Tensor:
    """pixels in [-1, 1] -> latents × scaling_factor (the posterior mean for the VAE; TAESD's are already scaled)."""
    if isinstance(encoder, AutoencoderTiny):
        batch = convolution_layout(pixels.to(device=encoder.device, dtype=encoder.dtype))
        return encoder.encode(batch).latents.float().cpu()
    return pixels_to_latents(encoder, pixels).float().cpu()


def encoder_decoder_grid(models: Models, pixels: torch.Tensor) -> list[GridCell]:
    """Every loaded encoder × every loaded decoder: which of the two loses what (encoder error vs decoder error)."""
    cells = []
    for encoder_name, encoder in autoencoders(models).items():
        started = time.perf_counter()
        latents = encode_with(encoder, pixels)
        encoded = time.perf_counter() - started
        for decoder_name, decoder in autoencoders(models).items():
            started = time.perf_counter()
            rebuilt = latents_to_pixels(decoder, latents)
            cells.append(GridCell(encoder_name, decoder_name, rebuilt, psnr(pixels, rebuilt),
                                  error_heatmap(pixels, rebuilt), encoded, time.perf_counter() - started))
    return cells


@dataclass(frozen=True)
class LatentCell:
    """What one latent cell holds and how far it reaches through the decoder."""

    row: int
    col: int
    values: list[float]  # its channel values (× scaling_factor)
    patch: torch.Tensor  # the pixels it covers, (1, 3, factor, factor) in [-1, 1]
    change: torch.Tensor  # (H, W): mean |Δ| over RGB of the decode when only this cell moves by one std
    radius_90: float  # px from the cell's centre that hold 90 % of that change
    outside_share: float  # share of the change outside the cell's own pixels


def latent_cell(models: Models, latents: torch.Tensor, pixels: torch.Tensor, row: int, col: int) -> LatentCell:
    """Nudge one cell of `latents` (each channel by its standard deviation over the image) and decode."""
    _, _, height, width = latents.shape
    row, col = check_int("cell row", row, 0, height - 1), check_int("cell column", col, 0, width - 1)
    factor = models.vae_scale_factor
    nudged = latents.clone()
    nudged[0, :, row, col] += latents[0].flatten(1).std(dim=1)
    base, moved = latents_to_pixels(models.vae, latents), latents_to_pixels(models.vae, nudged)
    change = (moved - base).abs().mean(dim=1)[0]
    ys, xs = torch.meshgrid(torch.arange(change.shape[0]), torch.arange(change.shape[1]), indexing="ij")
    distance = torch.hypot(ys + 0.5 - (row + 0.5) * factor, xs + 0.5 - (col + 0.5) * factor).flatten()
    order = distance.argsort()
    cumulative = change.flatten()[order].cumsum(0)
    total = cumulative[-1].item()
    radius = distance[order][int((cumulative >= 0.9 * total).nonzero()[0])].item() if total > 0 else 0.0
    inside = change[row * factor:(row + 1) * factor, col * factor:(col + 1) * factor].sum().item()
    patch = pixels[:, :, row * factor:(row + 1) * factor, col * factor:(col + 1) * factor]
    return LatentCell(row, col, latents[0, :, row, col].tolist(), patch, change, radius,
                      1 - inside / total if total > 0 else 0.0)
