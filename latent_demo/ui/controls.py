"""The input widgets several tabs share (seed, steps, guidance, scheduler, size), with the limits from settings."""

from __future__ import annotations

import json
import math
import secrets

import gradio as gr
from PIL import Image

from latent_demo.compiled import default_side
from latent_demo.config import Settings
from latent_demo.models import Models
from latent_demo.params import MAX_GUIDANCE, MAX_SEED, SamplingParams, check_int
from latent_demo.png_parameters import GenerationSettings
from latent_demo.reproducibility import fingerprint
from latent_demo.schedulers import MODEL_DEFAULT, SCHEDULER_NAMES, display_name
from latent_demo.tasks import TaskResult
from latent_demo.ui.pictures import DEFAULT_VIEW, VIEWS

MAX_RANDOM_SEED = 2**32 - 1
LIVE_HEIGHT = 384  # px: the live step pictures are small (4 px per latent cell); the page enlarges them to this


def seed_inputs(prefix: str, value: int = 42) -> tuple[gr.Number, gr.Checkbox]:
    with gr.Row():
        seed = gr.Number(label="Seed (sets the initial noise)", value=value, precision=0, minimum=0,
                         maximum=MAX_SEED, elem_id=f"{prefix}-seed")
        randomize = gr.Checkbox(label="Random seed (the one used is shown)", value=False,
                                elem_id=f"{prefix}-random")
    return seed, randomize


def reuse_seed_button(prefix: str, used_seed: gr.Number, seed: gr.Number, randomize: gr.Checkbox) -> gr.Button:
    """"Reuse this seed": the seed the last run used goes into the Seed input, with 'random seed' unticked."""
    button = gr.Button("♻ Reuse this seed", size="sm", elem_id=f"{prefix}-reuse-seed")

    def reuse(used):
        if used is None:
            raise gr.Error("run once first: there is no seed to reuse yet")
        return int(used), False

    button.click(reuse, [used_seed], [seed, randomize], api_visibility="private", queue=False)
    return button


def pick_seed(seed: float | None, randomize: bool) -> int:
    if randomize:
        return secrets.randbelow(MAX_RANDOM_SEED + 1)
    if seed is None:
        raise ValueError("please enter a seed (a whole number), or tick 'random seed'")
    return check_int("seed", seed, 0, MAX_SEED)


def sampling_params(cls: type[SamplingParams], prompt, negative_prompt, seed, randomize, steps, guidance, scheduler,
                    fast_decode=False, **extra) -> SamplingParams:
    """The sampling widgets' values -> a task's parameters (diffusers' names). No prompt is the empty prompt."""
    return cls(prompt="" if prompt is None else prompt, negative_prompt=negative_prompt or "",
               seed=pick_seed(seed, randomize), num_inference_steps=steps, guidance_scale=guidance,
               scheduler=scheduler, fast_decode=bool(fast_decode), **extra)


def sampling_inputs(models: Models, settings: Settings, prefix: str, min_default_steps: int = 1
                    ) -> tuple[gr.Slider, gr.Slider, gr.Dropdown]:
    """min_default_steps: img2img needs a few steps for strength x steps to reach a whole step (1-step models)."""
    default_steps = min(max(models.default_steps, min_default_steps), settings.max_steps)
    steps = gr.Slider(1, settings.max_steps, value=default_steps, step=1,
                      label="Denoising steps", elem_id=f"{prefix}-steps")
    guidance = gr.Slider(0, MAX_GUIDANCE, value=models.default_guidance, step=0.5,
                         label="Guidance scale (≤ 1: no classifier-free guidance, one UNet call per step)",
                         elem_id=f"{prefix}-guidance")
    scheduler = gr.Dropdown(SCHEDULER_NAMES, value=MODEL_DEFAULT, label="Scheduler", elem_id=f"{prefix}-scheduler")
    return steps, guidance, scheduler


def size_inputs(models: Models, settings: Settings, prefix: str) -> tuple[gr.Slider, gr.Slider]:
    step = models.vae_scale_factor
    low = math.ceil(settings.min_image_side / step) * step
    high = settings.max_image_side // step * step
    default = default_side(step, settings.min_image_side, settings.max_image_side)  # what --compile compiles for
    with gr.Row():
        width = gr.Slider(low, high, value=default, step=step, label="Width (px)", elem_id=f"{prefix}-width")
        height = gr.Slider(low, high, value=default, step=step, label="Height (px)", elem_id=f"{prefix}-height")
    return width, height


