"""Our tasks against diffusers' pipelines on the same tiny components, seed, scheduler and settings."""

import dataclasses

import diffusers
import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    UniPCMultistepScheduler,
)

from latent_demo import tasks
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams

SCHEDULERS = ["model default", "Euler a", "DPM++ 2M", "DDIM", "UniPC"]
PROMPT, NEGATIVE, SEED = "a red fox in the snow", "blurry", 7


# The reference's schedulers are built here from diffusers' own classes and the model's config, not by our
# make_scheduler: a mistake there must show up as a difference.
REFERENCE_SCHEDULERS = {"Euler a": EulerAncestralDiscreteScheduler, "DPM++ 2M": DPMSolverMultistepScheduler,
                        "DDIM": DDIMScheduler, "UniPC": UniPCMultistepScheduler}


def reference_scheduler(models, name: str):
    config = models.scheduler_config
    if name != "model default":
        cls = REFERENCE_SCHEDULERS[name]
    else:  # a saved model names its class; the offline model's config is built for EulerDiscreteScheduler
        cls = getattr(diffusers, config["_class_name"]) if "_class_name" in config else EulerDiscreteScheduler
    return cls.from_config(config)  # the pipeline applies its own fixes to outdated configs


def pipeline(cls, models, scheduler):
    return cls(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=models.unet,
               scheduler=reference_scheduler(models, scheduler), safety_checker=None,
               feature_extractor=None, requires_safety_checker=False)


def generator():
    return torch.Generator("cpu").manual_seed(SEED)


def assert_close(ours: torch.Tensor, reference: torch.Tensor):
    assert ours.shape == reference.shape
    scale = reference.abs().max().item()
    assert scale > 0.1, "the reference must not be trivially zero"
    assert (ours - reference).abs().max().item() <= 1e-5 * max(1.0, scale)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("guidance_scale", [0.0, 6.0])
def test_generate_matches_stable_diffusion_pipeline(models, settings, scheduler, guidance_scale):
    params = GenerateParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, num_inference_steps=3,
                            guidance_scale=guidance_scale, scheduler=scheduler, width=64, height=64)
    ours = tasks.generate(models, params, settings)
    reference = pipeline(StableDiffusionPipeline, models, scheduler)(
        PROMPT, negative_prompt=NEGATIVE, num_inference_steps=3, guidance_scale=guidance_scale, width=64, height=64,
        generator=generator(), output_type="latent").images
    assert_close(ours.latents, reference)
    pixels = pipeline(StableDiffusionPipeline, models, scheduler)(
        PROMPT, negative_prompt=NEGATIVE, num_inference_steps=3, guidance_scale=guidance_scale, width=64, height=64,
        generator=generator(), output_type="np").images[0]
    reference_image = (pixels * 255).round().astype(np.uint8)
    # decoded pixels too: ours decodes in channels_last on a CPU (float rounding only)
    assert np.abs(np.asarray(ours.image, int) - reference_image.astype(int)).max() <= 1


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("from_latents", [False, True])
def test_img2img_matches_img2img_pipeline(models, settings, image, scheduler, from_latents):
    params = Img2ImgParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, num_inference_steps=4,
                           guidance_scale=5.0, scheduler=scheduler, strength=0.5)
    if from_latents:
        latents = tasks.pixels_to_latents(models.vae, tasks.pil_to_pixels(image))
        ours = tasks.img2img(models, params, settings, latents=latents)
        source = latents
    else:
        ours = tasks.img2img(models, params, settings, image=image)
        source = image
    reference = pipeline(StableDiffusionImg2ImgPipeline, models, scheduler)(
        PROMPT, image=source, negative_prompt=NEGATIVE, strength=0.5, num_inference_steps=4, guidance_scale=5.0,
        generator=generator(), output_type="latent").images
    assert ours.start_step == 2
    assert_close(ours.latents, reference)


@pytest.mark.parametrize("scheduler", ["model default", "Euler a", "DDIM"])
@pytest.mark.parametrize("strength", [1.0, 0.75])
@pytest.mark.parametrize("unet_channels", [4, 9])
def test_inpaint_matches_inpaint_pipeline(models, models9, settings, image, mask, scheduler, strength,
                                          unet_channels):
    chosen = models if unet_channels == 4 else models9
    params = InpaintParams(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, num_inference_steps=4,
                           guidance_scale=5.0, scheduler=scheduler, strength=strength)
    ours = tasks.inpaint(chosen, params, settings, image, mask)
    reference_pipe = pipeline(StableDiffusionInpaintPipeline, dataclasses.replace(chosen), scheduler)
    reference = reference_pipe(
        PROMPT, image=image, mask_image=mask, negative_prompt=NEGATIVE, strength=strength, num_inference_steps=4,
        guidance_scale=5.0, generator=generator(), output_type="latent", height=64, width=64).images
    assert ("inpainting UNet" in ours.method) == (unet_channels == 9)
    assert_close(ours.latents, reference)
