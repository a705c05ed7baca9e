"""The API forms for scripts: `/generate`, `/img2img`, `/inpaint` and `/encode` answer once, with what a script uses.

The page's events stream every step (live pictures, noise channels, the trajectory gallery, the GIF): about 60 files
for a 25-step generation, and gradio_client downloads every file of every update, each over a new connection. A
script wants the image, its seed and its timings, so these forms run the same model jobs without streaming and
return the image (a PNG carrying its settings), the seed and the facts as JSON; the heavy extras (the trajectory
as one GIF, the latents as .safetensors, Generate's starting noise and Encode's latents as channel pictures) come
only when asked for. The page's own events keep streaming under the names `/generate_page`, `/img2img_page`,
`/inpaint_page` and `/encode_page`, callable but off the API page (`--api-lists-page-events` lists them:
gradio_client fills in defaults only for listed endpoints, and the tests call them so). The forms' components are
hidden: they exist to give the API its parameters, defaults and limits (the same as the page's controls).
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from latent_demo.encoding import EncodeReport
from latent_demo.images import image_and_painted_mask, open_image
from latent_demo.params import GenerateParams, Img2ImgParams, InpaintParams, SamplingParams
from latent_demo.png_parameters import with_settings
from latent_demo.reproducibility import fingerprint
from latent_demo.serving.files import latents_file
from latent_demo.tasks import TaskResult
from latent_demo.ui import controls
from latent_demo.ui.common import TabContext, bound, image_upload, load_upload, named_outputs, user_errors
from latent_demo.ui.pictures import DEFAULT_VIEW
from latent_demo.ui.state import EncodedImage
from latent_demo.ui.tabs.generate import noise_pictures, trajectory_and_gif
from latent_demo.ui.tabs.img2img import FROM_ENCODE, FROM_UPLOAD, starting_point
from latent_demo.ui.tabs.inpaint import MAX_FEATHER

GenerateOutputs = named_outputs("GenerateOutputs", "image seed facts trajectory latents noise")
Img2ImgOutputs = named_outputs("Img2ImgOutputs", "image seed facts latents encoded")
InpaintOutputs = named_outputs("InpaintOutputs", "image seed facts")
EncodeOutputs = named_outputs("EncodeOutputs", "reconstruction latents facts channels encoded")
SamplingInputs = namedtuple("SamplingInputs", "prompt negative_prompt seed randomize steps guidance scheduler "
                                              "fast_decode")


def flag(name: str, value) -> bool:
    """A yes/no parameter: a bool, or a ValueError naming it (a script may send anything)."""
    if value is None:
        return False
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def sampling_facts(ctx: TabContext, params: SamplingParams, result: TaskResult) -> dict:
    """What a script logs of a generation: the settings it ran with, what happened, how long each part took."""
    return {"seed": result.seed, "prompt": params.prompt, "negative_prompt": params.negative_prompt,
            "steps": params.num_inference_steps, "timesteps": list(result.timesteps),
            "guidance_scale": params.guidance_scale, "scheduler": params.scheduler,
            "width": result.image.width, "height": result.image.height, "model": ctx.models.source,
            "timings_s": {name: round(seconds, 4) for name, seconds in result.timings.items()},
            "fingerprint": {"latents": fingerprint(result.latents), "pixels": fingerprint(result.image)},
            "prompt_truncated": result.prompt.truncated, "unconditional": result.prompt.unconditional,
            "hidden_by_safety_checker": result.flagged}


@user_errors
def generate(ctx: TabContext, prompt, negative_prompt, seed, randomize, steps, guidance, scheduler, width, height,
             fast_decode, return_trajectory=False, return_latents=False, return_noise=False) -> GenerateOutputs:
    trajectory_wanted, latents_wanted = flag("return_trajectory", return_trajectory), \
        flag("return_latents", return_latents)
    noise_wanted = flag("return_noise", return_noise)
    params = controls.sampling_params(GenerateParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, width=width, height=height)
    result = ctx.runner.run("generate", params)
    image = with_settings(result.image, controls.generation_settings(ctx.models, params, result.image))
    gif = trajectory_and_gif(ctx.models, result, DEFAULT_VIEW, {})[1] if trajectory_wanted else None
    latents = latents_file(result.latents, ctx.models, "generated-latents",
                           **controls.settings_metadata(ctx.models, params, image)) if latents_wanted else None
    return GenerateOutputs(image=image, seed=result.seed, facts=sampling_facts(ctx, params, result), trajectory=gif,
                           latents=latents, noise=noise_pictures(result) if noise_wanted else None)


@user_errors
def img2img(ctx: TabContext, source, image, prompt, negative_prompt, seed, randomize, steps, guidance, strength,
            scheduler, fast_decode, return_latents=False, encoded: EncodedImage | None = None) -> Img2ImgOutputs:
    latents_wanted = flag("return_latents", return_latents)
    params = controls.sampling_params(Img2ImgParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, strength=strength)
    result = ctx.runner.run("img2img", params, *starting_point(source, image, encoded, ctx.settings))
    picture = with_settings(result.image, controls.generation_settings(ctx.models, params, result.image,
                                                                       params.strength))
    facts = {**sampling_facts(ctx, params, result), "strength": params.strength, "start_step": result.start_step,
             "steps_run": len(result.timesteps)}
    latents = None
    if latents_wanted:
        latents = latents_file(result.latents, ctx.models, "img2img-latents",
                               **controls.settings_metadata(ctx.models, params, picture, params.strength))
    return Img2ImgOutputs(image=picture, seed=result.seed, facts=facts, latents=latents)


def script_mask(mask: Image.Image) -> Image.Image:
    """A script's mask file as a painted layer: white (or, in an image with transparency, opaque) = repaint."""
    if np.asarray(mask.getchannel("A")).min() < 255:  # (an RGBA image: opened with keep_alpha)
        return mask
    painted = np.asarray(mask.convert("L")) > 127
    layer = np.zeros((*painted.shape, 4), dtype=np.uint8)
    layer[painted] = 255
    return Image.fromarray(layer, mode="RGBA")


