"""Tab 3, img2img: encode the image, noise its latents partway, denoise from there."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from latent_demo.params import Img2ImgParams
from latent_demo.tasks import img2img, planned_steps
from latent_demo.ui import controls
from latent_demo.ui.common import (
    TabContext,
    format_timings,
    gpu,
    image_upload,
    load_upload,
    preview_image,
    user_errors,
)
from latent_demo.ui.examples import asset

INTRO = """**img2img edits latents, not pixels.** The image is encoded, its latents get noise for timestep
*strength × steps* down the schedule, and the loop runs only the remaining steps. Strength 0 keeps the image;
strength 1 starts from pure noise, like Generate."""
FROM_UPLOAD, FROM_ENCODE = "the uploaded image", "the latents from the Encode tab"


@dataclass
class Img2ImgTab:
    source: gr.Radio  # set by "Use these latents in img2img" on the Encode tab


def build(ctx: TabContext) -> Img2ImgTab:
    models, settings = ctx.models, ctx.settings

    @gpu
    @user_errors
    def run(source, image, prompt, negative_prompt, seed, randomize, steps, guidance, strength, scheduler,
            fast_decode, encoded, progress=gr.Progress()):
        params = Img2ImgParams(prompt=prompt, negative_prompt=negative_prompt or "",
                               seed=controls.pick_seed(seed, randomize), num_inference_steps=steps,
                               guidance_scale=guidance, strength=strength, scheduler=scheduler,
                               fast_decode=bool(fast_decode))
        if source == FROM_ENCODE:
            if not encoded:
                raise ValueError("no latents yet: encode an image in the Encode tab first, or use an upload")
            inputs = {"latents": encoded["latents"]}
        else:
            inputs = {"image": load_upload(image, settings)}
        total = planned_steps(models, params, settings)
        for kind, value in ctx.stream(lambda callback: img2img(models, params, settings, callback=callback,
                                                               **inputs)):
            if kind == "step":
                i, t, latents = value
                progress((i + 1, total), desc=f"UNet step {i + 1} of {total} (t={t})")
                yield (params.seed, gr.skip(), gr.skip(), ctx.live_preview(latents), gr.skip(),
                       f"step {i + 1} of {total}, t = {t}")
                continue
            result = value
            size = result.image.size
            encoded_view = preview_image(models, result.image_latents, size)
            noised_view = preview_image(models, result.start_latents, size)
            summary = (f"Started at step **{result.start_step} of {params.num_inference_steps}** "
                       f"(strength {params.strength:g} → {len(result.timesteps)} steps run"
                       f"{', first t = ' + str(result.timesteps[0]) if result.timesteps else ''}). "
                       f"Seed **{result.seed}** · {format_timings(result.timings)}"
                       f"{controls.result_notes(result)}")
            yield result.seed, encoded_view, noised_view, result.image, result.image, summary

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([FROM_UPLOAD, FROM_ENCODE], value=FROM_UPLOAD, label="Start from",
                              elem_id="img2img-source")
            image = image_upload(settings, label="Image", elem_id="img2img-input")
            prompt = gr.Textbox(label="Prompt", lines=2, elem_id="img2img-prompt")
            negative = gr.Textbox(label="Negative prompt", elem_id="img2img-negative")
            strength = gr.Slider(0, 1, value=0.6, step=0.05, label="Strength (how far down the schedule to start)",
                                 elem_id="img2img-strength")
            seed, randomize = controls.seed_inputs("img2img")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "img2img", min_default_steps=4)
            fast = controls.fast_decode_input(models)
            with gr.Row():
                start = gr.Button("Run img2img", variant="primary", elem_id="img2img-button")
                cancel = gr.Button("Cancel", elem_id="img2img-cancel")
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="img2img-status")
            with gr.Row():
                encoded_view = gr.Image(label="Encoded latents (linear preview)", format="png",
                                        elem_id="img2img-encoded")
                noised_view = gr.Image(label="Noised starting latents", format="png", elem_id="img2img-noised")
            live = gr.Image(label="Latents, live → result", format="png", elem_id="img2img-live")
    final = gr.Image(label="Result", format="png", elem_id="img2img-result")
    inputs = [source, image, prompt, negative, seed, randomize, steps, guidance, strength, scheduler, fast,
              ctx.encoded]
    outputs = [seed, encoded_view, noised_view, live, final, status]
    event = start.click(run, inputs, outputs, **ctx.model_job(api_name="img2img"))
    rows = [[FROM_UPLOAD, asset("chelsea.png"), "a tiger, photograph", 0.6],
            [FROM_UPLOAD, asset("coffee.png"), "a cup of green tea", 0.5]]
    example_run = ctx.examples(rows, [source, image, prompt, strength], run, inputs, outputs,
                               "Examples (click one to run it)")
    cancel.click(None, cancels=[event, example_run])
    return Img2ImgTab(source=source)
