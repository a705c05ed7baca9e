"""What the UNet learned and where noise lives, against independent computations and an oracle UNet."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import make_image
from diffusers import DDPMScheduler

from latent_demo.explore import noise_schedule
from latent_demo.images import pil_to_pixels
from latent_demo.latents import pixels_to_latents
from latent_demo.noise_prediction import curve_timesteps, loss_curve, predict_noise, where_noise_lives
from latent_demo.sampling import draw_noise
from latent_demo.text import encode_prompt

SEED = 7


class OracleUNet(torch.nn.Module):
    """A stand-in that knows the clean latents and the noise, and answers what training asks for."""

    def __init__(self, clean: torch.Tensor, noise: torch.Tensor, alphas_cumprod: torch.Tensor, kind: str):
        super().__init__()
        self.clean, self.noise, self.alphas_cumprod, self.kind = clean, noise, alphas_cumprod, kind
        self.config = SimpleNamespace(in_channels=4)

    def forward(self, sample, timestep, encoder_hidden_states=None, return_dict=False):
        alpha_bar = self.alphas_cumprod[timestep.cpu()].view(-1, 1, 1, 1)
        if self.kind == "epsilon":
            answer = self.noise.expand(sample.shape[0], -1, -1, -1)
        else:  # v = √ᾱ·ε − √(1−ᾱ)·x₀
            answer = alpha_bar.sqrt() * self.noise - (1 - alpha_bar).sqrt() * self.clean
        return (answer.to(sample.dtype),)


@pytest.fixture(scope="module")
def clean(models):
    return pixels_to_latents(models.vae, pil_to_pixels(make_image(64, 64))).float()


@pytest.fixture(scope="module")
def text(models):
    return encode_prompt(models, "", None, False, 300).embeddings


def seed_noise(shape) -> torch.Tensor:
    return draw_noise(tuple(shape), torch.Generator("cpu").manual_seed(SEED), torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_an_oracle_unet_scores_zero_and_gives_back_the_clean_latents(models, clean, text, kind):
    config = {**models.scheduler_config, "prediction_type": kind}
    oracle = dataclasses.replace(models, scheduler_config=config)
    oracle = dataclasses.replace(oracle, unet=OracleUNet(clean, seed_noise(clean.shape), noise_schedule(oracle), kind))
    for timestep in (1, 500, 999):
        prediction = predict_noise(oracle, clean, timestep, SEED, text)
        assert prediction.prediction_type == kind and prediction.loss < 1e-10
        torch.testing.assert_close(prediction.denoised, clean, atol=2e-3 if timestep == 999 else 1e-4, rtol=0)
    assert all(loss < 1e-10 for _, loss in loss_curve(oracle, clean, SEED, text))


def test_the_loss_is_the_training_loss_computed_independently(models, clean, text):
    """x_t from the scheduler's own add_noise, the UNet called directly, torch's MSE."""
    timestep = 300
    noise = seed_noise(clean.shape)
    noisy = DDPMScheduler.from_config(models.scheduler_config).add_noise(clean, noise, torch.tensor([timestep]))
    with torch.inference_mode():
        output = models.unet(noisy, torch.tensor([timestep]), encoder_hidden_states=text, return_dict=False)[0]
    prediction = predict_noise(models, clean, timestep, SEED, text)
    torch.testing.assert_close(prediction.noisy, noisy)
    assert prediction.loss == pytest.approx(F.mse_loss(output, noise).item(), rel=1e-5)


def test_the_batched_curve_equals_one_call_per_timestep(models, clean, text):
    curve = loss_curve(models, clean, SEED, text)
    assert [t for t, _ in curve] == curve_timesteps(1000) == list(range(50, 1000, 100))
    for timestep, loss in curve[::3]:
        assert loss == pytest.approx(predict_noise(models, clean, timestep, SEED, text).loss, rel=1e-4)


def test_pixel_noise_uses_the_same_alpha_bar_as_the_schedulers_add_noise(models, clean):
    pixels = pil_to_pixels(make_image(64, 64))
    result = where_noise_lives(models, pixels, clean, 400, SEED, levels=(0.1,))
    expected = DDPMScheduler.from_config(models.scheduler_config).add_noise(pixels, seed_noise(pixels.shape),
                                                                           torch.tensor([400]))
    torch.testing.assert_close(result.pixel_noise, expected)
    level = result.through_vae[0]
    assert level.noise_std == 0.1 and level.rebuilt.shape == pixels.shape
    assert level.noisy_psnr_db == pytest.approx(10 * torch.log10(4 / ((pixels + 0.1 * seed_noise(pixels.shape))
                                                                      .clamp(-1, 1) - pixels).pow(2).mean()).item())


@pytest.mark.parametrize("timestep, message", [(1000, "timestep must be"), (-1, "timestep must be"),
                                               (float("nan"), "timestep must be")])
def test_a_timestep_out_of_range_is_refused(models, clean, text, timestep, message):
    with pytest.raises(ValueError, match=message):
        predict_noise(models, clean, timestep, SEED, text)


def test_the_guidance_hook_hands_out_the_predictions_the_loop_mixed(models, text):
    """The hook's ε̂s are the UNet's own two outputs; the scheduler got ε̂_uncond + s·(ε̂_cond − ε̂_uncond)."""
    from latent_demo.sampling import denoise
    from latent_demo.schedulers import make_scheduler

    scheduler = make_scheduler(models.scheduler_config, "model default")
    scheduler.set_timesteps(3)
    unet_outputs, mixed, handed = [], [], []

    def unet(*args, **kwargs):
        unet_outputs.append(models.unet(*args, **kwargs)[0])
        return (unet_outputs[-1],)

    step = scheduler.step
    scheduler.step = lambda output, *args, **kwargs: (mixed.append(output), step(output, *args, **kwargs))[1]
    unet.config = models.unet.config
    embeddings = torch.cat([encode_prompt(models, "", None, False, 300).embeddings, text])
    start = seed_noise((1, 4, 8, 8)) * scheduler.init_noise_sigma
    denoise(unet, scheduler, start, scheduler.timesteps, embeddings, 6.0,
            on_guidance=lambda i, uncond, cond: handed.append((i, uncond, cond)))
    assert [i for i, _, _ in handed] == [0, 1, 2]
    for (_, uncond, cond), output, used in zip(handed, unet_outputs, mixed, strict=True):
        torch.testing.assert_close(torch.cat([uncond, cond]), output, rtol=0, atol=0)
        torch.testing.assert_close(used, uncond + 6.0 * (cond - uncond), rtol=0, atol=0)


def test_a_guided_task_records_each_steps_two_predictions(models):
    from latent_demo import tasks
    from latent_demo.config import Settings
    from latent_demo.params import GenerateParams

    settings = Settings(fast_decoder="none", offline=True)
    guided = tasks.generate(models, GenerateParams(prompt="a fox", seed=1, num_inference_steps=3, guidance_scale=5.0,
                                                   width=64, height=64), settings)
    assert len(guided.guidance) == 3 and guided.guidance[0].scale == 5.0
    first = guided.guidance[0]
    torch.testing.assert_close(first.direction, 5.0 * (first.conditional - first.unconditional))
    assert all(norm > 0 for norm in first.norms())
    plain = tasks.generate(models, GenerateParams(prompt="a fox", seed=1, num_inference_steps=3, guidance_scale=0.0,
                                                  width=64, height=64), settings)
    assert plain.guidance == []  # one prediction a step: nothing to decompose
