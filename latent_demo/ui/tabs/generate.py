"""Tab 2, Generate: the seed's noise latents, denoised step by step by the UNet, then decoded."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import gradio as gr
from PIL import Image

from latent_demo.config import Settings
from latent_demo.gpu_budget import generation_seconds
from latent_demo.latents import latents_to_channel_images
from latent_demo.models import Models
from latent_demo.params import MAX_GUIDANCE, MAX_SEED, GenerateParams
from latent_demo.png_parameters import read_settings_from_file, scheduler_or_default, with_settings
from latent_demo.reproducibility import RunComparison, compare_runs
from latent_demo.serving import meanwhile
from latent_demo.serving.files import latents_file, to_gif
from latent_demo.serving.runner import Step
from latent_demo.tasks import TaskResult, generate, planned_steps
from latent_demo.ui import common, controls
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import PROMPTS
from latent_demo.ui.pictures import (
    DEFAULT_VIEW,
    GUIDANCE,
    channel_scale,
    check_view,
    guidance_captions,
    live_picture,
    on_canvas,
    reusable_live_pictures,
    side_by_side,
    trajectory_pictures,
    upscale,
)
from latent_demo.ui.state import LastRun

INTRO = """**Generation starts from pure noise in latent space**, drawn from the seed (so the same seed and settings
give the same image). At every step the UNet predicts the noise in the latents, guided by the prompt, and the
scheduler removes some of it. Only the final latents go through the VAE decoder; the trajectory shows a cheap
linear look at the latents after each step (a 4×3 matrix, not a decode).

