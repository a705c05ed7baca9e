"""x̂₀, the clean latents each step predicts: where it comes from, and what it must equal."""

import pytest
import torch
from conftest import make_mask

from latent_demo import tasks
from latent_demo.params import GenerateParams, InpaintParams
from latent_demo.sampling import COMPUTED, FROM_SCHEDULER, denoised_source, predicted_original
from latent_demo.schedulers import SCHEDULERS, make_scheduler

# Which of the app's schedulers hand out x̂₀ themselves (README, "What the UNet believes").
SOURCES = {"Euler": FROM_SCHEDULER, "Euler a": FROM_SCHEDULER, "DDIM": FROM_SCHEDULER,
           "DPM++ 2M": COMPUTED, "DPM++ 2M Karras": COMPUTED, "UniPC": COMPUTED}


def run(models, settings, scheduler: str, steps: int = 4, **overrides) -> tasks.TaskResult:
    params = GenerateParams(prompt="a lighthouse", seed=3, num_inference_steps=steps, width=64, height=64,
                            scheduler=scheduler, **overrides)
    return tasks.generate(models, params, settings)


def test_every_scheduler_is_listed_with_the_source_a_real_step_shows(models):
    assert set(SOURCES) == set(SCHEDULERS)
    for name, expected in SOURCES.items():
        scheduler = make_scheduler(models.scheduler_config, name)
        scheduler.set_timesteps(4)
        t = scheduler.timesteps[0]
        output = scheduler.step(torch.randn(1, 4, 8, 8), t, torch.randn(1, 4, 8, 8) * scheduler.init_noise_sigma)
        has_own = getattr(output, "pred_original_sample", None) is not None
        assert (FROM_SCHEDULER if has_own else COMPUTED) == expected == denoised_source(scheduler), name


# Deterministic schedulers whose last step lands on sigma 0: the final latents are that step's x̂₀. DDIM's last
# step keeps a little noise (alphas_cumprod[0] < 1, set_alpha_to_one False), hence a looser bound.
@pytest.mark.parametrize("scheduler, tolerance", [("Euler", 1e-5), ("DPM++ 2M", 1e-4), ("DPM++ 2M Karras", 1e-4),
                                                  ("UniPC", 1e-4), ("DDIM", 0.05)])
def test_the_last_steps_prediction_is_the_result(models, settings, scheduler, tolerance):
    result = run(models, settings, scheduler, guidance_scale=3.0)
    assert len(result.denoised_trajectory) == len(result.trajectory) == 4
    scale = result.latents.abs().max()
    assert (result.denoised_trajectory[-1] - result.latents).abs().max() <= tolerance * scale


def test_early_predictions_are_cleaner_than_the_noisy_latents(models, settings):
    """x̂₀ is an estimate of the end, not the noisy state: at the first step it is far closer to the result."""
    result = run(models, settings, "DPM++ 2M", steps=6)
    noisy_gap = (result.trajectory[0] - result.latents).norm()
    predicted_gap = (result.denoised_trajectory[0] - result.latents).norm()
    assert predicted_gap < 0.5 * noisy_gap


def test_computed_prediction_matches_the_schedulers_own(models):
    """Our formula, applied to Euler's σ-space latents, gives back Euler's own pred_original_sample."""
    for prediction_type in ("epsilon", "v_prediction"):
        config = {**models.scheduler_config, "prediction_type": prediction_type}
        scheduler = make_scheduler(config, "Euler")
        scheduler.set_timesteps(5)
        t = scheduler.timesteps[1]
        scheduler.set_begin_index(1)
        sample, model_output = torch.randn(1, 4, 8, 8) * 3, torch.randn(1, 4, 8, 8)
        output = scheduler.step(model_output, t, sample)
        own = output.pred_original_sample
        computed = predicted_original(scheduler, model_output, t, sample, output.prev_sample)  # no estimate on it
        assert torch.allclose(computed, own, atol=1e-5), prediction_type


def test_inpainting_predictions_keep_the_image_outside_the_mask(models, settings, image):
    mask = make_mask(64, 64, box=(0, 0, 32, 64))
    result = tasks.inpaint(models, InpaintParams(prompt="sky", seed=2, num_inference_steps=3), settings, image, mask)
    outside = result.latent_mask == 0
    for denoised in result.denoised_trajectory:
        kept = torch.where(outside, denoised - result.image_latents, torch.zeros(()))
        assert kept.abs().max() < 1e-5
