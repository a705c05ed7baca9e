"""The encoder's side: the lesson's toy encoder counted, the posterior's spread against an independent computation."""

import pytest
import torch
from conftest import make_image

from latent_demo.encoder_side import encode_with_toy, posterior, toy_encoder
from latent_demo.images import pil_to_pixels


@pytest.mark.parametrize("side, toy_values, vae_values", [(64, 32 * 16 * 16, 4 * 8 * 8),
                                                          (512, 524_288, 16_384)])
def test_the_toy_encoder_keeps_two_thirds_of_the_values(models, side, toy_values, vae_values):
    encoded = encode_with_toy(models, torch.zeros(1, 3, side, side))
    assert encoded.values(encoded.toy_shape) == toy_values and encoded.values(encoded.vae_shape) == vae_values
    assert encoded.toy_ratio == 1.5 and encoded.vae_ratio == 48
    assert [type(layer).__name__ for layer in toy_encoder()] == ["Conv2d", "ReLU", "Conv2d"]
    assert torch.equal(toy_encoder()[0].weight, toy_encoder()[0].weight)  # fixed seed: the same toy every time


def test_the_posteriors_spread_is_exp_half_logvar(models):
    pixels = pil_to_pixels(make_image(64, 64))
    result = posterior(models, pixels, seed=3)
    with torch.inference_mode():
        moments = models.vae.quant_conv(models.vae.encoder(pixels))  # the encoder's raw output: mean | logvar
    mean, logvar = moments.chunk(2, dim=1)
    scale = models.vae.config.scaling_factor
    torch.testing.assert_close(result.std, torch.exp(0.5 * logvar.clamp(-30, 20)) * scale, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(result.mean, mean * scale, rtol=1e-4, atol=1e-5)
    assert len(result.samples) == 2 and not torch.equal(result.samples[0], result.samples[1])
    again = posterior(models, pixels, seed=3)
    assert torch.equal(again.samples[0], result.samples[0])  # the seed fixes the draws


def test_the_encoder_decoder_grid_equals_direct_diffusers_calls(models):
    import dataclasses

    from diffusers import AutoencoderTiny

    from latent_demo.encoder_side import encoder_decoder_grid

    torch.manual_seed(0)
    taesd = AutoencoderTiny().eval()
    pixels = pil_to_pixels(make_image(64, 64))
    assert len(encoder_decoder_grid(models, pixels)) == 1  # no fast decoder loaded: the full VAE alone
    cells = {(c.encoder, c.decoder): c for c in encoder_decoder_grid(dataclasses.replace(models, fast_decoder=taesd),
                                                                     pixels)}
    assert set(cells) == {(e, d) for e in ("full VAE", "TAESD") for d in ("full VAE", "TAESD")}
    scale = models.vae.config.scaling_factor
    with torch.inference_mode():
        vae_latents = models.vae.encode(pixels).latent_dist.mean * scale
        taesd_latents = taesd.encode(pixels).latents
        expected = {("full VAE", "full VAE"): models.vae.decode(vae_latents / scale).sample,
                    ("full VAE", "TAESD"): taesd.decode(vae_latents).sample,
                    ("TAESD", "full VAE"): models.vae.decode(taesd_latents / scale).sample,
                    ("TAESD", "TAESD"): taesd.decode(taesd_latents).sample}
    for key, reference in expected.items():
        torch.testing.assert_close(cells[key].reconstruction, reference, rtol=1e-4, atol=1e-4)
        assert cells[key].psnr_db == pytest.approx(
            10 * torch.log10(4 / (pixels - reference.clamp(-1, 1)).pow(2).mean()).item(), abs=1e-3)


class BlockDecoder(torch.nn.Module):
    """A decoder whose reach is known: nearest ×8 upsampling, then one 3×3 convolution and no normalisation, so a
    latent cell changes its own 8×8 pixels and the 1-px ring around them, nothing else."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(scaling_factor=1.0, latent_channels=4, block_out_channels=(1, 1, 1, 1))
        self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

    @property
    def device(self):
        return torch.device("cpu")

    @property
    def dtype(self):
        return torch.float32

    def decode(self, latents):
        from types import SimpleNamespace

        return SimpleNamespace(sample=self.conv(torch.nn.functional.interpolate(latents, scale_factor=8)))


def test_one_cell_reaches_exactly_as_far_as_the_decoder_lets_it(models):
    import dataclasses

    from latent_demo.encoder_side import latent_cell

    torch.manual_seed(0)
    blocky = dataclasses.replace(models, vae=BlockDecoder())
    latents, pixels = torch.randn(1, 4, 8, 8), torch.zeros(1, 3, 64, 64)
    result = latent_cell(blocky, latents, pixels, 3, 4)
    inside = torch.zeros(64, 64, dtype=torch.bool)
    inside[3 * 8 - 1:4 * 8 + 1, 4 * 8 - 1:5 * 8 + 1] = True  # its 8×8 pixels and the 1-px ring
    assert result.change[~inside].abs().max() == 0 and result.change[inside].sum() > 0
    assert result.radius_90 <= 5 * 2 ** 0.5  # the ring's far corner from the cell's centre
    assert 0 < result.outside_share < 0.5 and result.values == latents[0, :, 3, 4].tolist()
    real = latent_cell(models, torch.randn(1, 4, 8, 8), pixels, 3, 4)  # the offline VAE spreads it further
    assert real.radius_90 > 4 and len(real.values) == 4 and real.patch.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="cell row must be"):
        latent_cell(models, latents, pixels, 8, 0)
