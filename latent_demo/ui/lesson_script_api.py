"""The API forms for scripts of the lesson's views that answer with many pictures: `/compress`, `/compare_vaes`,
`/encoder_grid`, `/posterior`, `/predict_noise`, `/noise_space` and `/seed_walk`.

Each runs the same model job as its page event, once, and returns the view's numbers as JSON; the pictures (one
file each, every one fetched by gradio_client) come only with `return_pictures=True`. `/seed_walk` returns its GIF,
the one file a walk is for, and its frames only when asked. The page's events keep their views under the same
names with `_page` added, off the API page (script_api.py says why).
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
from PIL import Image

from latent_demo.compression import DEFAULT_SQUEEZES, SQUEEZES, Decoded
from latent_demo.explore import noise_schedule
from latent_demo.images import pixels_to_pil
from latent_demo.params import GenerateParams, check_int
from latent_demo.serving.files import to_gif
from latent_demo.tasks import planned_steps
from latent_demo.text import check_prompt
from latent_demo.ui import controls
from latent_demo.ui.common import TabContext, bound, image_upload, load_upload, named_outputs, user_errors
from latent_demo.ui.latent_spaces_view import verdict
from latent_demo.ui.script_api import flag
from latent_demo.ui.tabs.noise import DEFAULT_TIMESTEP, noise_request, prediction_pictures
from latent_demo.ui.tabs.seed_walk import GIF_SECONDS_PER_FRAME

LessonOutputs = named_outputs("LessonOutputs", "facts pictures")
WalkOutputs = named_outputs("WalkOutputs", "gif facts frames")
Picture = tuple[Image.Image, str]


def answer(facts: dict, pictures: Callable[[], list[Picture]], wanted: bool) -> LessonOutputs:
    """The facts, and the pictures made only when asked for (a script that wants numbers pays for no picture)."""
    return LessonOutputs(facts=facts, pictures=pictures() if wanted else None)


def decoded_facts(decoded: Decoded) -> dict:
    return {"label": decoded.label, "psnr_db": round(decoded.psnr_db, 3), "stored_bits": decoded.stored_bits,
            "fewer_bits": round(decoded.ratio, 3), "seconds": round(decoded.seconds, 4)}


@user_errors
def compress(ctx: TabContext, image, squeezes=DEFAULT_SQUEEZES, return_pictures=False) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    report = ctx.runner.run("compress", load_upload(image, ctx.settings), list(squeezes or []))
    facts = {"pixel_bits": report.pixel_bits, "decoders": [decoded_facts(d) for d in report.decoders],
             "squeezed": [decoded_facts(d) for d in report.squeezed]}
    return answer(facts, lambda: [(d.image, d.label) for d in report.decoders + report.squeezed], wanted)


@user_errors
def compare_vaes(ctx: TabContext, image, squeezes=DEFAULT_SQUEEZES, return_pictures=False) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    report = ctx.runner.run("compare_vaes", load_upload(image, ctx.settings), list(squeezes or []))
    spaces = [{"name": s.name, "class": s.architecture, "down_factor": s.down_factor, "channels": s.channels,
               "latent_shape": list(s.latent_shape), "latent_values": s.latent_values,
               "fewer_values": round(s.value_ratio, 3), "fewer_bits": round(s.bit_ratio, 3),
               "scaling_factor": s.scaling_factor, "shift_factor": s.shift_factor, "psnr_db": round(s.psnr_db, 3),
               "encode_s": round(s.encode_seconds, 4), "decode_s": round(s.decode_seconds, 4)} for s in report.spaces]
    facts = {"pixel_bits": report.pixel_bits, "autoencoders": spaces,
             "squeezed": [decoded_facts(d) for d in report.squeezed], "note": verdict(report)}
    return answer(facts, lambda: [(s.reconstruction, s.name) for s in report.spaces]
                  + [(s.error_map, f"{s.name}: error") for s in report.spaces], wanted)


@user_errors
def encoder_grid(ctx: TabContext, image, return_pictures=False) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    cells = ctx.runner.run("encoder_grid", load_upload(image, ctx.settings))
    facts = {"cells": [{"encoder": c.encoder, "decoder": c.decoder, "psnr_db": round(c.psnr_db, 3),
                        "encode_s": round(c.encode_seconds, 4), "decode_s": round(c.decode_seconds, 4)}
                       for c in cells]}
    return answer(facts, lambda: [(pixels_to_pil(c.reconstruction), f"{c.encoder} → {c.decoder}") for c in cells]
                  + [(c.error_map, f"{c.encoder} → {c.decoder}: error") for c in cells], wanted)


@user_errors
def posterior(ctx: TabContext, image, seed=0, return_pictures=False) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    seed = controls.pick_seed(seed, False)
    result = ctx.runner.run("posterior", load_upload(image, ctx.settings), seed)
    facts = {"seed": seed, "mean_psnr_db": round(result.mean_psnr_db, 3),
             "sample_psnr_db": [round(value, 3) for value in result.sample_psnr_db],
             "std_share_of_spread": round(result.std.mean().item() / result.mean.std().item(), 5),
             "latent_shape": list(result.mean.shape[1:])}
    return answer(facts, lambda: [(pixels_to_pil(result.mean_decoded), "the mean, decoded")]
                  + [(pixels_to_pil(p), f"sample {i + 1}, decoded") for i, p in enumerate(result.samples_decoded)],
                  wanted)


@user_errors
def predict_noise(ctx: TabContext, image, timestep=DEFAULT_TIMESTEP, seed=0, prompt="", return_pictures=False
                  ) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    prepared, _, timestep, seed = noise_request(ctx, image, timestep, seed, None)
    prompt = prompt or ""
    check_prompt(prompt, ctx.models, ctx.settings.max_prompt_tokens)
    _, prediction, curve, decoded = ctx.runner.run("predict_noise", prepared, None, timestep, seed, prompt)
    facts = {"timestep": prediction.timestep, "seed": seed, "prediction_type": prediction.prediction_type,
             "loss": prediction.loss, "loss_curve": [[t, loss] for t, loss in curve]}
    return answer(facts, lambda: [*prediction_pictures(prediction), (decoded, "x̂₀ from the prediction, decoded")],
                  wanted)


@user_errors
def noise_space(ctx: TabContext, image, timestep=DEFAULT_TIMESTEP, seed=0, return_pictures=False) -> LessonOutputs:
    wanted = flag("return_pictures", return_pictures)  # checked before any model work
    prepared, _, timestep, seed = noise_request(ctx, image, timestep, seed, None)
    _, result = ctx.runner.run("noise_space", prepared, None, timestep, seed)
    facts = {"timestep": result.timestep, "seed": seed, "alpha_bar": result.alpha_bar,
             "clean_psnr_db": round(result.clean_psnr_db, 3),
             "latent_noise_psnr_db": round(result.latent_noise_psnr_db, 3),
             "pixel_noise_psnr_db": round(result.pixel_noise_psnr_db, 3),
             "pixel_noise_through_vae": [{"noise_std": level.noise_std, "noisy_psnr_db": round(level.noisy_psnr_db, 3),
                                          "rebuilt_psnr_db": round(level.rebuilt_psnr_db, 3)}
                                         for level in result.through_vae]}
    return answer(facts, lambda: [(pixels_to_pil(result.latent_noise_decoded), "noise in the latents, decoded"),
                                  (pixels_to_pil(result.pixel_noise), "the same noise in the pixels")]
                  + [(pixels_to_pil(level.rebuilt), f"std {level.noise_std:g} after encode → decode")
                     for level in result.through_vae], wanted)


@user_errors
def seed_walk(ctx: TabContext, prompt, seed_a, seed_b, frames, steps, guidance, scheduler, width, height,
              return_frames=False) -> WalkOutputs:
    frames_wanted = flag("return_frames", return_frames)
    params = controls.sampling_params(GenerateParams, prompt, "", seed_a, False, steps, guidance, scheduler,
                                      width=width, height=height)
    seed_b = controls.pick_seed(seed_b, False)
    count = check_int("frames", frames, 2, ctx.settings.max_seed_walk_frames)
    planned_steps(ctx.models, params, ctx.settings)  # every value checked before any GPU time is asked for
    results = [value[1] for kind, value in ctx.runner.stream("seed_walk", params, seed_b, count) if kind == "frame"]
    images = [result.image for result in results]
    facts = {"seed_a": params.seed, "seed_b": seed_b, "frames": len(images), "steps": params.num_inference_steps,
             "guidance_scale": params.guidance_scale, "width": images[0].width, "height": images[0].height,
             "seconds_per_frame": [round(result.timings["total"], 4) for result in results]}
    return WalkOutputs(gif=to_gif(images, GIF_SECONDS_PER_FRAME), facts=facts,
                       frames=[(image, f"frame {i + 1}") for i, image in enumerate(images)] if frames_wanted else None)


def build(ctx: TabContext) -> None:
    """The forms, hidden from the page (their components give the API its parameters, defaults and limits)."""
    models, settings = ctx.models, ctx.settings
    last_t = len(noise_schedule(models)) - 1
    with gr.Column(visible=False):
        facts = gr.JSON(label="facts")
        pictures = gr.Gallery(format="png", label="pictures (with return_pictures)")
        outputs = list(LessonOutputs(facts=facts, pictures=pictures))

        def upload() -> gr.Image:
            return image_upload(settings, label="image")

        def wanted(name: str = "return pictures") -> gr.Checkbox:
            return gr.Checkbox(value=False, label=name)

        def squeezes() -> gr.CheckboxGroup:
            return gr.CheckboxGroup(list(SQUEEZES), value=DEFAULT_SQUEEZES, label="squeezes")

        def noise_inputs() -> list:
            return [upload(), gr.Slider(0, last_t, value=DEFAULT_TIMESTEP, step=1, label="timestep"),
                    gr.Number(value=0, precision=0, minimum=0, label="noise seed")]

        forms = {"compress": (compress, [upload(), squeezes(), wanted()]),
                 "compare_vaes": (compare_vaes, [upload(), squeezes(), wanted()]),
                 "encoder_grid": (encoder_grid, [upload(), wanted()]),
                 "posterior": (posterior, [upload(), gr.Number(value=0, precision=0, minimum=0, label="seed"),
                                           wanted()]),
                 "predict_noise": (predict_noise, [*noise_inputs(), gr.Textbox(value="", label="prompt"), wanted()]),
                 "noise_space": (noise_space, [*noise_inputs(), wanted()])}
        for name, (handler, inputs) in forms.items():
            gr.Button(visible=False).click(bound(handler, ctx), inputs, outputs, **ctx.model_job(api_name=name))
        prompt = gr.Textbox(value="", label="prompt")
        seed_a, seed_b = (gr.Number(value=value, precision=0, minimum=0, label=f"seed {name}")
                          for value, name in ((1, "A"), (2, "B")))
        frames = gr.Slider(2, settings.max_seed_walk_frames, value=min(5, settings.max_seed_walk_frames), step=1,
                           label="frames")
        steps, guidance, scheduler = controls.sampling_inputs(models, settings, "script-walk")
        width, height = controls.size_inputs(models, settings, "script-walk")
        walk_outputs = WalkOutputs(gif=gr.File(label="the walk as a GIF"), facts=facts,
                                   frames=gr.Gallery(format="png", label="frames (with return_frames)"))
        gr.Button(visible=False).click(
            bound(seed_walk, ctx), [prompt, seed_a, seed_b, frames, steps, guidance, scheduler, width, height,
                                    wanted("return frames")], list(walk_outputs),
            **ctx.model_job(api_name="seed_walk"))
