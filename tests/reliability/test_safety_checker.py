"""The optional safety checker screens results and streamed previews; asked for but missing is an error."""

import dataclasses

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor

from latent_demo import tasks
from latent_demo.config import Settings
from latent_demo.models import ModelLoadError, load_models
from latent_demo.params import GenerateParams
from latent_demo.safety import SafetyFilter
from latent_demo.serving.previews import preview_image


def tiny_filter(flag_everything: bool) -> SafetyFilter:
    """A real StableDiffusionSafetyChecker, tiny and random; its thresholds set to flag all images or none."""
    torch.manual_seed(0)
    config = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2},
                        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    checker = StableDiffusionSafetyChecker(config).eval()
    threshold = -2.0 if flag_everything else 2.0  # cosine - threshold > 0 flags; cosines lie in [-1, 1]
    checker.concept_embeds_weights.fill_(threshold)
    checker.special_care_embeds_weights.fill_(2.0)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return SafetyFilter(checker, processor)


@pytest.mark.parametrize("flag_everything", [True, False])
def test_results_and_previews_are_screened(models, settings, flag_everything):
    screened = dataclasses.replace(models, safety_filter=tiny_filter(flag_everything))
    params = GenerateParams(prompt="a fox", seed=2, num_inference_steps=2, width=64, height=64)
    previews = []
    result = tasks.generate(screened, params, settings,
                            callback=lambda i, t, latents, denoised: previews.append(
                                preview_image(screened, latents, (64, 64), fast=False)))
    pictures = [np.asarray(result.image)] + [np.asarray(p) for p in previews]
    assert result.flagged == flag_everything and len(previews) == 2
    for picture in pictures:
        assert (picture.max() == 0) == flag_everything  # black exactly when flagged
    unscreened = tasks.generate(models, params, settings)
    assert not unscreened.flagged and np.asarray(unscreened.image).max() > 0


def test_asking_for_a_safety_checker_that_cannot_be_loaded_is_an_error():
    with pytest.raises(ModelLoadError, match="safety checker CompVis/stable-diffusion-safety-checker"):
        load_models(Settings(model="offline", safety_checker=True, offline=True, fast_decoder="none"))


def test_the_runner_screens_the_live_previews_and_the_trajectory(models, settings):
    """Through the served path: the previews are made (and screened) where the checker runs, then shown."""
    from latent_demo.ui.app import model_runner
    from latent_demo.ui.pictures import trajectory_pictures

    screened = dataclasses.replace(models, safety_filter=tiny_filter(True))
    params = GenerateParams(prompt="a fox", seed=2, num_inference_steps=2, width=64, height=64)
    updates = list(model_runner(screened, settings).stream("generate", params))
    steps, (kind, result) = [value for kind, value in updates if kind == "step"], updates[-1]
    # the first step is always streamed; a later one only once the preview interval is over (or it is dropped)
    assert kind == "done" and steps[0].index == 0
    assert all(result.trajectory_previews[step.index] is step.preview for step in steps)  # screened once, reused
    assert all(np.asarray(step.preview).max() == 0 == np.asarray(step.denoised_preview).max() for step in steps)
    for view in ("noisy", "denoised"):  # x_t and x̂₀ alike ("both" puts them side by side, with a white gap)
        pictures = trajectory_pictures(screened, result, view)
        assert len(pictures) == 2 and all(np.asarray(picture).max() == 0 for picture in pictures), view
    assert result.flagged and np.asarray(result.image).max() == 0
