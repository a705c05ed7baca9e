"""Shapes, ranges, determinism and the invariants of each task on the tiny model."""

import numpy as np
import pytest
import torch
from conftest import make_mask

from latent_demo import tasks
from latent_demo.explore import add_noise, interpolate, noise_schedule, slerp
from latent_demo.images import error_heatmap, pil_to_pixels, pixels_to_pil, psnr
from latent_demo.latents import (
    channel_stats,
    compression_facts,
    convolution_layout,
    latents_to_channel_images,
    latents_to_pixels,
    latents_to_rgb_preview,
    pixels_to_latents,
)
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams
from latent_demo.sampling import denoise
from latent_demo.schedulers import make_scheduler


def gen_params(**overrides):
    values = dict(prompt="a lighthouse at dusk", seed=1, num_inference_steps=3, width=64, height=64)
    return GenerateParams(**{**values, **overrides})


def test_generate_shapes_ranges_and_trajectory(models, settings):
    steps = []
    result = tasks.generate(models, gen_params(width=96, height=64), settings,
                            callback=lambda i, t, latents, denoised: steps.append((i, int(t), latents.shape)))
    assert result.image.size == (96, 64) and result.image.mode == "RGB"
    assert result.latents.shape == (1, 4, 8, 12) and result.start_latents.shape == (1, 4, 8, 12)
    assert [s[0] for s in steps] == [0, 1, 2] and [s[1] for s in steps] == result.timesteps
    assert len(result.trajectory) == 3 and torch.equal(result.trajectory[-1], result.latents)
    assert result.timesteps == sorted(result.timesteps, reverse=True)
    assert {"text", "unet", "unet_per_step", "decode", "total"} <= set(result.timings)
    assert result.seed == 1


def test_same_seed_same_image_different_seed_different_image(models, settings):
    first = tasks.generate(models, gen_params(seed=5), settings)
    again = tasks.generate(models, gen_params(seed=5), settings)
    other = tasks.generate(models, gen_params(seed=6), settings)
    assert torch.equal(first.latents, again.latents)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))
    assert (first.start_latents - other.start_latents).abs().mean() > 0.5  # independent unit Gaussians


def test_seed_noise_is_unit_gaussian(models, settings):
    noise = tasks.generate(models, gen_params(seed=11, width=256, height=256), settings).start_latents
    assert abs(noise.mean().item()) < 0.05 and abs(noise.std().item() - 1) < 0.05


def test_img2img_strength_zero_returns_the_input_latents(models, settings, image):
    latents = pixels_to_latents(models.vae, pil_to_pixels(image))
    result = tasks.img2img(models, Img2ImgParams(prompt="x", strength=0.0, num_inference_steps=4), settings,
                           latents=latents)
    assert torch.equal(result.latents, latents) and result.start_step == 4 and result.timesteps == []


def test_img2img_reports_start_step_and_noised_latents(models, settings, image):
    result = tasks.img2img(models, Img2ImgParams(prompt="x", strength=0.75, num_inference_steps=8), settings,
                           image=image)
    assert result.start_step == 2 and len(result.timesteps) == 6
    assert not torch.equal(result.start_latents, result.image_latents)  # noise was added
    assert result.image.size == image.size


def test_inpaint_empty_mask_changes_nothing(models, settings, image):
    empty = make_mask(box=(0, 0, 0, 0))
    result = tasks.inpaint(models, InpaintParams(prompt="a boat", num_inference_steps=3), settings, image, empty)
    assert result.latent_mask.sum() == 0
    assert torch.equal(result.latents, result.image_latents)  # blending kept the original latents everywhere
    assert np.array_equal(np.asarray(result.image), np.asarray(image))


@pytest.mark.parametrize("feather_radius", [0.0, 3.0])
def test_inpaint_keeps_pixels_outside_the_mask(models9, models, settings, image, mask, feather_radius):
    for chosen in (models, models9):
        params = InpaintParams(prompt="a boat", num_inference_steps=3, feather_radius=feather_radius)
        result = tasks.inpaint(chosen, params, settings, image, mask)
        out, original = np.asarray(result.image), np.asarray(image)
        far_outside = np.ones(original.shape[:2], bool)
        far_outside[16 - 8:48 + 8, 16 - 8:48 + 8] = False  # the feather reaches a few px outside
        assert np.array_equal(out[far_outside], original[far_outside])
        assert not np.array_equal(out[20:44, 20:44], original[20:44, 20:44])  # inside was repainted
        assert result.latent_mask.shape == (1, 1, 8, 8)
        assert set(result.latent_mask.unique().tolist()) == {0.0, 1.0}
        assert result.latent_mask[0, 0, 2:6, 2:6].eq(1).all() and result.latent_mask.sum() == 16


def test_inpaint_full_mask_runs_like_plain_denoising(models, settings, image):
    full = make_mask(box=(0, 0, 64, 64))
    params = InpaintParams(prompt="a boat", num_inference_steps=3, guidance_scale=4.0)
    result = tasks.inpaint(models, params, settings, image, full)
    scheduler = make_scheduler(models.scheduler_config)
    scheduler.set_timesteps(3)
    assert [int(t) for t in scheduler.timesteps] == result.timesteps
    plain = denoise(models.unet, scheduler, result.start_latents, scheduler.timesteps, result.prompt.embeddings, 4.0)
    assert torch.allclose(result.latents, plain, atol=1e-5)


