"""Why latents: FLOPs and memory of one UNet step on latents vs on pixels, checked against hand counts."""

import pytest

from latent_demo.why_latents import _counted, counted_step_cost, why_latents


def conv_flops(in_channels: int, out_channels: int, kernel: int, height: int, width: int) -> int:
    """One multiply-add per weight per output pixel, 2 FLOPs each."""
    return 2 * out_channels * in_channels * kernel * kernel * height * width


def self_attention_flops(tokens: int, dim: int) -> int:
    """q, k, v and out projections (4 × tokens × dim × dim multiply-adds), scores q·kᵀ and scores·v (2 × tokens² ×
    dim): the head count does not change the total."""
    return 2 * (4 * tokens * dim * dim + 2 * tokens * tokens * dim)


@pytest.mark.parametrize("channels, side", [(4, 64), (3, 512)])
def test_conv_and_attention_flops_match_hand_counts(models, channels, side):
    cost = counted_step_cost(models.unet, channels, side, side)
    first = models.unet.config.block_out_channels[0]  # tiny UNet: conv_in to 32 channels, 3×3
    assert cost.layer_flops["conv_in"] == conv_flops(channels, first, 3, side, side)
    # the tiny UNet's first self-attention: down block 1 (64 channels) at half the input's side
    attention = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    tokens, dim = (side // 2) ** 2, models.unet.config.block_out_channels[1]
    assert cost.layer_flops[attention] == self_attention_flops(tokens, dim)
    assert cost.attention_tokens == tokens
    heads = models.unet.config.attention_head_dim  # diffusers reads this old config name as the head count
    assert cost.attention_matrix_bytes == heads * tokens * tokens * 4  # float32


def test_pixels_cost_more_than_their_count_and_attention_grows_with_the_square(models):
    latent = counted_step_cost(models.unet, 4, 64, 64)
    pixel = counted_step_cost(models.unet, 3, 512, 512)
    assert pixel.values / latent.values == 48
    assert pixel.flops / latent.flops > 48  # convolutions grow with the area (×64), attention with its square
    assert pixel.attention_tokens == 64 * latent.attention_tokens
    assert pixel.attention_matrix_bytes == 64**2 * latent.attention_matrix_bytes
    # activations: at least the 32-channel feature map at full size is alive at once
    assert pixel.peak_activation_bytes >= 32 * 512 * 512 * 4 > latent.peak_activation_bytes


def test_counts_are_cached_per_model_and_size(models):
    counted_step_cost(models.unet, 4, 40, 40)
    hits = _counted.cache_info().hits
    again = counted_step_cost(models.unet, 4, 40, 40)
    assert _counted.cache_info().hits == hits + 1 and again.height == 40


def test_the_panels_numbers_follow_from_the_counts_and_one_measured_step(models):
    counted = why_latents(models, 256, 256, steps=25, guidance_scale=7.5, measure=False)
    assert counted.latent_step_seconds is None and counted.pixel_step_seconds is None and counted.flop_ratio > 48
    report = why_latents(models, 256, 256, steps=25, guidance_scale=7.5)
    assert report.latent.height == 32 and report.pixel.height == 256 and report.pixel.channels == 3
    assert report.latent_step_seconds > 0 and report.unet_calls_per_step == 2
    assert report.pixel_step_seconds == pytest.approx(report.latent_step_seconds * report.flop_ratio)
    assert report.image_seconds(1.0) == 50
    with pytest.raises(ValueError, match="multiples of 8"):
        why_latents(models, 250, 256)
