"""Denoising: the one loop over timesteps that generate, img2img and inpaint all run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Called after every step with (step index, timestep, latents x_t, predicted clean latents x̂₀). It may raise to stop
# the loop (Cancel).
StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
# Called at every guided step with (step index, ε̂ for the negative or empty prompt, ε̂ for the prompt): the two
# predictions guidance mixes, as the loop computed them (no extra UNet call).
GuidanceHook = Callable[[int, torch.Tensor, torch.Tensor], None]

# Where a step's x̂₀ comes from: the scheduler's own estimate, or computed here from the UNet output and noise level.
FROM_SCHEDULER = "the scheduler's pred_original_sample"
COMPUTED = "computed from the UNet output and ᾱ_t"


@dataclass(frozen=True)
class InpaintConditioning:
    """What inpainting adds to the loop. mask: (1, 1, h, w) on the latent grid, 1 = repaint."""

    mask: torch.Tensor
    image_latents: torch.Tensor | None = None  # 4-channel UNet: blended back outside the mask after each step
    noise: torch.Tensor | None = None  # ... re-noised with this noise to the next timestep
    masked_image_latents: torch.Tensor | None = None  # 9-channel UNet: extra input channels


def uses_guidance(guidance_scale: float) -> bool:
    """Classifier-free guidance runs the UNet on [negative, prompt]; at scale <= 1 it is skipped (as diffusers)."""
    return guidance_scale > 1.0


def draw_noise(shape: tuple[int, ...], generator: torch.Generator, device: torch.device, dtype: torch.dtype
               ) -> torch.Tensor:
    """Gaussian noise drawn on the CPU in float32, then moved: the same seed gives the same noise everywhere."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def start_index(num_inference_steps: int, strength: float) -> int:
    """img2img starts partway down the schedule: strength 1 -> step 0 (pure noise), 0 -> no step at all."""
    init_steps = min(int(num_inference_steps * strength), num_inference_steps)
    return num_inference_steps - init_steps


def timesteps_from(scheduler: SchedulerMixin, num_inference_steps: int, first_step: int, device) -> torch.Tensor:
    """Set the scheduler up for the full schedule and return the timesteps from `first_step` on."""
    try:
        scheduler.set_timesteps(num_inference_steps, device=device)
    except ValueError as err:
        raise ValueError(f"{type(scheduler).__name__} can't run {num_inference_steps} steps ({err})") from None
    begin = first_step * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


