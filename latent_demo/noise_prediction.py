"""The model's work, shown: what the UNet predicts from x_t (the training objective), and where noise lives.

Training draws x₀ (an image's latents), a timestep t and noise ε, makes x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε and asks the
UNet for ε (an ε-model; a v-model is asked for v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀). The loss is the mean squared error of its
answer: `predict_noise` computes exactly that for the visitor's image, and `loss_curve` at several t in one batch.
`where_noise_lives` puts the same amount of noise (the same ᾱ_t) in the pixels instead of the latents, and sends
noisy pixels through the autoencoder, to test rather than assert what the lesson says about pixel noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from latent_demo.explore import add_noise, noise_schedule
from latent_demo.images import psnr
from latent_demo.latents import check_latents, latents_to_pixels, pixels_to_latents
from latent_demo.models import Models
from latent_demo.params import MAX_SEED, check_float, check_int
from latent_demo.sampling import draw_noise

TARGETS = {"epsilon": "the noise ε", "v_prediction": "the velocity v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀",
           "sample": "the clean latents x₀"}
LOSS_CURVE_POINTS = 10  # timesteps on the loss curve, one UNet call (batch 10)
PIXEL_NOISE_LEVELS = (0.05, 0.1, 0.2)  # std of Gaussian noise added to pixels in [-1, 1] (2.5 %, 5 %, 10 % of range)


@dataclass(frozen=True)
class NoisePrediction:
    """One UNet call on x_t, against what training asks of it. Tensors: float32 on the CPU, shaped like x₀."""

    timestep: int
    prediction_type: str  # the scheduler config's: "epsilon", "v_prediction" or "sample"
    noise: torch.Tensor  # ε
    noisy: torch.Tensor  # x_t
    target: torch.Tensor  # what the UNet is trained to output here: ε (or v, or x₀)
    predicted: torch.Tensor  # what it output
    loss: float  # MSE(predicted, target): the training loss at this t, this image, this noise
    denoised: torch.Tensor  # x̂₀ recovered from the prediction


def prediction_type(models: Models) -> str:
    kind = models.scheduler_config.get("prediction_type", "epsilon")
    if kind not in TARGETS:
        raise ValueError(f"the scheduler's prediction_type {kind!r} is not one of {', '.join(TARGETS)}")
    return kind


def training_target(kind: str, clean: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """What a `kind` model is trained to output for x_t made from `clean` and `noise` (alpha_bar broadcasts)."""
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * clean
    return clean


def denoised_from(kind: str, noisy: torch.Tensor, predicted: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x̂₀ from a prediction: (x_t − √(1−ᾱ)·ε̂)/√ᾱ for ε, √ᾱ·x_t − √(1−ᾱ)·v̂ for v, the output itself for x₀."""
    if kind == "epsilon":
        return (noisy - (1 - alpha_bar).sqrt() * predicted) / alpha_bar.sqrt()
    if kind == "v_prediction":
        return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * predicted
    return predicted