def run_buttons(prefix: str, label: str) -> tuple[gr.Button, gr.Button]:
    """The tab's main action and its Cancel, side by side (elem_ids `<prefix>-button`, `<prefix>-cancel`)."""
    with gr.Row():
        start = gr.Button(label, variant="primary", elem_id=f"{prefix}-button")
        cancel = gr.Button("Cancel", elem_id=f"{prefix}-cancel")
    return start, cancel


def fast_decode_input(models: Models) -> gr.Checkbox:
    return gr.Checkbox(label="Fast decode (TAESD-size decoder instead of the full VAE)", value=False,
                       visible=models.fast_decoder is not None)


def result_notes(result: TaskResult) -> str:
    """What the visitor should know about a result: a truncated prompt, a hidden image."""
    notes = ""
    prompt = result.prompt
    if prompt.truncated:
        notes += (f"\n\n⚠️ The prompt has {prompt.token_count} tokens; CLIP reads only {prompt.token_limit}, so "
                  f"this was dropped: “{prompt.dropped_text}”")
    if prompt.unconditional:
        notes += ("\n\nThe prompt was empty: this is **unconditional generation**, what the model draws with no text "
                  "at all (the UNet is conditioned on CLIP's embedding of an empty string).")
    if result.flagged:
        notes += "\n\n⚠️ The safety checker flagged this image, so it is shown black. Try another prompt or seed."
    return notes


def fingerprint_note(result: TaskResult) -> str:
    """Short fingerprints of a result's final latents and pixels: the same seed and settings give the same ones."""
    return (f"\n\nFingerprint: latents `{fingerprint(result.latents)}` · pixels `{fingerprint(result.image)}` "
            f"(the same seed and settings give the same fingerprints on this machine).")


def guidance_notes(result: TaskResult, view: str, drawn_in: str = "the trajectory draws them") -> str:
    """With the guidance view: what guidance did at each step, or why there is nothing to decompose."""
    if view != "guidance":
        return ""
    if not result.timesteps:
        return "\n\nNo denoising step ran (strength 0): there are no predictions to decompose."
    if not result.guidance:
        return ("\n\nGuidance is off (scale ≤ 1): the UNet made **one prediction** per step, so there is nothing to "
                "decompose. Raise the guidance scale above 1 to see its two predictions.")
    norms = zip(result.timesteps, (step.norms() for step in result.guidance), strict=True)
    rows = "\n".join(f"| {i + 1} | {t} | {uncond:.3f} | {cond:.3f} | {direction:.3f} |"
                     for i, (t, (uncond, cond, direction)) in enumerate(norms))
    hidden = (" (not drawn with the safety checker on)" if result.trajectory_previews else
              f"; {drawn_in}: ε̂ without the prompt | ε̂ with it | s·(difference)")
    return (f"\n\n**Guidance, decomposed**{hidden}. Each step the UNet ran twice (batch 2); the scheduler got "
            f"ε̂_uncond + s·(ε̂_cond − ε̂_uncond) with s = {result.guidance[0].scale:g}. Root mean square per value:"
            f"\n\n| step | t | ε̂_uncond | ε̂_cond | s·(ε̂_cond − ε̂_uncond) |\n|---|---|---|---|---|\n{rows}")


def generation_settings(models: Models, params: SamplingParams, image: Image.Image, strength: float | None = None
                        ) -> GenerationSettings:
    """What a result's PNG (Generate, img2img, Inpainting) and latents file carry; `params.seed` is the seed used."""
    return GenerationSettings(prompt=params.prompt, negative_prompt=params.negative_prompt,
                              steps=params.num_inference_steps,
                              scheduler=display_name(models.scheduler_config, params.scheduler),
                              guidance=params.guidance_scale, seed=params.seed, width=image.width,
                              height=image.height, model=models.source, strength=strength)


def settings_metadata(models: Models, params: SamplingParams, image: Image.Image, strength: float | None = None
                      ) -> dict[str, str]:
    """A latents file's metadata: the result's settings as the PNG's exact JSON carries them."""
    settings = generation_settings(models, params, image, strength)
    return {"settings": json.dumps(settings.__dict__, ensure_ascii=False)}


def view_input(prefix: str) -> gr.Radio:
    """What the live preview (and the trajectory) shows of each step: x_t, x̂₀, or both."""
    return gr.Radio(VIEWS, value=DEFAULT_VIEW, label="Show each step as",
                    info="x_t: the noisy latents the scheduler holds · x̂₀: the clean image the UNet predicts · "
                         "guidance: the two predictions it mixes, once the run is over",
                    elem_id=f"{prefix}-view")
