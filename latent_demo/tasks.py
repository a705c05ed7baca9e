"""Tasks: generate, img2img and inpaint, each a few numbered steps around the one denoising loop."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from latent_demo.config import Settings
from latent_demo.images import feather, mask_to_tensor, paste_outside_mask, pil_to_pixels, pixels_to_pil, prepare_image
from latent_demo.latents import check_latents, latents_to_pixels, pixels_to_latents
from latent_demo.memory import release_freed_memory
from latent_demo.models import Models
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams, SamplingParams, check_sampling, check_size
from latent_demo.sampling import (
    InpaintConditioning,
    StepCallback,
    denoise,
    denoised_source,
    draw_noise,
    start_index,
    timesteps_from,
    uses_guidance,
)
from latent_demo.schedulers import make_scheduler
from latent_demo.text import PromptEmbeddings, check_prompt, encode_prompt


@dataclass
class TaskResult:
    image: Image.Image
    latents: torch.Tensor  # final latents (before decoding)
    start_latents: torch.Tensor  # what the loop started from: seed noise, or noised image latents
    trajectory: list[torch.Tensor]  # latents x_t after each step (CPU)
    timesteps: list[int]
    seed: int
    prompt: PromptEmbeddings
    # seconds: text, encode, unet, unet_per_step, decode, total
    timings: dict[str, float] = field(default_factory=dict)
    start_step: int = 0  # img2img/inpaint: steps skipped (num_inference_steps - strength x steps)
    image_latents: torch.Tensor | None = None  # img2img/inpaint: the encoded input
    latent_mask: torch.Tensor | None = None  # inpaint: (1, 1, h, w), the mask on the latent grid
    method: str = ""  # inpaint: latent blending or the inpainting UNet
    flagged: bool = False  # the safety checker hid the image (shown black)
    trajectory_previews: list[Image.Image] | None = None  # screened pictures of the trajectory (safety checker on)
    denoised_trajectory: list[torch.Tensor] = field(default_factory=list)  # x̂₀ predicted at each step (CPU)
    denoised_source: str = ""  # where x̂₀ came from (sampling.FROM_SCHEDULER or COMPUTED)
    denoised_previews: list[Image.Image] | None = None  # screened pictures of x̂₀ (safety checker on)
    guidance: list[GuidanceStep] = field(default_factory=list)  # per step, when guidance was used


@dataclass(frozen=True)
class GuidanceStep:
    """One guided step's two predictions (float32 on the CPU) and what guidance made of them."""

    unconditional: torch.Tensor  # ε̂ for the negative prompt (empty: no text at all)
    conditional: torch.Tensor  # ε̂ for the prompt
    scale: float

    @property
    def direction(self) -> torch.Tensor:
        """s·(ε̂_cond − ε̂_uncond): what guidance adds to ε̂_uncond; the loop used ε̂_uncond + this."""
        return self.scale * (self.conditional - self.unconditional)

    def norms(self) -> tuple[float, float, float]:
        """Root mean square of ε̂_uncond, ε̂_cond and the direction (per value, so sizes compare across images)."""
        return tuple(tensor.pow(2).mean().sqrt().item()
                     for tensor in (self.unconditional, self.conditional, self.direction))


