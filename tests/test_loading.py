"""Loading through load_models: a saved pipeline folder, the offline fallback, clear errors."""

import logging
import subprocess
import sys

import pytest
import torch
from conftest import DEFAULT_DTYPE, NATIVE_BF16
from diffusers import StableDiffusionPipeline
from ldm_checkpoint import save_as_ldm_checkpoint

from latent_demo import tasks
from latent_demo.config import Settings
from latent_demo.models import ModelLoadError, load_models
from latent_demo.params import GenerateParams
from latent_demo.presets import choose_dtypes, cpu_has_fast_bfloat16


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("tiny-sd")
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer,
                                   unet=models.unet, scheduler=tasks.make_scheduler(models.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_a_saved_diffusers_folder_loads_and_generates_the_same(saved_pipeline, models, settings):
    loaded = load_models(Settings(model=str(saved_pipeline), fast_decoder="none", offline=True, dtype="float32"))
    assert loaded.source == str(saved_pipeline) and not loaded.is_untrained and loaded.fallback_reason is None
    assert loaded.scheduler_config["_class_name"] == "EulerDiscreteScheduler"
    params = GenerateParams(prompt="a kite", seed=4, num_inference_steps=2, width=64, height=64)
    ours, original = tasks.generate(loaded, params, settings), tasks.generate(models, params, settings)
    assert torch.equal(ours.latents, original.latents)
    assert not list(saved_pipeline.rglob("*.bin"))  # safetensors only


def test_default_model_unavailable_offline_falls_back_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        loaded = load_models(Settings(offline=True, fast_decoder="none"))
    assert loaded.is_untrained and "stabilityai/sd-turbo" in loaded.fallback_reason
    assert "OFFLINE MODEL IN USE" in caplog.text


@pytest.mark.parametrize("model, message", [
    ("/no/such/folder", "no model folder at '/no/such/folder'"),
    ("someone/not-cached-model", "could not load model 'someone/not-cached-model'"),
    ("weights.ckpt", "pickle checkpoint"),
    ("/no/such/file.safetensors", "no checkpoint file"),
])
def test_an_explicit_model_that_fails_is_an_error_not_a_fallback(model, message):
    with pytest.raises(ModelLoadError, match=message):
        load_models(Settings(model=model, offline=True, fast_decoder="none"))


def test_a_folder_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_models(Settings(model=str(tmp_path), offline=True, fast_decoder="none"))


def test_missing_fast_decoder_is_logged_not_fatal(saved_pipeline, caplog):
    with caplog.at_level(logging.WARNING):
        loaded = load_models(Settings(model=str(saved_pipeline), offline=True))
    assert loaded.fast_decoder is None and not loaded.is_untrained
    assert "fast decoder madebyollin/taesd unavailable" in caplog.text


def test_dtype_choice_keeps_the_vae_in_float32_with_float16():
    assert choose_dtypes(torch.device("cuda"), "auto") == (torch.float16, torch.float32)
    # expected from the kernel's CPU flags (conftest), not from the function under test
    assert choose_dtypes(torch.device("cpu"), "auto") == (DEFAULT_DTYPE, DEFAULT_DTYPE)
    assert cpu_has_fast_bfloat16() == NATIVE_BF16
    assert choose_dtypes(torch.device("cpu"), "bfloat16", "float32") == (torch.bfloat16, torch.float32)
    with pytest.raises(ValueError, match="float16 VAE is not supported on the CPU"):
        choose_dtypes(torch.device("cpu"), "bfloat16", "float16")
    assert choose_dtypes(torch.device("cpu"), "float32") == (torch.float32, torch.float32)
    assert choose_dtypes(torch.device("cpu"), "bfloat16") == (torch.bfloat16, torch.bfloat16)
    with pytest.raises(ValueError, match="float16 is not supported on the CPU"):
        choose_dtypes(torch.device("cpu"), "float16")
    with pytest.raises(ModelLoadError, match="float16 is not supported on the CPU"):  # what app.py reports
        load_models(Settings(model="offline", dtype="float16", device="cpu", fast_decoder="none"))


def test_bfloat16_on_cpu_generates_a_close_image(models, settings):
    loaded = load_models(Settings(model="offline", dtype="bfloat16", fast_decoder="none"))
    assert loaded.unet.dtype == torch.bfloat16
    params = GenerateParams(prompt="a kite", seed=4, num_inference_steps=2, width=64, height=64)
    low, full = tasks.generate(loaded, params, settings), tasks.generate(models, params, settings)
    assert low.latents.dtype == torch.float32  # results come back as float32 on the CPU
    assert (low.latents - full.latents).abs().mean() < 0.1 * full.latents.abs().mean()


def test_core_modules_never_import_gradio():
    code = ("import sys, pkgutil, importlib, latent_demo\n"
            "names = [m.name for m in pkgutil.iter_modules(latent_demo.__path__) if m.name not in ('ui', 'serving')]\n"
            "[importlib.import_module('latent_demo.' + n) for n in names]\n"
            "assert len(names) >= 8, names\n"
            "print('gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_single_file_ldm_checkpoint_loads_offline_with_the_same_weights(saved_pipeline, models, settings, tmp_path):
    """An original-layout (CompVis) .safetensors checkpoint, its configs taken from a local diffusers folder."""
    file = save_as_ldm_checkpoint(models, tmp_path / "tiny-sd.safetensors")
    loaded = load_models(Settings(model=str(file), single_file_config=str(saved_pipeline), offline=True,
                                  fast_decoder="none", dtype="float32"))
    assert loaded.source == str(file) and not loaded.is_untrained and loaded.fallback_reason is None
    assert loaded.scheduler_config["_class_name"] == "EulerDiscreteScheduler"
    for name in ("unet", "vae", "text_encoder"):
        original, reloaded = getattr(models, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == reloaded.keys(), name  # diffusers leaves missing weights uninitialised, silently
        assert all(torch.equal(original[key], reloaded[key]) for key in original), name
    params = GenerateParams(prompt="a kite", seed=4, num_inference_steps=2, width=64, height=64)
    expected = tasks.generate(models, params, settings).latents
    # diffusers leaves the weights as views into the mmapped file, where safetensors aligns them to 4 or 8 bytes only;
    # CPU float32 kernels then sum in another order (latents off by ~1e-5). In freshly allocated memory: bit-equal.
    assert torch.allclose(tasks.generate(loaded, params, settings).latents, expected, rtol=0, atol=1e-4)
    for module in (loaded.unet, loaded.vae, loaded.text_encoder):
        for param in module.parameters():
            param.data = param.data.clone()
    assert torch.equal(tasks.generate(loaded, params, settings).latents, expected)


@pytest.fixture(scope="module")
def pipeline_with_fp16_files(tmp_path_factory, saved_pipeline):
    """The saved folder plus `fp16` weight files for the UNet and text encoder, made different from the full
    files (halved weights), so a test can tell which files were read."""
    import shutil

    folder = tmp_path_factory.mktemp("tiny-sd-fp16") / "model"
    shutil.copytree(saved_pipeline, folder)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    for component in (pipe.unet, pipe.text_encoder):
        with torch.no_grad():
            for parameter in component.parameters():
                parameter.mul_(0.5)
        component.to(torch.float16).save_pretrained(folder / ("unet" if component is pipe.unet else "text_encoder"),
                                                    variant="fp16", safe_serialization=True)
    return folder


def test_half_precision_loads_the_fp16_files_and_the_vae_from_the_full_ones(pipeline_with_fp16_files, models):
    assert (pipeline_with_fp16_files / "unet" / "diffusion_pytorch_model.fp16.safetensors").exists()
    loaded = load_models(Settings(model=str(pipeline_with_fp16_files), fast_decoder="none", offline=True,
                                  dtype="bfloat16", vae_dtype="float32"))
    unet_weight = next(loaded.unet.parameters())
    full_weight = next(models.unet.parameters())
    assert unet_weight.dtype == torch.bfloat16
    assert torch.equal(unet_weight, (full_weight * 0.5).half().bfloat16())  # the halved fp16 file was read
    text_weight = next(loaded.text_encoder.parameters())
    assert torch.equal(text_weight, (next(models.text_encoder.parameters()) * 0.5).half().bfloat16())
    assert loaded.vae.dtype == torch.float32
    assert torch.equal(next(loaded.vae.parameters()), next(models.vae.parameters()))  # full files, not rounded


def test_without_fp16_files_half_precision_loads_the_full_files(saved_pipeline, models, caplog):
    with caplog.at_level(logging.INFO):
        loaded = load_models(Settings(model=str(saved_pipeline), fast_decoder="none", offline=True, dtype="bfloat16"))
    assert torch.equal(next(loaded.unet.parameters()), next(models.unet.parameters()).bfloat16())
    assert "has no fp16 weights" in caplog.text


def test_float32_never_reads_the_fp16_files(pipeline_with_fp16_files, models):
    loaded = load_models(Settings(model=str(pipeline_with_fp16_files), fast_decoder="none", offline=True,
                                  dtype="float32"))
    assert torch.equal(next(loaded.unet.parameters()), next(models.unet.parameters()))