def test_channel_images_stats_and_preview(models, image):
    latents = pixels_to_latents(models.vae, pil_to_pixels(image))
    channels = latents_to_channel_images(latents)
    assert len(channels) == 4
    for picture in channels:
        array = np.asarray(picture)
        assert array.dtype == np.uint8 and array.shape == (8, 8, 3)
    stats = channel_stats(latents)
    assert [s.channel for s in stats] == [0, 1, 2, 3]
    assert stats[2].mean == pytest.approx(latents[0, 2].mean().item())
    assert stats[2].min <= stats[2].mean <= stats[2].max
    preview = latents_to_rgb_preview(latents)
    assert preview.size == (8, 8) and preview.mode == "RGB"


def test_diverging_colormap_maps_zero_to_white_and_signs_to_colours():
    latents = torch.tensor([[-2.0, 0.0, 2.0]]).reshape(1, 1, 1, 3).expand(1, 4, 1, 3)
    pixels = np.asarray(latents_to_channel_images(latents)[0])[0]
    assert tuple(pixels[1]) == (255, 255, 255)
    assert pixels[0][2] > pixels[0][0] and pixels[2][0] > pixels[2][2]  # blue for negative, red for positive


def test_compression_facts_count_the_tensors(models):
    pixels = torch.zeros(1, 3, 512, 512)
    latents = torch.zeros(1, 4, 64, 64)
    facts = compression_facts(pixels, latents)
    assert (facts.pixel_values, facts.latent_values) == (786_432, 16_384)
    assert facts.ratio == 48.0 and "786,432" in facts.describe() and "16,384" in facts.describe()


def test_encode_decode_roundtrip_and_psnr(models, image):
    pixels = pil_to_pixels(image)
    latents = pixels_to_latents(models.vae, pixels)
    assert latents.shape == (1, 4, 8, 8)
    decoded = latents_to_pixels(models.vae, latents)
    assert decoded.shape == pixels.shape
    assert psnr(pixels, pixels) == float("inf")
    assert psnr(pixels, torch.zeros_like(pixels) + pixels + 0.2) == pytest.approx(10 * np.log10(4 / 0.04), abs=0.01)
    heat = error_heatmap(pixels, decoded)
    assert heat.size == image.size and np.asarray(heat).max() > 0
    assert np.array_equal(np.asarray(pixels_to_pil(pixels)), np.asarray(image))


def test_vae_calls_in_channels_last_equal_plain_diffusers_calls(models, image):
    """Our VAE calls feed NHWC input (faster on CPU); the values must be diffusers' own, returned in NCHW."""
    pixels = pil_to_pixels(image)
    with torch.inference_mode():
        plain_latents = models.vae.encode(pixels).latent_dist.mean * models.vae.config.scaling_factor
        plain_pixels = models.vae.decode(plain_latents / models.vae.config.scaling_factor).sample
    latents, decoded = pixels_to_latents(models.vae, pixels), latents_to_pixels(models.vae, plain_latents)
    assert latents.is_contiguous() and decoded.is_contiguous()
    torch.testing.assert_close(latents, plain_latents, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(decoded, plain_pixels, rtol=1e-5, atol=1e-5)
    assert convolution_layout(pixels).is_contiguous(memory_format=torch.channels_last)


def test_posterior_sample_differs_from_mean_only_when_asked(models, image):
    pixels = pil_to_pixels(image)
    mean = pixels_to_latents(models.vae, pixels)
    assert torch.equal(mean, pixels_to_latents(models.vae, pixels))
    sample = pixels_to_latents(models.vae, pixels, torch.Generator().manual_seed(0))
    assert not torch.equal(mean, sample)


def test_add_noise_follows_the_forward_process(models, image):
    latents = pixels_to_latents(models.vae, pil_to_pixels(image))
    alphas = noise_schedule(models)
    assert alphas[0] > 0.99 and alphas[-1] < 0.01 and torch.all(alphas[1:] <= alphas[:-1])
    early, late = add_noise(models, latents, 0, seed=3), add_noise(models, latents, 999, seed=3)
    assert (early.latents - latents).abs().max() < 0.1
    expected = alphas[999].sqrt() * latents + (1 - alphas[999]).sqrt() * late.noise
    assert torch.allclose(late.latents, expected, atol=1e-5)
    assert torch.equal(early.noise, late.noise)  # same seed, same noise


def test_slerp_keeps_the_ends_and_the_norm(models):
    frames = interpolate(models, 1, 2, 5, 64, 64, max_count=16)
    ends = interpolate(models, 1, 2, 2, 64, 64, max_count=16)
    assert len(frames) == 5 and torch.equal(frames[0], ends[0]) and torch.allclose(frames[-1], ends[1])
    low, high = sorted([frames[0].norm().item(), frames[-1].norm().item()])
    assert all(0.99 * low <= f.norm().item() <= 1.01 * high for f in frames)
    straight_midpoint = ((frames[0] + frames[-1]) / 2).norm().item()
    assert straight_midpoint < 0.8 * low  # what slerp avoids: a straight line dips to ~71% mid-way
    a = torch.randn(10)
    assert torch.allclose(slerp(a, a, 0.5), a)


def test_the_linear_preview_is_the_factor_map_rounded():
    """latents_to_rgb_preview (numpy, off torch's threads) against the same map in torch, bfloat16 latents too."""
    from latent_demo.latents import SD_LATENT_RGB_FACTORS

    for dtype in (torch.float32, torch.bfloat16):
        latents = (torch.randn(1, 4, 32, 48, generator=torch.Generator().manual_seed(0)) * 1.5).to(dtype)
        rgb = torch.einsum("chw,cr->hwr", latents[0].float(), SD_LATENT_RGB_FACTORS)
        expected = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        assert np.array_equal(np.asarray(latents_to_rgb_preview(latents)), expected)