class _Run:
    """Per-request state: a fresh scheduler and generator, the timings and the trajectory."""

    def __init__(self, models: Models, params: SamplingParams, settings: Settings):
        check_sampling(params, settings)
        self.models, self.params = models, params
        self.started = time.perf_counter()
        self.generator = torch.Generator("cpu").manual_seed(params.seed)
        self.scheduler = make_scheduler(models.scheduler_config, params.scheduler)
        self.timings: dict[str, float] = {}
        self.trajectory: list[torch.Tensor] = []
        self.denoised: list[torch.Tensor] = []
        self.guidance: list[GuidanceStep] = []  # per guided step
        self.flagged = False  # the safety checker (when on) hid the decoded image
        with self.timed("text"):
            self.prompt = encode_prompt(models, params.prompt, params.negative_prompt,
                                        uses_guidance(params.guidance_scale), settings.max_prompt_tokens)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Adds the seconds spent in the block to timings[name]."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def loop(self, latents, timesteps, callback: StepCallback | None, inpaint=None) -> torch.Tensor:
        """The one denoising loop with this request's scheduler and generator, recording the trajectory."""
        def record(i, t, step_latents, denoised):
            self.trajectory.append(step_latents.detach().float().cpu())
            self.denoised.append(denoised.detach().float().cpu())
            if callback is not None:
                callback(i, t, step_latents, denoised)

        def record_guidance(i, unconditional, conditional):
            self.guidance.append(GuidanceStep(unconditional.detach().float().cpu(), conditional.detach().float().cpu(),
                                              float(self.params.guidance_scale)))

        with self.timed("unet"):
            latents = denoise(self.models.unet_for_steps, self.scheduler, latents, timesteps, self.prompt.embeddings,
                              self.params.guidance_scale, generator=self.generator, inpaint=inpaint,
                              callback=record, on_guidance=record_guidance)
        self.timings["unet_per_step"] = self.timings["unet"] / max(1, len(timesteps))
        return latents

    def decode(self, latents: torch.Tensor) -> Image.Image:
        decoder = self.models.decoder(self.params.fast_decode)
        if decoder is self.models.vae:  # its activations are the app's peak of memory: start from a trimmed heap
            release_freed_memory()
        with self.timed("decode"):
            image = pixels_to_pil(latents_to_pixels(decoder, latents))
        if self.models.safety_filter is not None:
            image, self.flagged = self.models.safety_filter.screen(image)
        return image

    def result(self, image, latents, start_latents, timesteps, **extra) -> TaskResult:
        self.timings["total"] = time.perf_counter() - self.started
        # Everything in a result is on the CPU in float32: it may cross a process boundary (ZeroGPU pickles it,
        # and a CUDA tensor would hang the call) and become numpy or PIL data (which has no bfloat16).
        prompt = dataclasses.replace(self.prompt, embeddings=self.prompt.embeddings.float().cpu())
        return TaskResult(image=image, latents=latents.float().cpu(), start_latents=start_latents.float().cpu(),
                          trajectory=self.trajectory, timesteps=[int(t) for t in timesteps], seed=self.params.seed,
                          prompt=prompt, timings=self.timings, flagged=self.flagged, denoised_trajectory=self.denoised,
                          denoised_source=denoised_source(self.scheduler), guidance=self.guidance, **extra)


def planned_steps(models: Models, params: SamplingParams, settings: Settings) -> int:
    """How many UNet steps a task will run (for progress bars): scheduler order and strength included.

    Checks the parameters and the prompt first, so a bad value gets its own message before any work (or GPU time on
    ZeroGPU) starts.
    """
    check_sampling(params, settings)
    check_prompt(params.prompt, models, settings.max_prompt_tokens)
    if isinstance(params, GenerateParams):
        check_size(params.width, params.height, settings, models.vae_scale_factor)
    scheduler = make_scheduler(models.scheduler_config, params.scheduler)
    first_step = start_index(params.num_inference_steps, getattr(params, "strength", 1.0))
    return len(timesteps_from(scheduler, params.num_inference_steps, first_step, "cpu"))


def generate(models: Models, params: GenerateParams, settings: Settings, callback: StepCallback | None = None,
             initial_noise: torch.Tensor | None = None) -> TaskResult:
    """Text -> image from the seed's noise. `initial_noise` replaces the seed's draw (seed walk)."""
    # 1. Check inputs, encode the prompt, make this request's scheduler
    width, height = check_size(params.width, params.height, settings, models.vae_scale_factor)
    run = _Run(models, params, settings)
    # 2. Prepare timesteps
    timesteps = timesteps_from(run.scheduler, params.num_inference_steps, 0, models.device)
    # 3. Prepare the initial latents: seed noise, scaled to the scheduler's first sigma
    shape = models.latent_shape(height, width)
    noise = draw_noise(shape, run.generator, models.device, models.dtype)
    if initial_noise is not None:  # drawn anyway, so ancestral schedulers' step noise matches a plain run
        noise = _checked_noise(initial_noise, shape, models)
    latents = noise * run.scheduler.init_noise_sigma
    # 4. Denoising loop
    latents = run.loop(latents, timesteps, callback)
    # 5. Decode
    return run.result(run.decode(latents), latents, noise, timesteps)


def img2img(models: Models, params: Img2ImgParams, settings: Settings, image: Image.Image | None = None,
            latents: torch.Tensor | None = None, callback: StepCallback | None = None) -> TaskResult:
    """Image (or latents from Encode) -> noised to strength x the schedule -> denoised from there."""
    # 1. Check inputs, encode the prompt, make this request's scheduler
    if (image is None) == (latents is None):
        raise ValueError("img2img needs an image or encoded latents (exactly one of them)")
    if latents is not None:
        check_latents(latents, models.latent_channels)
        check_size(latents.shape[3] * models.vae_scale_factor, latents.shape[2] * models.vae_scale_factor,
                   settings, models.vae_scale_factor)
    run = _Run(models, params, settings)
    # 2. Prepare timesteps: skip the first (1 - strength) of the schedule
    first_step = start_index(params.num_inference_steps, params.strength)
    timesteps = timesteps_from(run.scheduler, params.num_inference_steps, first_step, models.device)
    # 3. Encode the image (a posterior sample from the seed's generator, as diffusers does)
    if latents is None:
        with run.timed("encode"):
            pixels = pil_to_pixels(_prepared(image, settings, models))
            latents = pixels_to_latents(models.vae, pixels, run.generator)
    image_latents = latents.to(device=models.device, dtype=models.dtype)
    # 4. Add noise for the starting timestep
    start = image_latents
    if len(timesteps):
        noise = draw_noise(tuple(image_latents.shape), run.generator, models.device, models.dtype)
        start = run.scheduler.add_noise(image_latents, noise, timesteps[:1])
    # 5. Denoising loop from the start step, then decode
    final = run.loop(start, timesteps, callback)
    return run.result(run.decode(final), final, start, timesteps, start_step=first_step,
                      image_latents=image_latents.float().cpu())


