"""Tab 3, img2img: encode the image, noise its latents partway, denoise from there."""

from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass

import gradio as gr
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.gpu_budget import fitted_size, generation_seconds
from latent_demo.models import Models
from latent_demo.params import Img2ImgParams
from latent_demo.png_parameters import with_settings
from latent_demo.serving.previews import linear_picture
from latent_demo.serving.runner import Step
from latent_demo.tasks import TaskResult, img2img, planned_steps
from latent_demo.ui import controls
from latent_demo.ui.common import (
    TabContext,
    bound,
    format_timings,
    image_upload,
    load_upload,
    named_outputs,
    sampling_updates,
    step_status,
    used_seed_output,
    user_errors,
)
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import DEFAULT_VIEW, GUIDANCE, check_view, guidance_sheet, live_picture
from latent_demo.ui.state import EncodedImage, LastRun

INTRO = """**img2img edits latents, not pixels.** The image is encoded, its latents get noise for timestep
*strength × steps* down the schedule, and the loop runs only the remaining steps. Strength 0 keeps the image;
strength 1 starts from pure noise, like Generate."""
FROM_UPLOAD, FROM_ENCODE = "the uploaded image", "the latents from the Encode tab"  # the API's values
# what the page says for FROM_ENCODE: Encode's and Generate's send buttons both hand their latents over
HANDED_OVER = "the latents handed over (Encode or Generate): no re-encode"
SHEET_NOTE = "the live view ends on them, a row per step (step 1 at the top)"  # img2img has no trajectory gallery


# `run`'s parameters by name (the public API's names), in their order
Inputs = namedtuple("Inputs", "source image prompt negative_prompt seed randomize steps guidance strength scheduler "
                               "fast_decode view encoded")


Outputs = named_outputs("Outputs", "used_seed encoded_view noised_view live final status last_run")


def img2img_job(models: Models, settings: Settings, params: Img2ImgParams, image: Image.Image | None,
                latents: torch.Tensor | None, updates) -> TaskResult:
    """Runs where the GPU is."""
    return img2img(models, params, settings, image=image, latents=latents, callback=updates)


def img2img_seconds(models: Models, settings: Settings, params: Img2ImgParams, image: Image.Image | None,
                    latents: torch.Tensor | None) -> int:
    if latents is not None:
        factor = models.vae_scale_factor
        width, height, passes = latents.shape[3] * factor, latents.shape[2] * factor, 1  # decode only
    else:
        width, height = fitted_size(*image.size, settings.max_image_side)
        passes = 2  # encode and decode
    steps = math.ceil(params.num_inference_steps * params.strength)
    return generation_seconds(steps, params.guidance_scale, width, height, vae_passes=passes)


