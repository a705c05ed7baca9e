"""Tab 4, Inpainting: a mask drawn on pixels, snapped to the latent grid, repainted in latent space."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
from PIL import Image

from latent_demo.images import check_pixel_count, to_rgb
from latent_demo.params import InpaintParams
from latent_demo.tasks import inpaint, planned_steps
from latent_demo.ui import controls
from latent_demo.ui.common import (
    TabContext,
    format_timings,
    gpu,
    readable_upload_errors,
    upscale,
    user_errors,
)
from latent_demo.ui.examples import inpaint_examples

INTRO = """**Inpainting repaints latents under a mask.** Paint over what should change. The mask is snapped to the
latent grid (one cell = 8×8 pixels), since that is all the UNet sees. With an ordinary UNet, after every step the
latents outside the mask are replaced by the original's, noised to the same timestep (latent blending); an
inpainting UNet instead reads the mask and the masked image as extra input channels. Pixels outside the mask are
pasted back exactly."""


@dataclass
class InpaintTab:
    editor: gr.ImageEditor  # filled by "Use this image for inpainting" on the Encode tab


def editor_to_image_and_mask(value: dict | None, max_pixels: int) -> tuple[Image.Image, Image.Image]:
    """ImageEditor value -> (RGB image, L mask: 255 where any layer was painted)."""
    background = (value or {}).get("background")
    if background is None:
        raise ValueError("please upload an image (or click an example) and paint the area to repaint")
    check_pixel_count(background.size, max_pixels)
    painted = np.zeros((background.height, background.width), dtype=bool)
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        if layer.size != background.size:
            raise ValueError(f"mask layer is {layer.width}x{layer.height} px but the image is "
                             f"{background.width}x{background.height} px")
        painted |= np.asarray(layer.convert("RGBA").getchannel("A")) > 0
    if not painted.any():
        raise ValueError("the mask is empty: paint over the part of the image to repaint")
    return to_rgb(background), Image.fromarray(painted.astype(np.uint8) * 255, mode="L")


def build(ctx: TabContext) -> InpaintTab:
    models, settings = ctx.models, ctx.settings

    @gpu
    @user_errors
    def run(editor, prompt, negative_prompt, seed, randomize, steps, guidance, strength, feather_radius, scheduler,
            fast_decode, progress=gr.Progress()):
        image, mask = editor_to_image_and_mask(editor, settings.max_image_pixels)
        params = InpaintParams(prompt=prompt, negative_prompt=negative_prompt or "",
                               seed=controls.pick_seed(seed, randomize), num_inference_steps=steps,
                               guidance_scale=guidance, strength=strength, feather_radius=feather_radius,
                               scheduler=scheduler, fast_decode=bool(fast_decode))
        total = planned_steps(models, params, settings)
        for kind, value in ctx.stream(lambda callback: inpaint(models, params, settings, image, mask, callback)):
            if kind == "step":
                i, t, latents = value
                progress((i + 1, total), desc=f"UNet step {i + 1} of {total} (t={t})")
                yield params.seed, gr.skip(), ctx.live_preview(latents), gr.skip(), \
                    f"step {i + 1} of {total}, t = {t}"
                continue
            result = value
            grid = result.latent_mask[0, 0].numpy()
            grid_image = upscale(Image.fromarray((grid * 255).astype(np.uint8), mode="L").convert("RGB"),
                                 models.vae_scale_factor)
            summary = (f"Method: **{result.method}**. The mask covers {int(grid.sum())} of {grid.size} latent cells. "
                       f"Seed **{result.seed}** · {format_timings(result.timings)}"
                       f"{controls.result_notes(result)}")
            yield result.seed, grid_image, result.image, result.image, summary

    gr.Markdown(INTRO)
    gr.Markdown(f"This model inpaints by **{models.inpaint_method}**.", elem_id="inpaint-method")
    with gr.Row():
        with gr.Column(scale=3):
            editor = readable_upload_errors(gr.ImageEditor(
                label="Image: paint the area to repaint", type="pil", format="png", sources=["upload", "clipboard"],
                layers=False, transforms=(), brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=40),
                elem_id="inpaint-editor"), settings.max_image_pixels)
            prompt = gr.Textbox(label="Prompt (what goes in the masked area)", lines=2, elem_id="inpaint-prompt")
            negative = gr.Textbox(label="Negative prompt", elem_id="inpaint-negative")
        with gr.Column(scale=2):
            seed, randomize = controls.seed_inputs("inpaint")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "inpaint", min_default_steps=2)
            strength = gr.Slider(0, 1, value=1.0, step=0.05, label="Strength (1 = repaint from pure noise)",
                                 elem_id="inpaint-strength")
            feather = gr.Slider(0, 32, value=4, step=1, label="Soft edge when pasting back (px)",
                                elem_id="inpaint-feather")
            fast = controls.fast_decode_input(models)
            with gr.Row():
                start = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
                cancel = gr.Button("Cancel", elem_id="inpaint-cancel")
    status = gr.Markdown(elem_id="inpaint-status")
    with gr.Row():
        grid = gr.Image(label="Mask on the latent grid (white = repaint)", format="png", elem_id="inpaint-grid")
        live = gr.Image(label="Latents, live → result", format="png", elem_id="inpaint-live")
        final = gr.Image(label="Result", format="png", elem_id="inpaint-result")
    inputs = [editor, prompt, negative, seed, randomize, steps, guidance, strength, feather, scheduler, fast]
    outputs = [seed, grid, live, final, status]
    event = start.click(run, inputs, outputs, **ctx.model_job(api_name="inpaint"))
    examples = [[{"background": image, "layers": [mask], "composite": None}, prompt]
                for image, mask, prompt in inpaint_examples()]
    example_run = ctx.examples(examples, [editor, prompt], run, inputs, outputs,
                               "Examples with a mask (click one to run it)")
    cancel.click(None, cancels=[event, example_run])
    return InpaintTab(editor=editor)