@user_errors
def inpaint(ctx: TabContext, image, mask, prompt, negative_prompt, seed, randomize, steps, guidance, strength,
            feather_radius, scheduler, fast_decode) -> InpaintOutputs:
    settings = ctx.settings
    picture = load_upload(image, settings)
    if not mask:
        raise ValueError("please send a mask too (white = repaint)")
    painted = script_mask(open_image(Path(mask), settings.max_image_pixels, keep_alpha=True))
    picture, mask_image = image_and_painted_mask(picture, [painted], settings.max_image_pixels)
    params = controls.sampling_params(InpaintParams, prompt, negative_prompt, seed, randomize, steps, guidance,
                                      scheduler, fast_decode, strength=strength, feather_radius=feather_radius)
    result = ctx.runner.run("inpaint", params, picture, mask_image)
    result_image = with_settings(result.image, controls.generation_settings(ctx.models, params, result.image,
                                                                            params.strength))
    grid = result.latent_mask[0, 0].numpy()
    facts = {**sampling_facts(ctx, params, result), "strength": params.strength, "method": result.method,
             "masked_latent_cells": int(grid.sum()), "latent_cells": int(grid.size)}
    return InpaintOutputs(image=result_image, seed=result.seed, facts=facts)


def encode_facts(report: EncodeReport) -> dict:
    facts = report.facts
    return {"pixel_shape": list(facts.pixel_shape), "latent_shape": list(facts.latent_shape),
            "pixel_values": facts.pixel_values, "latent_values": facts.latent_values,
            "compression": round(facts.ratio, 2), "psnr_db": round(report.psnr_db, 2),
            "channels": [dataclasses.asdict(stats) for stats in report.stats],
            "timings_s": {name: round(seconds, 4) for name, seconds in report.timings.items()}}


