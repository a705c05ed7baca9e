"""Tab 4, Inpainting: a mask drawn on pixels, snapped to the latent grid, repainted in latent space."""

from __future__ import annotations

import math
from collections import namedtuple

import gradio as gr
import numpy as np
from PIL import Image

from latent_demo.config import Settings
from latent_demo.gpu_budget import fitted_size, generation_seconds
from latent_demo.images import image_and_painted_mask
from latent_demo.models import Models
from latent_demo.params import MAX_FEATHER, InpaintParams
from latent_demo.png_parameters import with_settings
from latent_demo.serving.runner import Step
from latent_demo.tasks import TaskResult, inpaint, planned_steps
from latent_demo.ui import common, controls
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import inpaint_examples
from latent_demo.ui.pictures import DEFAULT_VIEW, check_view, live_picture, upscale

INTRO = """**Inpainting repaints latents under a mask.** Paint over what should change. The mask is snapped to the
latent grid (one cell = 8×8 pixels), since that is all the UNet sees. With an ordinary UNet, after every step the
latents outside the mask are replaced by the original's, noised to the same timestep (latent blending); an
inpainting UNet instead reads the mask and the masked image as extra input channels. Pixels outside the mask are
pasted back exactly."""


# `run`'s parameters by name (the public API's names), in their order
Inputs = namedtuple("Inputs", "editor prompt negative_prompt seed randomize steps guidance strength feather_radius "
                               "scheduler fast_decode view")


Outputs = named_outputs("Outputs", "used_seed grid live final status")


def inpaint_job(models: Models, settings: Settings, params: InpaintParams, image: Image.Image, mask: Image.Image,
                updates) -> TaskResult:
    """Runs where the GPU is."""
    return inpaint(models, params, settings, image, mask, updates)


def inpaint_seconds(models: Models, settings: Settings, params: InpaintParams, image: Image.Image,
                    mask: Image.Image) -> int:
    width, height = fitted_size(*image.size, settings.max_image_side)
    steps = math.ceil(params.num_inference_steps * params.strength)
    # an upper bound: the image's encode, the masked image's (9-channel UNets only) and the decode
    return generation_seconds(steps, params.guidance_scale, width, height, vae_passes=3)


def mask_on_latent_grid(result: TaskResult, factor: int) -> tuple[Image.Image, int, int]:
    """(the latent mask as a black/white picture at image size, cells to repaint, all cells)."""
    grid = result.latent_mask[0, 0].numpy()
    picture = upscale(Image.fromarray((grid * 255).astype(np.uint8), mode="L").convert("RGB"), factor)
    return picture, int(grid.sum()), grid.size


JOBS = {"inpaint": (inpaint_job, inpaint_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


@user_errors
def run(ctx: TabContext, editor, prompt, negative_prompt, seed, randomize, steps, guidance, strength,
        feather_radius, scheduler, fast_decode, view=DEFAULT_VIEW, progress=gr.Progress()):
    models, settings = ctx.models, ctx.settings
    view = check_view(view)
    editor = editor or {}
    image, mask = image_and_painted_mask(editor.get("background"), editor.get("layers"), settings.max_image_pixels)
    params = controls.sampling_params(InpaintParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, strength=strength, feather_radius=feather_radius)
    total = planned_steps(models, params, settings)
    for update in common.sampling_updates(ctx.runner, "inpaint", (params, image, mask), total, progress):
        if isinstance(update, Step):
            yield Outputs(used_seed=params.seed, live=live_picture(ctx.runner, update, view),
                          status=common.step_status(update, total))
            continue
        result = update
        with_settings(result.image, controls.generation_settings(models, params, result.image, params.strength))
        grid, covered, cells = mask_on_latent_grid(result, models.vae_scale_factor)
        summary = (f"Method: **{result.method}**. The mask covers {covered} of {cells} latent cells. "
                   f"Seed **{result.seed}** · {common.format_timings(result.timings)}{controls.result_notes(result)}"
                   f"{controls.fingerprint_note(result)}")
        yield Outputs(used_seed=result.seed, grid=grid, live=result.image, final=result.image, status=summary)


def build(ctx: TabContext) -> gr.ImageEditor:
    """Returns the editor, which the Encode tab's "Use this image for inpainting" fills."""
    models, settings = ctx.models, ctx.settings

    gr.Markdown(INTRO)
    gr.Markdown(f"This model inpaints by **{models.inpaint_method}**.", elem_id="inpaint-method")
    with gr.Row():
        with gr.Column(scale=3):
            editor = gr.ImageEditor(
                label="Image: paint the area to repaint", type="pil", format="png", sources=["upload", "clipboard"],
                layers=False, transforms=(), brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=40),
                elem_id="inpaint-editor")
            prompt = gr.Textbox(label="Prompt (what goes in the masked area; empty: no text condition)", value="",
                                lines=2, elem_id="inpaint-prompt")
            negative = gr.Textbox(label="Negative prompt", value="", elem_id="inpaint-negative")
        with gr.Column(scale=2):
            seed, randomize = controls.seed_inputs("inpaint")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "inpaint", min_default_steps=2)
            strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength (1 = repaint from pure noise)",
                                 elem_id="inpaint-strength")
            feather = gr.Slider(0, MAX_FEATHER, value=4, step=1, label="Soft edge when pasting back (px)",
                                elem_id="inpaint-feather")
            fast = controls.fast_decode_input(models)
            view = controls.view_input("inpaint")
            start, cancel = controls.run_buttons("inpaint", "Inpaint")
    status = gr.Markdown(elem_id="inpaint-status")
    used_seed = common.used_seed_output("inpaint")
    controls.reuse_seed_button("inpaint", used_seed, seed, randomize)
    with gr.Row():
        grid = gr.Image(label="Mask on the latent grid (white = repaint)", format="png", elem_id="inpaint-grid")
        live = gr.Image(label="Live: x_t | x̂₀ after each step → result", format="png", elem_id="inpaint-live",
                        elem_classes="latent-steps", height=controls.LIVE_HEIGHT)
        final = gr.Image(label="Result", format="png", elem_id="inpaint-result")
    inputs = list(Inputs(editor=editor, prompt=prompt, negative_prompt=negative, seed=seed, randomize=randomize,
                         steps=steps, guidance=guidance, strength=strength, feather_radius=feather,
                         scheduler=scheduler, fast_decode=fast, view=view))
    outputs = list(Outputs(used_seed=used_seed, grid=grid, live=live, final=final, status=status))
    handler = bound(run, ctx)
    event = start.click(handler, inputs, outputs, **ctx.page_event("inpaint"))
    examples = [[{"background": image, "layers": [mask], "composite": None}, prompt]
                for image, mask, prompt in inpaint_examples()]
    example_run = ctx.examples(examples, [editor, prompt], handler, inputs, outputs,
                               "Examples with a mask (click one to run it)")
    cancel.click(None, cancels=[event, example_run])
    return editor
