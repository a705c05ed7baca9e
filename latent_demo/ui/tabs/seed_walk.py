"""Tab 6, Seed walk: slerp between two seeds' initial noise and generate from every point on the way."""

from __future__ import annotations

import dataclasses

import gradio as gr

from latent_demo.config import Settings
from latent_demo.explore import seed_walk
from latent_demo.gpu_budget import generation_seconds
from latent_demo.models import Models
from latent_demo.params import GenerateParams, check_int
from latent_demo.serving.files import to_gif
from latent_demo.tasks import TaskResult, planned_steps
from latent_demo.ui import controls
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import PROMPTS

INTRO = """**Nearby noise, nearby pictures.** Two seeds give two noise latents; spherical interpolation (slerp)
walks between them keeping the noise's norm (a straight line would fade the noise mid-way and blur the result).
Each frame is generated with the same prompt and settings from one point on that walk."""


GIF_SECONDS_PER_FRAME = 0.3  # a walk's frames are whole images: a little slower than a trajectory's steps


Outputs = named_outputs("Outputs", "gallery gif status")


def walk_job(models: Models, settings: Settings, params: GenerateParams, seed_b: int, count: int,
             updates) -> int:
    """Runs where the GPU is. Each finished frame is handed out at once (updates.frame); returns the frame count."""
    def send(index: int, result: TaskResult) -> None:  # the frame's picture is all the tab shows
        updates.frame(index, dataclasses.replace(result, trajectory=[]))

    return len(seed_walk(models, params, settings, seed_b, count, callback=updates, on_frame=send))


def walk_seconds(models: Models, settings: Settings, params: GenerateParams, seed_b: int, count: int) -> int:
    return generation_seconds(params.num_inference_steps, params.guidance_scale, params.width, params.height,
                              frames=count)


JOBS = {"seed_walk": (walk_job, walk_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


@user_errors
def walk(ctx: TabContext, prompt, seed_a, seed_b, frames, steps, guidance, scheduler, width, height,
         progress=gr.Progress()):
    params = controls.sampling_params(GenerateParams, prompt, "", seed_a, False, steps, guidance, scheduler,
                                      width=width, height=height)
    seed_b = controls.pick_seed(seed_b, False)
    count = check_int("frames", frames, 2, ctx.settings.max_seed_walk_frames)
    planned_steps(ctx.models, params, ctx.settings)  # every value checked before any GPU time is asked for
    images = []
    for kind, value in ctx.runner.stream("seed_walk", params, seed_b, count):
        if kind == "frame":  # a frame is shown as soon as it is decoded
            index, result = value
            images.append((result.image, f"frame {index + 1}"))
            progress((len(images), count), desc=f"frame {len(images)} of {count}")
            yield Outputs(gallery=list(images), status=f"{len(images)} of {count} frames")
        elif kind == "done":
            yield Outputs(gallery=list(images), gif=to_gif([image for image, _ in images], GIF_SECONDS_PER_FRAME),
                          status=f"{len(images)} frames")


def build(ctx: TabContext) -> None:
    models, settings = ctx.models, ctx.settings

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="Prompt", value=PROMPTS[1], lines=2, elem_id="walk-prompt")
            with gr.Row():
                seed_a = gr.Number(label="Seed A", value=1, precision=0, minimum=0, elem_id="walk-seed-a")
                seed_b = gr.Number(label="Seed B", value=2, precision=0, minimum=0, elem_id="walk-seed-b")
            frames = gr.Slider(2, settings.max_seed_walk_frames, value=min(5, settings.max_seed_walk_frames), step=1,
                               label="Frames", elem_id="walk-frames")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "walk")
            width, height = controls.size_inputs(models, settings, "walk")
            start, cancel = controls.run_buttons("walk", "Walk")
        with gr.Column():
            status = gr.Markdown(elem_id="walk-status")
            gallery = gr.Gallery(label="Frames", columns=4, height="auto", format="png", elem_id="walk-gallery")
            gif = gr.File(label="The walk as an animated GIF", elem_id="walk-gif")
    inputs = [prompt, seed_a, seed_b, frames, steps, guidance, scheduler, width, height]
    outputs = list(Outputs(gallery=gallery, gif=gif, status=status))
    handler = bound(walk, ctx)
    event = start.click(handler, inputs, outputs, **ctx.page_event("seed_walk"))
    example_run = ctx.examples([[PROMPTS[1], 1, 2], [PROMPTS[2], 7, 8]], [prompt, seed_a, seed_b], handler, inputs,
                               outputs, "Examples (click one to walk)")
    cancel.click(None, cancels=[event, example_run])