Each step shows two things: **x_t**, the noisy latents the scheduler holds, and **x̂₀**, the clean latents the UNet's
prediction implies right now (what the image would be if the noise it sees were all removed at once). Watch x̂₀:
the composition settles in the first steps, the details arrive in the last ones."""


# `run`'s parameters by name (the public API's names), in their order
Inputs = namedtuple("Inputs", "prompt negative_prompt seed randomize steps guidance scheduler width height "
                               "fast_decode view")


Outputs = named_outputs("Outputs", "used_seed noise live final trajectory gif status last_run")
CompareOutputs = named_outputs("CompareOutputs", "heatmap report last_run")


def generate_job(models: Models, settings: Settings, params: GenerateParams, updates) -> TaskResult:
    """Runs where the GPU is."""
    return generate(models, params, settings, updates)


def generate_seconds(models: Models, settings: Settings, params: GenerateParams) -> int:
    return generation_seconds(params.num_inference_steps, params.guidance_scale, params.width, params.height)


JOBS = {"generate": (generate_job, generate_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


@user_errors
def run(ctx: TabContext, prompt, negative_prompt, seed, randomize, steps, guidance, scheduler, width, height,
        fast_decode, view=DEFAULT_VIEW, progress=gr.Progress()):
    view = check_view(view)
    params = controls.sampling_params(GenerateParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, width=width, height=height)
    total = planned_steps(ctx.models, params, ctx.settings)
    shown = {}  # step index -> its live picture, shown again in the trajectory (Gradio then reuses its file)
    for update in common.sampling_updates(ctx.runner, "generate", (params,), total, progress):
        if isinstance(update, Step):
            picture = live_picture(ctx.runner, update, view)
            if reusable_live_pictures(ctx.runner) and view != GUIDANCE:
                shown[update.index] = picture
            yield Outputs(used_seed=params.seed, live=picture, status=common.step_status(update, total))
            continue
        result = update  # the pictures are made here, off the GPU's clock; the image is shown first
        with_settings(result.image, controls.generation_settings(ctx.models, params, result.image))
        noise = side_by_side(*noise_pictures(result))  # one file for the page to fetch, not four
        status = (f"Seed **{result.seed}** · {common.format_timings(result.timings)}"
                  f"{controls.result_notes(result)}\n\nx̂₀ per step: {result.denoised_source}."
                  f"{controls.fingerprint_note(result)}{controls.guidance_notes(result, view)}")
        shown_result = Outputs(used_seed=result.seed, noise=noise, live=result.image, final=result.image,
                               status=status, last_run=LastRun(params, result.latents, result.image))
        extras = meanwhile.start(trajectory_and_gif, ctx.models, result, view, shown)  # while the image is sent
        yield shown_result
        trajectory, gif = extras.result()
        # the last update holds every output: an API call's result is the last update alone
        yield shown_result._replace(trajectory=trajectory, gif=gif)


def noise_pictures(result: TaskResult) -> list[Image.Image]:
    """What the run started from (the seed's noise), channel by channel, enlarged so each latent cell shows."""
    scale = channel_scale(result.start_latents)
    return [upscale(image, scale) for image in latents_to_channel_images(result.start_latents)]


def trajectory_and_gif(models: Models, result: TaskResult, view: str, shown: dict) -> tuple[list[tuple], str]:
    """The trajectory gallery (each step's picture and caption, then the decoded image) and its animated GIF."""
    frames = trajectory_pictures(models, result, view, shown) + [result.image]
    drawn = view == GUIDANCE and result.guidance and not result.trajectory_previews
    captions = guidance_captions(result) if drawn else [f"step {i + 1}, t={t}" for i, t in
                                                         enumerate(result.timesteps)]
    captions += ["decoded"]
    gif = to_gif(frames[:-1] + [on_canvas(result.image, frames[0].size)])
    return list(zip(frames, captions, strict=True)), gif


PngInfoOutputs = named_outputs("PngInfoOutputs", "prompt negative_prompt seed randomize steps guidance scheduler "
                                                 "width height note")


@user_errors
def read_png(ctx: TabContext, image) -> PngInfoOutputs:
    """Fill the controls from a PNG's settings (ours, or AUTOMATIC1111's); what can't be used is listed."""
    if not image:
        raise ValueError("please upload a PNG made by this app or AUTOMATIC1111 first")
    read = read_settings_from_file(image, ctx.settings.max_image_pixels)
    fills, skipped = fillable(ctx, read.values)
    skipped |= {key: str(value) for key, value in read.unsupported.items()}
    note = f"Read from the PNG's {read.source} settings: {', '.join(fills) or 'nothing this tab can use'}."
    if skipped:
        note += " Not used here: " + "; ".join(f"{key} = {value}" for key, value in skipped.items()) + "."
    if "seed" in fills:
        fills["randomize"] = False
    return PngInfoOutputs(**fills, note=note)


def fillable(ctx: TabContext, values: dict) -> tuple[dict, dict]:
    """(control -> value for those within this app's limits, setting -> why not for the others)."""
    limits = {"steps": (1, ctx.settings.max_steps), "guidance": (0.0, MAX_GUIDANCE), "seed": (0, MAX_SEED),
              "width": (ctx.settings.min_image_side, ctx.settings.max_image_side),
              "height": (ctx.settings.min_image_side, ctx.settings.max_image_side)}
    fills, skipped = {}, {}
    for name in ("prompt", "negative_prompt", "scheduler", *limits):
        if name not in values:
            continue
        value = values[name]
        low, high = limits.get(name, (None, None))
        if low is not None and not (isinstance(value, int | float) and low <= value <= high):
            skipped[name] = f"{value} (this app takes {low} to {high})"
        elif name in ("width", "height") and value % ctx.models.vae_scale_factor:
            skipped[name] = f"{value} (not a multiple of {ctx.models.vae_scale_factor})"
        else:
            fills[name] = scheduler_or_default(value) if name == "scheduler" else value
    return fills, skipped


@user_errors
def final_latents(ctx: TabContext, last_run: LastRun | None) -> str:
    """The visitor's last result's final latents as a file, its settings (the PNG's JSON) in the metadata."""
    if last_run is None:
        raise ValueError("generate an image first: its final latents are saved from the last run")
    return latents_file(last_run.latents, ctx.models, "generated-latents",
                        **controls.settings_metadata(ctx.models, last_run.params, last_run.image))


SEE_THE_STEPS = 4
ONE_STEP_NOTE = """This model is distilled to make an image in **one step** (sd-turbo: 1 to 4 steps, no guidance), so
its default shows a single step. To watch the noise go away step by step, choose {limit} steps, or click "See the
steps" below."""


def describe_comparison(comparison: RunComparison, repeated: bool) -> str:
    (latents_a, pixels_a), (latents_b, pixels_b) = comparison.fingerprints
    what = "The same request, run twice" if repeated else "Your last run against this one"
    changed = ", ".join(f"{name} {a!r} → {b!r}" for name, (a, b) in comparison.changed.items()) or "none"
    identical = comparison.pixels_max_difference == 0 and comparison.latents_max_difference == 0
    verdict = ("**Identical**: same seed and settings, same latents and pixels." if identical else
               "**Different**" + (": the settings differ, so the image does." if comparison.changed else
                                  ": same settings, yet not the same values (another device or dtype?)."))
    return (f"{what}. Settings changed: {changed}.\n\n| | run 1 | run 2 | max \\|Δ\\| |\n|---|---|---|---|\n"
            f"| latents | `{latents_a}` | `{latents_b}` | {comparison.latents_max_difference:.6g} |\n"
            f"| pixels | `{pixels_a}` | `{pixels_b}` | {comparison.pixels_max_difference} of 255 |\n\n{verdict}")


@user_errors
def compare(ctx: TabContext, prompt, negative_prompt, seed, randomize, steps, guidance, scheduler, width, height,
            fast_decode, last_run: LastRun | None = None, progress=gr.Progress()) -> CompareOutputs:
    """Run the current settings and compare with the visitor's last run (or, with none, run them twice)."""
    params = controls.sampling_params(GenerateParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, width=width, height=height)
    planned_steps(ctx.models, params, ctx.settings)  # every value checked before any GPU time is asked for
    repeated = last_run is None
    if repeated:
        progress(0, desc="run 1 of 2")
        first = ctx.runner.run("generate", params)
        last_run = LastRun(params, first.latents, first.image)
    progress(0.5, desc="run 2 of 2" if repeated else "running again")
    second = ctx.runner.run("generate", params)
    comparison = compare_runs(last_run.params, last_run.latents, last_run.image, params, second.latents,
                              second.image)
    return CompareOutputs(heatmap=comparison.heatmap, report=describe_comparison(comparison, repeated),
                          last_run=LastRun(params, second.latents, second.image))


@dataclass(frozen=True)
class GenerateTab:
    """What ui/app.py wires to other tabs: the send buttons and the last result they send."""

    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button
    last_run: gr.State


def build(ctx: TabContext) -> GenerateTab:
    models, settings = ctx.models, ctx.settings

    gr.Markdown(INTRO)
    if models.default_steps == 1:
        gr.Markdown(ONE_STEP_NOTE.format(limit=min(SEE_THE_STEPS, settings.max_steps)), elem_id="generate-one-step")
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", lines=2, elem_id="generate-prompt", value=PROMPTS[0])
            negative = gr.Textbox(label="Negative prompt (used when guidance > 1)", value="",
                                  elem_id="generate-negative")
            seed, randomize = controls.seed_inputs("generate")
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, "generate")
            width, height = controls.size_inputs(models, settings, "generate")
            fast = controls.fast_decode_input(models)
            view = controls.view_input("generate")
            start, cancel = controls.run_buttons("generate", "Generate")
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="generate-status")
            used_seed = common.used_seed_output("generate")
            with gr.Row():
                controls.reuse_seed_button("generate", used_seed, seed, randomize)
                send_img2img = gr.Button("Use in img2img →", size="sm", elem_id="generate-send-img2img")
                send_inpaint = gr.Button("Use for inpainting →", size="sm", elem_id="generate-send-inpaint")
            live = gr.Image(label="Live: x_t | x̂₀ after each step (linear preview) → final decode", format="png",
                            elem_id="generate-live", elem_classes="latent-steps", height=controls.LIVE_HEIGHT)
            noise = gr.Image(label="The seed's initial noise latents: channels 0 to 3, left to right", format="png",
                             elem_id="generate-noise")
    with gr.Row():
        final = gr.Image(label="Final image", format="png", elem_id="generate-final")
        trajectory = gr.Gallery(label="Trajectory: each step (x_t | x̂₀, as chosen), then the decode", columns=6,
                                height="auto",
                                format="png", elem_id="generate-trajectory", elem_classes="latent-steps")
    gif = gr.File(label="Trajectory as an animated GIF", elem_id="generate-gif")
    last_run = gr.State(None, time_to_live=ctx.settings.state_ttl_s)
    with gr.Row():
        compare_button = gr.Button("Run again and compare (change a setting first to see what it changes)",
                                   elem_id="compare-button")
    with gr.Row():
        heatmap = gr.Image(label="Where the two runs differ (black = identical)", format="png",
                           elem_id="compare-heatmap")
        report = gr.Markdown(elem_id="compare-report")
    inputs = list(Inputs(prompt=prompt, negative_prompt=negative, seed=seed, randomize=randomize, steps=steps,
                         guidance=guidance, scheduler=scheduler, width=width, height=height, fast_decode=fast,
                         view=view))
    outputs = list(Outputs(used_seed=used_seed, noise=noise, live=live, final=final, trajectory=trajectory, gif=gif,
                           status=status, last_run=last_run))
    handler = bound(run, ctx)
    event = start.click(handler, inputs, outputs, **ctx.page_event("generate"))
    remembered = bound(run, ctx.remembering())  # computed once per request for every visitor
    example_run = ctx.examples([[p] for p in PROMPTS], [prompt], remembered, inputs, outputs,
                               "Example prompts (click one to generate)")
    if models.default_steps == 1:
        rows = [[PROMPTS[1], min(SEE_THE_STEPS, settings.max_steps)]]
        steps_run = ctx.examples(rows, [prompt, steps], remembered, inputs, outputs,
                                 f"See the steps: the same model at {rows[0][1]} steps (click to generate)")
    else:
        steps_run = None
    with gr.Row():
        latents_button = gr.Button("Final latents as .safetensors (with the settings in its metadata)",
                                   elem_id="generate-latents-button")
        latents_download = gr.File(label="The final latents, before the decoder", elem_id="generate-latents")
    latents_button.click(bound(final_latents, ctx), [last_run], [latents_download], api_visibility="private")
    with gr.Accordion("Read settings from a PNG (made here or by AUTOMATIC1111)", open=False):
        png = common.image_upload(ctx.settings, label="Drop a PNG: its settings fill the controls above",
                                  elem_id="png-info-input")
        png_note = gr.Markdown(elem_id="png-info-note")
    png_outputs = PngInfoOutputs(prompt=prompt, negative_prompt=negative, seed=seed, randomize=randomize, steps=steps,
                                 guidance=guidance, scheduler=scheduler, width=width, height=height, note=png_note)
    png.upload(bound(read_png, ctx), [png], list(png_outputs), api_name="png_info")
    compared = compare_button.click(bound(compare, ctx), inputs[:-1] + [last_run],
                                    list(CompareOutputs(heatmap=heatmap, report=report, last_run=last_run)),
                                    **ctx.model_job(api_name="compare_runs"))
    cancel.click(None, cancels=[run for run in (event, example_run, compared, steps_run) if run is not None])
    return GenerateTab(send_img2img, send_inpaint, last_run)