def inpaint(models: Models, params: InpaintParams, settings: Settings, image: Image.Image, mask: Image.Image,
            callback: StepCallback | None = None) -> TaskResult:
    """Repaint where the mask is white; the same draws and blending as diffusers' StableDiffusionInpaintPipeline."""
    # 1. Check inputs, encode the prompt, make this request's scheduler
    if mask.size != image.size:
        raise ValueError(f"mask is {mask.width}x{mask.height} px but the image is {image.width}x{image.height} px")
    prepared = _prepared(image, settings, models)
    if mask.size != prepared.size:
        mask = mask.convert("L").resize(prepared.size, Image.Resampling.LANCZOS)
    pixel_mask = mask_to_tensor(mask, prepared.size)
    run = _Run(models, params, settings)
    nine_channels = models.has_inpainting_unet
    # 2. Prepare timesteps (strength < 1 starts from the noised image, as img2img)
    first_step = start_index(params.num_inference_steps, params.strength)
    timesteps = timesteps_from(run.scheduler, params.num_inference_steps, first_step, models.device)
    # 3. Encode the image and draw the noise, in diffusers' order so a seed gives the same result
    pixels = pil_to_pixels(prepared)
    image_latents = None
    with run.timed("encode"):
        if not nine_channels or params.strength < 1.0:
            image_latents = pixels_to_latents(models.vae, pixels, run.generator).to(models.dtype)
    shape = models.latent_shape(pixels.shape[2], pixels.shape[3])
    noise = draw_noise(shape, run.generator, models.device, models.dtype)
    if params.strength >= 1.0 or not len(timesteps):
        start = noise * run.scheduler.init_noise_sigma if len(timesteps) else image_latents
    else:
        start = run.scheduler.add_noise(image_latents, noise, timesteps[:1])
    # 4. The mask on the latent grid, and the masked image for a 9-channel UNet
    latent_mask = F.interpolate(pixel_mask, size=shape[2:]).to(device=models.device, dtype=models.dtype)
    with run.timed("encode"):
        masked_image_latents = _masked_image_latents(models, pixels, pixel_mask, run.generator, nine_channels)
    conditioning = InpaintConditioning(latent_mask, masked_image_latents=masked_image_latents) if nine_channels \
        else InpaintConditioning(latent_mask, image_latents=image_latents, noise=noise)
    # 5. Denoising loop, decode, and paste the original back outside the mask
    final = run.loop(start, timesteps, callback, inpaint=conditioning)
    generated = run.decode(final)
    image_out = paste_outside_mask(prepared, generated, feather(pixel_mask, params.feather_radius))
    return run.result(image_out, final, start, timesteps, start_step=first_step,
                      latent_mask=latent_mask.float().cpu(),
                      image_latents=None if image_latents is None else image_latents.float().cpu(),
                      method=models.inpaint_method)


def _masked_image_latents(models: Models, pixels, pixel_mask, generator, nine_channels: bool):
    """9 channels: encode the image with the masked area blanked. 4 channels: only the draw is kept.

    diffusers encodes the masked image for 4-channel UNets too (and never uses it); that posterior sample takes one
    latent-sized draw from the generator, which ancestral schedulers would feel. We skip the costly encode but keep
    the draw, so the same seed gives the same image as diffusers with every scheduler.
    """
    if nine_channels:
        return pixels_to_latents(models.vae, pixels * (pixel_mask < 0.5), generator).to(models.dtype)
    torch.randn(models.latent_shape(pixels.shape[2], pixels.shape[3]), generator=generator, dtype=models.vae_dtype)
    return None


def _prepared(image: Image.Image, settings: Settings, models: Models) -> Image.Image:
    return prepare_image(image.convert("RGB"), settings.max_image_side, settings.min_image_side,
                         models.vae_scale_factor)


def _checked_noise(noise: torch.Tensor, shape: tuple[int, ...], models: Models) -> torch.Tensor:
    if tuple(noise.shape) != shape:
        raise ValueError(f"initial noise has shape {tuple(noise.shape)}; expected {shape}")
    check_latents(noise, models.latent_channels)
    return noise.to(device=models.device, dtype=models.dtype)
