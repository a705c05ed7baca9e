"""What compression keeps: decoders compared, latents squeezed further, sizes counted in bits."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from latent_demo.compression import (
    LATENT_BITS,
    PIXEL_BITS,
    RANGE_BITS,
    SQUEEZES,
    compare_compression,
    quantize,
    squeeze,
)
from latent_demo.config import Settings
from latent_demo.images import open_image
from latent_demo.ui.examples import asset


class PatchAutoencoder(torch.nn.Module):
    """A VAE stand-in that really reconstructs (the offline VAE's random weights don't): each 8×8 patch's mean
    colour in 3 latent channels (the 4th is 0), decoded by bilinear upsampling. Losing latent detail must then cost
    PSNR, as it does with a trained VAE."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(scaling_factor=1.0, latent_channels=4, block_out_channels=(1, 1, 1, 1))
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device and dtype

    @property
    def device(self):
        return self.anchor.device

    @property
    def dtype(self):
        return self.anchor.dtype

    def encode(self, pixels):
        means = F.avg_pool2d(pixels, 8)
        latents = torch.cat([means, torch.zeros_like(means[:, :1])], dim=1)
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=latents))

    def decode(self, latents):
        size = (latents.shape[2] * 8, latents.shape[3] * 8)
        return SimpleNamespace(sample=F.interpolate(latents[:, :3], size=size, mode="bilinear"))


@pytest.fixture(scope="module")
def patch_models(models):
    return dataclasses.replace(models, vae=PatchAutoencoder())


@pytest.fixture(scope="module")
def photo():
    return open_image(asset("astronaut.png"), 40_000_000)


def test_psnr_drops_as_the_pooling_factor_grows(patch_models, photo):
    settings = Settings(fast_decoder="none", offline=True, max_image_side=256)
    report = compare_compression(patch_models, photo, settings, ["pool ×2", "pool ×4"])
    full = report.decoders[0]
    pooled = {d.label: d for d in report.squeezed}
    assert full.psnr_db > pooled["pool ×2"].psnr_db > pooled["pool ×4"].psnr_db
    assert full.psnr_db > 15  # it really reconstructs (the untrained VAE: ~9.5 dB), so the order above means something


def test_stored_sizes_are_counted_in_bits(models, photo):
    settings = Settings(fast_decoder="none", offline=True, max_image_side=256)
    report = compare_compression(models, photo, settings)
    h, w = report.image.height, report.image.width
    latent_values = 4 * (h // 8) * (w // 8)
    assert report.pixel_bits == h * w * 3 * PIXEL_BITS
    assert [d.label for d in report.decoders] == ["full VAE decoder", "linear 4×3 map"]  # no fast decoder loaded
    assert all(d.stored_bits == latent_values * LATENT_BITS for d in report.decoders)
    assert report.decoders[0].ratio == pytest.approx(24.0)  # 48× fewer values, 2× more bits per value
    bits = {d.label: d.stored_bits for d in report.squeezed}
    assert list(bits) == list(SQUEEZES)
    assert bits["pool ×2"] == latent_values // 4 * LATENT_BITS and bits["pool ×4"] == latent_values // 16 * 16
    assert bits["2 channels"] == latent_values // 2 * LATENT_BITS
    assert bits["4-bit"] == latent_values * 4 + 4 * RANGE_BITS
    for decoded in report.decoders + report.squeezed:
        assert decoded.image.size == report.image.size and decoded.seconds > 0
        assert decoded.ratio == pytest.approx(report.pixel_bits / decoded.stored_bits)


def test_squeezes_do_what_they_say():
    latents = torch.randn(1, 4, 12, 10, generator=torch.Generator().manual_seed(0))
    pooled, _ = squeeze(latents, "pool ×4")  # 12×10 does not divide by 4: partial cells are kept
    assert pooled.shape == latents.shape and pooled.std() < latents.std()
    kept, _ = squeeze(latents, "3 channels")
    assert torch.equal(kept[:, :3], latents[:, :3]) and kept[:, 3].abs().max() == 0
    for bits in (2, 4, 8):
        levels = {len(torch.unique(channel)) for channel in quantize(latents, bits)[0]}
        assert max(levels) <= 2**bits
    error_8, error_2 = ((quantize(latents, b) - latents).abs().max() for b in (8, 2))
    assert error_8 < error_2
    with pytest.raises(ValueError, match="squeeze 'pool ×3' is unknown"):
        squeeze(latents, "pool ×3")