def step_kwargs(scheduler: SchedulerMixin, generator: torch.Generator | None) -> dict:
    """Ancestral/SDE schedulers draw fresh noise each step: hand them the request's generator (eta 0 as diffusers)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {"eta": 0.0} if "eta" in accepted else {}
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


@torch.inference_mode()
def denoise(unet: UNet2DConditionModel, scheduler: SchedulerMixin, latents: torch.Tensor, timesteps: torch.Tensor,
            text_embeddings: torch.Tensor, guidance_scale: float, *, generator: torch.Generator | None = None,
            inpaint: InpaintConditioning | None = None, callback: StepCallback | None = None,
            on_guidance: GuidanceHook | None = None) -> torch.Tensor:
    """latents at timesteps[0] -> latents at t=0, one UNet call (batch 2 with guidance) per timestep."""
    guided = uses_guidance(guidance_scale)
    if text_embeddings.shape[0] != (2 if guided else 1) * latents.shape[0]:
        raise ValueError("text embeddings must hold [negative, prompt] exactly when guidance is used")
    extra_step_kwargs = step_kwargs(scheduler, generator)
    for i, t in enumerate(timesteps):
        # expand the latents if we are doing classifier-free guidance
        model_input = torch.cat([latents] * 2) if guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        if inpaint is not None and inpaint.masked_image_latents is not None:
            # 9-channel inpainting UNet: latents + latent mask + masked-image latents, side by side
            condition = torch.cat([inpaint.mask, inpaint.masked_image_latents], dim=1)
            model_input = torch.cat([model_input, condition.expand(model_input.shape[0], -1, -1, -1)], dim=1)
        # predict the noise residual
        noise_pred = unet(model_input, t, encoder_hidden_states=text_embeddings, return_dict=False)[0]
        # perform guidance
        if guided:
            noise_pred_negative, noise_pred_prompt = noise_pred.chunk(2)
            if on_guidance is not None:
                on_guidance(i, noise_pred_negative, noise_pred_prompt)
            noise_pred = noise_pred_negative + guidance_scale * (noise_pred_prompt - noise_pred_negative)
        # compute the previous noisy sample x_t -> x_t-1
        output = scheduler.step(noise_pred, t, latents, **extra_step_kwargs)
        denoised = predicted_original(scheduler, noise_pred, t, latents, output)
        latents = output.prev_sample
        if inpaint is not None and inpaint.image_latents is not None:
            latents = _blend_outside_mask(scheduler, latents, inpaint, timesteps, i)
            denoised = (1 - inpaint.mask) * inpaint.image_latents + inpaint.mask * denoised
        if callback is not None:
            callback(i, t, latents, denoised)
    return latents


def denoised_source(scheduler: SchedulerMixin) -> str:
    """Which x̂₀ a scheduler's steps show: FROM_SCHEDULER when its step output type (defined beside it in diffusers)
    carries `pred_original_sample`, else COMPUTED."""
    module = inspect.getmodule(type(scheduler))
    outputs = [kind for name, kind in vars(module).items() if name.endswith("SchedulerOutput")]
    carries = any("pred_original_sample" in getattr(kind, "__dataclass_fields__", {}) for kind in outputs)
    return FROM_SCHEDULER if carries else COMPUTED


def predicted_original(scheduler: SchedulerMixin, model_output: torch.Tensor, t: torch.Tensor,
                       sample: torch.Tensor, step_output) -> torch.Tensor:
    """x̂₀, the clean latents the UNet's output implies for `sample` at timestep t (call after scheduler.step).

    The scheduler's own `pred_original_sample` where its step returns one (Euler, Euler a, DDIM, LMS); else, as
    DPM-Solver and UniPC compute internally: with x_t = α_t·x₀ + σ_t·ε, x̂₀ = (x_t − σ_t·ε̂)/α_t for an ε-model,
    α_t·x_t − σ_t·v̂ for a v-model. No extra UNet call, a few tensor operations.
    """
    given = getattr(step_output, "pred_original_sample", None)
    if given is not None:
        return given
    sigma = _sigma_used(scheduler, t)  # σ = sqrt((1 - ᾱ_t) / ᾱ_t)
    alpha_t = (sigma**2 + 1) ** -0.5
    sigma_t = sigma * alpha_t
    if getattr(scheduler, "init_noise_sigma", 1.0) > 1.0:  # latents kept as x₀ + σ·ε (Euler-type): to α_t·x₀ + σ_t·ε
        sample = sample * alpha_t
    prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
    if prediction_type == "epsilon":
        return (sample - sigma_t * model_output) / alpha_t
    if prediction_type == "v_prediction":
        return alpha_t * sample - sigma_t * model_output
    return model_output  # "sample": the UNet predicts x₀ itself


def _sigma_used(scheduler: SchedulerMixin, t: torch.Tensor) -> float:
    """The noise level of the step just taken: the scheduler's own σ where it keeps them, else from ᾱ_t."""
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if sigmas is not None and index is not None and 0 < index <= len(sigmas):
        return float(sigmas[index - 1])
    alpha_bar = float(scheduler.alphas_cumprod[int(t)])
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


def _blend_outside_mask(scheduler: SchedulerMixin, latents: torch.Tensor, inpaint: InpaintConditioning,
                        timesteps: torch.Tensor, i: int) -> torch.Tensor:
    """Latent-blending inpainting: outside the mask, put back the original re-noised to the next timestep."""
    original = inpaint.image_latents
    if i < len(timesteps) - 1:
        original = scheduler.add_noise(original, inpaint.noise, timesteps[i + 1:i + 2])
    return (1 - inpaint.mask) * original + inpaint.mask * latents
