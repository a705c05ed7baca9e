"""Latent spaces of other families (--compare-vaes): the published architectures built with random weights, the
loading rules, and the comparison against direct diffusers calls."""

import dataclasses
import shutil

import pytest
import torch
from conftest import CPU, make_image, tiny_other_autoencoders

from latent_demo.compression import LATENT_BITS, squeeze
from latent_demo.config import Settings
from latent_demo.images import pil_to_pixels, psnr
from latent_demo.latent_spaces import compare_latent_spaces, measure
from latent_demo.latents import latents_to_pixels
from latent_demo.models import ModelLoadError, load_extra_autoencoders, load_models
from latent_demo.other_autoencoders import CANDIDATES, PUBLISHED_CONFIGS, random_weight_autoencoder
from latent_demo.ui.latent_spaces_view import compare_seconds

# name -> (down-factor, channels, scaling factor, shift factor, latent values of a 512 px image)
PUBLISHED = {"sdxl": (8, 4, 0.13025, 0.0, 4 * 64 * 64), "flux-schnell": (8, 16, 0.3611, 0.1159, 16 * 64 * 64),
             "dc-ae": (32, 32, 0.41407, 0.0, 32 * 16 * 16)}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_each_published_architecture_counts_its_own_latents(name):
    """Full size, random weights: the real model's shapes and factors, encoded and decoded at 64 px."""
    extra = random_weight_autoencoder(name)
    factor, channels, scaling, shift, values_512 = PUBLISHED[name]
    assert (extra.down_factor, extra.channels, extra.scaling_factor, extra.shift_factor) == (factor, channels,
                                                                                           scaling, shift)
    space, latents = measure(name, extra.model, torch.zeros(1, 3, 64, 64))
    assert tuple(latents.shape) == (1, channels, 64 // factor, 64 // factor) and space.reconstruction.size == (64, 64)
    assert space.latent_values * (512 // 64) ** 2 == values_512  # the README's counts at 512 px, from the real model
    assert space.value_ratio == 512 * 512 * 3 / values_512 and space.bit_ratio == space.value_ratio / 2
    assert CANDIDATES[name].licence in ("MIT", "Apache-2.0") and PUBLISHED_CONFIGS[name]["_class_name"] in (
        "AutoencoderKL", "AutoencoderDC")


@pytest.fixture(scope="module")
def compared(models):
    extras = load_extra_autoencoders(Settings(compare_vaes=",".join(tiny_other_autoencoders().values()),
                                              offline=True), CPU, torch.float32)
    return dataclasses.replace(models, extra_autoencoders=extras)


def test_the_comparison_equals_direct_diffusers_calls(compared):
    image = make_image(100, 70)
    report = compare_latent_spaces(compared, image, Settings(max_image_side=128), ["pool ×2"])
    assert report.image.size == (96, 64)  # fitted to 32, the DC-AE's down-factor
    pixels = pil_to_pixels(report.image)
    own, flux, dc_ae = report.spaces
    assert [space.name for space in report.spaces] == ["this model's VAE", "flux-shaped", "dc-ae-shaped"]
    with torch.inference_mode():
        # FLUX-shaped: the posterior mean, shifted then scaled; decoding undoes both
        vae = compared.extra_autoencoders[0].model
        raw = vae.encode(pixels).latent_dist.mean
        direct = vae.decode(((raw - 0.1159) * 0.3611) / 0.3611 + 0.1159).sample
        assert flux.psnr_db == pytest.approx(psnr(pixels, direct), abs=0.01)
        assert (flux.latent_shape, flux.shift_factor, flux.down_factor) == ((16, 8, 12), 0.1159, 8)
        dc = compared.extra_autoencoders[1].model
        direct = dc.decode(dc.encode(pixels).latent * 0.41407 / 0.41407).sample
        assert dc_ae.psnr_db == pytest.approx(psnr(pixels, direct), abs=0.01)
        assert dc_ae.latent_shape == (32, 2, 3) and dc_ae.value_ratio == 96 * 64 * 3 / (32 * 6)
    own_direct = latents_to_pixels(compared.vae, compared.vae.encode(pixels).latent_dist.mean
                                   * compared.vae.config.scaling_factor)
    assert own.psnr_db == pytest.approx(psnr(pixels, own_direct), abs=0.01) and own.bit_ratio == 24
    latents = compared.vae.encode(pixels).latent_dist.mean * compared.vae.config.scaling_factor
    pooled, bits = squeeze(latents, "pool ×2")
    assert report.squeezed[0].label == "pool ×2" and report.squeezed[0].stored_bits == bits
    assert report.squeezed[0].psnr_db == pytest.approx(psnr(pixels, latents_to_pixels(compared.vae, pooled)),
                                                       abs=0.01)
    assert report.pixel_bits == 96 * 64 * 3 * 8 == own.latent_values * LATENT_BITS * own.bit_ratio


def test_an_unknown_squeeze_fails_before_any_work(compared):
    with pytest.raises(ValueError, match="squeeze 'pool ×3' is unknown"):
        compare_latent_spaces(compared, make_image(), Settings(max_image_side=128), ["pool ×3"])


def test_the_estimate_counts_each_extra_at_its_size(compared):
    image = make_image(512, 512)
    settings = Settings(max_image_side=512)
    alone = compare_seconds(dataclasses.replace(compared, extra_autoencoders=()), settings, image, ["2-bit"])
    both = compare_seconds(compared, settings, image, ["2-bit"])
    big = dataclasses.replace(compared, extra_autoencoders=(random_weight_autoencoder("dc-ae"),))
    assert alone < both < compare_seconds(big, settings, image, ["2-bit"])  # 2 passes each, DC-AE counted ×3.7


def test_loading_reads_the_folder_layouts_and_the_dtype(models):
    folders = tiny_other_autoencoders()
    extras = load_extra_autoencoders(Settings(compare_vaes=f" {folders['flux-shaped']} ,,{folders['dc-ae-shaped']}",
                                              offline=True), CPU, torch.bfloat16)
    assert [(e.name, type(e.model).__name__, e.model.dtype) for e in extras] == [
        ("flux-shaped", "AutoencoderKL", torch.bfloat16), ("dc-ae-shaped", "AutoencoderDC", torch.bfloat16)]
    assert load_extra_autoencoders(Settings(), CPU, torch.float32) == ()  # the default: none


@pytest.mark.parametrize("entry, message", [
    ("sdxl", "--compare-vaes: could not load"),  # a known one, not in the (empty, offline) cache
    ("./no/such/folder", "neither a known autoencoder"),
    ("a/b/c", "neither a known autoencoder"),
])
def test_a_named_autoencoder_that_fails_stops_the_start(entry, message):
    with pytest.raises(ModelLoadError, match=message):
        load_models(Settings(model="offline", fast_decoder="none", offline=True, compare_vaes=entry))


def test_only_safetensors_and_only_autoencoders_are_loaded(tmp_path, models):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_other_autoencoders()["dc-ae-shaped"], pickled)
    (pickled / "diffusion_pytorch_model.safetensors").rename(pickled / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="could not load an autoencoder"):
        load_extra_autoencoders(Settings(compare_vaes=str(pickled), offline=True), CPU, torch.float32)
    unet_folder = tmp_path / "unet"
    models.unet.save_pretrained(unet_folder)
    with pytest.raises(ModelLoadError, match="only AutoencoderKL, AutoencoderDC are compared"):
        load_extra_autoencoders(Settings(compare_vaes=str(unet_folder), offline=True), CPU, torch.float32)