JOBS = {"img2img": (img2img_job, img2img_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


def starting_point(source: str, image, encoded: EncodedImage | None, settings: Settings
                   ) -> tuple[Image.Image | None, torch.Tensor | None]:
    """The job's (image, latents): the upload, or the latents handed over (no re-encode)."""
    if source != FROM_ENCODE:
        return load_upload(image, settings), None
    if encoded is None:
        raise ValueError("no latents yet: encode an image first (the Encode tab, or /encode in this session), or "
                         "use an upload")
    return None, encoded.latents


@user_errors
def run(ctx: TabContext, source, image, prompt, negative_prompt, seed, randomize, steps, guidance, strength,
        scheduler, fast_decode, view=DEFAULT_VIEW, encoded: EncodedImage | None = None, progress=gr.Progress()):
    models, settings = ctx.models, ctx.settings
    view = check_view(view)
    params = controls.sampling_params(Img2ImgParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, strength=strength)
    start = starting_point(source, image, encoded, settings)
    total = planned_steps(models, params, settings)
    for update in sampling_updates(ctx.runner, "img2img", (params, *start), total, progress):
        if isinstance(update, Step):
            yield Outputs(used_seed=params.seed, live=live_picture(ctx.runner, update, view),
                          status=step_status(update, total))
            continue
        result = update
        with_settings(result.image, controls.generation_settings(models, params, result.image, params.strength))
        origin = f"From the latents of {encoded.source} (no re-encode). " if source == FROM_ENCODE else ""
        summary = (f"{origin}Started at step **{result.start_step} of {params.num_inference_steps}** "
                   f"(strength {params.strength:g} → {len(result.timesteps)} steps run"
                   f"{', first t = ' + str(result.timesteps[0]) if result.timesteps else ''}). "
                   f"Seed **{result.seed}** · {format_timings(result.timings)}{controls.result_notes(result)}"
                   f"{controls.fingerprint_note(result)}{controls.guidance_notes(result, view, SHEET_NOTE)}")
        drawn = view == GUIDANCE and result.guidance and not result.trajectory_previews  # not with the safety checker
        yield Outputs(used_seed=result.seed, encoded_view=linear_picture(result.image_latents, result.image.size),
                      noised_view=linear_picture(result.start_latents, result.image.size),
                      live=guidance_sheet(result) if drawn else result.image,
                      final=result.image, status=summary, last_run=LastRun(params, result.latents, result.image))


@dataclass(frozen=True)
class Img2ImgTab:
    """What ui/app.py wires to other tabs."""

    source: gr.Radio  # set by the Encode and Generate tabs' "Use ... in img2img"
    send_to_inpaint: gr.Button
    last_run: gr.State  # the result that button sends


def build(ctx: TabContext) -> Img2ImgTab:
    models, settings = ctx.models, ctx.settings

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([FROM_UPLOAD, (HANDED_OVER, FROM_ENCODE)], value=FROM_UPLOAD, label="Start from",
                              elem_id="img2img-source")
            image = image_upload(settings, label="Image", elem_id="img2img-input")
            prompt = gr.Textbox(label="Prompt (empty: no text condition)", value="", lines=2,
                                elem_id="img2img-prompt")
            negative = gr.Textbox(label="Negative prompt", value="", elem_id="img2img-negative")
            strength = gr.Slider(0, 1, value=0.6, step=0.05, label="Strength (how far down the schedule to start)",
                                 elem_id="img2img-strength")
            seed, randomize = controls.seed_inputs("img2img")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "img2img", min_default_steps=4)
            fast = controls.fast_decode_input(models)
            view = controls.view_input("img2img")
            start, cancel = controls.run_buttons("img2img", "Run img2img")
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="img2img-status")
            used_seed = used_seed_output("img2img")
            with gr.Row():
                controls.reuse_seed_button("img2img", used_seed, seed, randomize)
                send_inpaint = gr.Button("Use for inpainting →", size="sm", elem_id="img2img-send-inpaint")
            with gr.Row():
                encoded_view = gr.Image(label="Encoded latents (linear preview)", format="png",
                                        elem_id="img2img-encoded")
                noised_view = gr.Image(label="Noised starting latents", format="png", elem_id="img2img-noised")
            live = gr.Image(label="Live: x_t | x̂₀ after each step → result", format="png", elem_id="img2img-live",
                            elem_classes="latent-steps", height=controls.LIVE_HEIGHT)
    final = gr.Image(label="Result", format="png", elem_id="img2img-result")
    inputs = list(Inputs(source=source, image=image, prompt=prompt, negative_prompt=negative, seed=seed,
                         randomize=randomize, steps=steps, guidance=guidance, strength=strength, scheduler=scheduler,
                         fast_decode=fast, view=view, encoded=ctx.encoded))
    last_run = gr.State(None, time_to_live=ctx.settings.state_ttl_s)
    outputs = list(Outputs(used_seed=used_seed, encoded_view=encoded_view, noised_view=noised_view, live=live,
                           final=final, status=status, last_run=last_run))
    handler = bound(run, ctx)
    event = start.click(handler, inputs, outputs, **ctx.page_event("img2img"))
    rows = [[FROM_UPLOAD, asset("chelsea.png"), "a tiger, photograph", 0.6],
            [FROM_UPLOAD, asset("coffee.png"), "a cup of green tea", 0.5]]
    example_run = ctx.examples(rows, [source, image, prompt, strength], handler, inputs, outputs,
                               "Examples (click one to run it)")
    cancel.click(None, cancels=[event, example_run])
    return Img2ImgTab(source, send_inpaint, last_run)
