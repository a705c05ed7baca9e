"""Same seed and settings, same image: fingerprints and run comparisons."""

import dataclasses

from latent_demo import tasks
from latent_demo.config import Settings
from latent_demo.params import GenerateParams
from latent_demo.reproducibility import compare_runs, fingerprint

SETTINGS = Settings(fast_decoder="none", offline=True)
PARAMS = GenerateParams(prompt="a fox", seed=5, num_inference_steps=2, guidance_scale=0.0, width=64, height=64)


def test_the_fingerprint_is_stable_across_runs_and_changes_with_the_seed(models):
    first, second = (tasks.generate(models, PARAMS, SETTINGS) for _ in range(2))
    other = tasks.generate(models, dataclasses.replace(PARAMS, seed=6), SETTINGS)
    assert fingerprint(first.latents) == fingerprint(second.latents) != fingerprint(other.latents)
    assert fingerprint(first.image) == fingerprint(second.image) != fingerprint(other.image)
    assert len(fingerprint(first.image)) == 12


def test_comparing_two_runs_names_what_changed_and_where(models):
    first = tasks.generate(models, PARAMS, SETTINGS)
    again = tasks.generate(models, PARAMS, SETTINGS)
    same = compare_runs(PARAMS, first.latents, first.image, PARAMS, again.latents, again.image)
    assert same.latents_max_difference == 0 and same.pixels_max_difference == 0 and same.changed == {}
    assert same.heatmap.getextrema() == ((0, 0), (0, 0), (0, 0))  # black everywhere
    changed = dataclasses.replace(PARAMS, seed=6)
    other = tasks.generate(models, changed, SETTINGS)
    different = compare_runs(PARAMS, first.latents, first.image, changed, other.latents, other.image)
    assert different.changed == {"seed": (5, 6)} and different.pixels_max_difference > 0
    assert max(high for _, high in different.heatmap.getextrema()) > 0