@user_errors
def encode(ctx: TabContext, image, fast_decode=False, return_channels=False) -> EncodeOutputs:
    channels_wanted = flag("return_channels", return_channels)
    report = ctx.runner.run("encode", load_upload(image, ctx.settings), flag("fast_decode", fast_decode))
    return EncodeOutputs(reconstruction=report.reconstruction, facts=encode_facts(report),
                         latents=latents_file(report.latents, ctx.models),
                         channels=report.channel_images if channels_wanted else None,
                         encoded=EncodedImage(report.latents, report.image, source="the /encode call"))


def build(ctx: TabContext) -> None:
    """The four forms, hidden from the page (their components give the API its parameters and limits)."""
    models, settings = ctx.models, ctx.settings
    with gr.Column(visible=False):
        def sampling(prefix: str, min_default_steps: int = 1) -> SamplingInputs:
            prompt = gr.Textbox(value="", label="prompt")
            negative = gr.Textbox(value="", label="negative prompt")
            seed, randomize = controls.seed_inputs(prefix)
            steps, guidance, scheduler = controls.sampling_inputs(models, settings, prefix, min_default_steps)
            fast = gr.Checkbox(value=False, label="fast decode")
            return SamplingInputs(prompt, negative, seed, randomize, steps, guidance, scheduler, fast)

        def wanted(name: str) -> gr.Checkbox:
            return gr.Checkbox(value=False, label=name)

        def picture(label: str) -> gr.Image:
            return gr.Image(format="png", type="pil", label=label)

        facts = gr.JSON(label="facts")
        seed_used = gr.Number(precision=0, label="seed used")
        # /generate
        ins = sampling("script-generate")
        width, height = controls.size_inputs(models, settings, "script-generate")
        generate_outputs = GenerateOutputs(image=picture("image"), seed=seed_used, facts=facts,
                                           trajectory=gr.File(label="trajectory GIF"),
                                           latents=gr.File(label="final latents"),
                                           noise=gr.Gallery(format="png", label="starting noise channels"))
        gr.Button(visible=False).click(
            bound(generate, ctx), [*ins[:7], width, height, ins.fast_decode, wanted("return trajectory"),
                                   wanted("return latents"), wanted("return noise")],
            list(generate_outputs), **ctx.model_job(api_name="generate"))
        # /img2img
        source = gr.Radio([FROM_UPLOAD, FROM_ENCODE], value=FROM_UPLOAD, label="start from")
        upload = image_upload(settings, label="image")
        ins = sampling("script-img2img", min_default_steps=4)
        strength = gr.Slider(0, 1, value=0.6, label="strength")
        img2img_outputs = Img2ImgOutputs(image=picture("image"), seed=seed_used, facts=facts,
                                         latents=gr.File(label="final latents"), encoded=ctx.encoded)
        gr.Button(visible=False).click(
            bound(img2img, ctx), [source, upload, *ins[:6], strength, ins.scheduler, ins.fast_decode,
                                  wanted("return latents"), ctx.encoded],
            list(img2img_outputs), **ctx.model_job(api_name="img2img"))
        # /inpaint
        upload, mask = image_upload(settings, label="image"), image_upload(settings, label="mask (white = repaint)")
        ins = sampling("script-inpaint", min_default_steps=2)
        strength = gr.Slider(0, 1, value=1.0, label="strength")
        feather = gr.Slider(0, MAX_FEATHER, value=4, step=1, label="feather radius")
        gr.Button(visible=False).click(
            bound(inpaint, ctx), [upload, mask, *ins[:6], strength, feather, ins.scheduler, ins.fast_decode],
            list(InpaintOutputs(image=picture("image"), seed=seed_used, facts=facts)),
            **ctx.model_job(api_name="inpaint"))
        # /encode
        upload = image_upload(settings, label="image")
        encode_outputs = EncodeOutputs(reconstruction=picture("reconstruction"), latents=gr.File(label="latents"),
                                       facts=facts, channels=gr.Gallery(format="png", label="channels"),
                                       encoded=ctx.encoded)
        gr.Button(visible=False).click(
            bound(encode, ctx), [upload, gr.Checkbox(value=False, label="fast decode"), wanted("return channels")],
            list(encode_outputs), **ctx.model_job(api_name="encode"))