@torch.inference_mode()
def run_unet(models: Models, noisy: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """The UNet on a batch of x_t at their timesteps (one prompt's embeddings, (1, 77, D)): float32 on the CPU."""
    if models.has_inpainting_unet:
        raise ValueError("this view needs a 4-channel UNet; the loaded one is an inpainting UNet (9 channels)")
    sample = noisy.to(device=models.device, dtype=models.dtype)
    text = text.to(models.device).expand(sample.shape[0], -1, -1)
    output = models.unet(sample, timesteps.to(models.device), encoder_hidden_states=text, return_dict=False)[0]
    return output.float().cpu()


def predict_noise(models: Models, latents: torch.Tensor, timestep: int, seed: int, text: torch.Tensor
                  ) -> NoisePrediction:
    """Noise `latents` (x₀) to `timestep` with the seed's ε, ask the UNet, and score it as training does."""
    check_latents(latents, models.latent_channels)
    kind = prediction_type(models)
    noised = add_noise(models, latents, timestep, seed)
    alpha_bar = noise_schedule(models)[noised.timestep]
    predicted = run_unet(models, noised.latents, torch.tensor([noised.timestep]), text)
    target = training_target(kind, latents.float().cpu(), noised.noise, alpha_bar)
    return NoisePrediction(noised.timestep, kind, noised.noise, noised.latents, target, predicted,
                           F.mse_loss(predicted, target).item(), denoised_from(kind, noised.latents, predicted,
                                                                                alpha_bar))


def curve_timesteps(train_steps: int, points: int = LOSS_CURVE_POINTS) -> list[int]:
    """`points` timesteps spread evenly over training's range, each the middle of its stretch (50, 150 .. 950)."""
    return [int((i + 0.5) * train_steps / points) for i in range(points)]


def loss_curve(models: Models, latents: torch.Tensor, seed: int, text: torch.Tensor,
               points: int = LOSS_CURVE_POINTS) -> list[tuple[int, float]]:
    """(t, training loss) at `points` timesteps, the same ε at each, in one batched UNet call."""
    check_latents(latents, models.latent_channels)
    seed = check_int("seed", seed, 0, MAX_SEED)
    kind, alphas_cumprod = prediction_type(models), noise_schedule(models)
    timesteps = torch.tensor(curve_timesteps(len(alphas_cumprod), points))
    clean = latents.float().cpu().expand(points, -1, -1, -1)
    noise = draw_noise(tuple(latents.shape), torch.Generator("cpu").manual_seed(seed), torch.device("cpu"),
                       torch.float32).expand(points, -1, -1, -1)
    alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1).float()
    noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
    predicted = run_unet(models, noisy, timesteps, text)
    target = training_target(kind, clean, noise, alpha_bar)
    losses = ((predicted - target) ** 2).mean(dim=(1, 2, 3))
    return [(int(t), float(loss)) for t, loss in zip(timesteps, losses, strict=True)]


@dataclass(frozen=True)
class PixelNoiseThroughVae:
    noise_std: float  # of the Gaussian noise added to pixels in [-1, 1]
    noisy_psnr_db: float  # the noisy pixels against the clean ones
    rebuilt_psnr_db: float  # after encode -> decode, against the clean ones
    rebuilt: torch.Tensor  # pixels (1, 3, H, W) in [-1, 1]


@dataclass(frozen=True)
class WhereNoiseLives:
    """The same ᾱ_t applied in latent space and in pixel space, and pixel noise sent through the autoencoder."""

    timestep: int
    alpha_bar: float
    clean_psnr_db: float  # the autoencoder on the clean image: the best any rebuild here can do
    latent_noise_decoded: torch.Tensor  # decode(√ᾱ·z + √(1−ᾱ)·ε_z), pixels
    latent_noise_psnr_db: float
    pixel_noise: torch.Tensor  # √ᾱ·x + √(1−ᾱ)·ε_x, pixels
    pixel_noise_psnr_db: float
    through_vae: list[PixelNoiseThroughVae]


def where_noise_lives(models: Models, pixels: torch.Tensor, latents: torch.Tensor, timestep: int, seed: int,
                      levels: tuple[float, ...] = PIXEL_NOISE_LEVELS) -> WhereNoiseLives:
    """pixels: the image in [-1, 1] (1, 3, H, W); latents: its encoding. Noise from the seed, for both spaces."""
    noised = add_noise(models, latents, timestep, seed)  # checks the timestep and the seed
    alpha_bar = float(noise_schedule(models)[noised.timestep])
    decoded = latents_to_pixels(models.vae, noised.latents)
    generator = torch.Generator("cpu").manual_seed(seed)
    pixel_noise = draw_noise(tuple(pixels.shape), generator, torch.device("cpu"), torch.float32)
    mixed = alpha_bar ** 0.5 * pixels + (1 - alpha_bar) ** 0.5 * pixel_noise
    through = []
    for std in levels:
        std = check_float("pixel noise std", std, 0.0, 2.0)
        noisy = (pixels + std * pixel_noise).clamp(-1, 1)
        rebuilt = latents_to_pixels(models.vae, pixels_to_latents(models.vae, noisy))
        through.append(PixelNoiseThroughVae(std, psnr(pixels, noisy), psnr(pixels, rebuilt), rebuilt))
    clean = psnr(pixels, latents_to_pixels(models.vae, latents))
    return WhereNoiseLives(noised.timestep, alpha_bar, clean, decoded, psnr(pixels, decoded), mixed,
                           psnr(pixels, mixed), through)
