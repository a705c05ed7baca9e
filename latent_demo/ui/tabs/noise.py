"""Tab 5, Noise explorer: the forward process x_t = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε at any timestep, what the UNet
predicts from x_t (the training loss), and where noise lives (latents against pixels)."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.encoding import prepare_and_encode
from latent_demo.explore import NoisedLatents, add_noise, noise_schedule, preview_decoder
from latent_demo.gpu_budget import fitted_size, generation_seconds, vae_seconds
from latent_demo.images import pil_to_pixels, pixels_to_pil, prepare_image
from latent_demo.latents import channel_peaks, latents_to_channel_images, latents_to_pixels, pixels_to_latents
from latent_demo.models import Models
from latent_demo.noise_prediction import (
    LOSS_CURVE_POINTS,
    TARGETS,
    NoisePrediction,
    WhereNoiseLives,
    loss_curve,
    predict_noise,
    where_noise_lives,
)
from latent_demo.params import check_int
from latent_demo.text import check_prompt, encode_prompt
from latent_demo.ui import common, controls
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import channel_scale, upscale
from latent_demo.ui.state import LessonFigures, NoiseCache, figures

INTRO = """**Training teaches the UNet to undo this.** Pick a timestep: the image's latents are mixed with noise by
the schedule's weights. Early timesteps keep the picture; by t ≈ 999 the latents are almost pure noise, and
decoding them gives noise too: *latent noise is still noise*."""


def schedule_frame(alphas_cumprod, timestep: int) -> pd.DataFrame:
    steps = list(range(0, len(alphas_cumprod), 10)) + [len(alphas_cumprod) - 1]
    rows = [(t, float(alphas_cumprod[t]) ** 0.5, "signal weight √ᾱ_t") for t in steps]
    rows += [(t, float(1 - alphas_cumprod[t]) ** 0.5, "noise weight √(1-ᾱ_t)") for t in steps]
    rows += [(timestep, 0.0, "chosen t"), (timestep, 1.0, "chosen t")]
    return pd.DataFrame(rows, columns=["timestep", "weight", "curve"])


DEFAULT_TIMESTEP = 500


Outputs = named_outputs("Outputs", "channels decoded plot note cache")


def noise_job(models: Models, settings: Settings, image: Image.Image | None, latents: torch.Tensor | None,
              timestep: int, seed: int, updates) -> tuple[torch.Tensor, NoisedLatents, Image.Image]:
    """Runs where the GPU is: (clean latents, encoded only when not cached; x_t; x_t decoded)."""
    if latents is None:
        _, _, latents = prepare_and_encode(models, image, settings)
    noised = add_noise(models, latents, timestep, seed)
    decoded = pixels_to_pil(latents_to_pixels(preview_decoder(models), noised.latents))
    return latents, noised, decoded


def noise_seconds(models: Models, settings: Settings, image: Image.Image | None, latents: torch.Tensor | None,
                  timestep: int, seed: int) -> int:
    if latents is not None:
        factor = models.vae_scale_factor
        return vae_seconds(latents.shape[3] * factor, latents.shape[2] * factor, passes=1)
    width, height = fitted_size(*image.size, settings.max_image_side)
    return vae_seconds(width, height, passes=2)


def clean_latents(models: Models, prepared: Image.Image, cached: torch.Tensor | None) -> torch.Tensor:
    """The prepared image's latents: the visitor's cached ones, else encoded now (posterior mean)."""
    return cached if cached is not None else pixels_to_latents(models.vae, pil_to_pixels(prepared)).float().cpu()


def predict_job(models: Models, settings: Settings, prepared: Image.Image, cached: torch.Tensor | None,
                timestep: int, seed: int, prompt: str, updates
                ) -> tuple[torch.Tensor, NoisePrediction, list[tuple[int, float]], Image.Image]:
    """Runs where the GPU is: (clean latents, the prediction at t, the loss at 10 timesteps, x̂₀ decoded)."""
    latents = clean_latents(models, prepared, cached)
    text = encode_prompt(models, prompt, None, False, settings.max_prompt_tokens).embeddings
    prediction = predict_noise(models, latents, timestep, seed, text)
    curve = loss_curve(models, latents, seed, text)
    return latents, prediction, curve, pixels_to_pil(latents_to_pixels(models.vae, prediction.denoised))


def predict_seconds(models: Models, settings: Settings, prepared: Image.Image, cached: torch.Tensor | None,
                    timestep: int, seed: int, prompt: str) -> int:
    passes = 1 if cached is not None else 2  # the decode of x̂₀, and the encode when not cached
    return generation_seconds(1 + LOSS_CURVE_POINTS, 0.0, *prepared.size, vae_passes=passes)


def noise_space_job(models: Models, settings: Settings, prepared: Image.Image, cached: torch.Tensor | None,
                    timestep: int, seed: int, updates) -> tuple[torch.Tensor, WhereNoiseLives]:
    """Runs where the GPU is: (clean latents, latent noise against pixel noise)."""
    latents = clean_latents(models, prepared, cached)
    return latents, where_noise_lives(models, pil_to_pixels(prepared), latents, timestep, seed)


def noise_space_seconds(models: Models, settings: Settings, prepared: Image.Image, cached: torch.Tensor | None,
                        timestep: int, seed: int) -> int:
    passes = 2 + 2 * 3 + (0 if cached is not None else 1)  # 2 decodes; 3 noisy encodes and decodes; the encode
    return vae_seconds(*prepared.size, passes=passes)


# what this tab runs where the GPU is (registered by ui/app.py)
JOBS = {"add_noise": (noise_job, noise_seconds), "predict_noise": (predict_job, predict_seconds),
        "noise_space": (noise_space_job, noise_space_seconds)}


@user_errors
def explore(ctx: TabContext, image, timestep, seed, cache: NoiseCache | None) -> Outputs:
    """The visitor's image is encoded once: moving the slider only re-noises (Gradio's upload path is per file)."""
    models = ctx.models
    timestep = check_int("timestep", timestep, 0, len(noise_schedule(models)) - 1)
    seed = controls.pick_seed(seed, False)
    cached = cache.latents if cache is not None and cache.path == image else None
    upload = None if cached is not None else common.load_upload(image, ctx.settings)
    latents, noised, decoded = ctx.runner.run("add_noise", upload, cached, timestep, seed)
    scale = channel_scale(latents)
    channels = [(upscale(picture, scale), f"x_t channel {c}")
                for c, picture in enumerate(latents_to_channel_images(noised.latents))]
    decoder = "fast decoder" if models.fast_decoder is not None else "full VAE"
    note = (f"t = **{noised.timestep}**: x_t = **{noised.signal_weight:.3f}** · x_0 + "
            f"**{noised.noise_weight:.3f}** · ε (std of x_t {noised.latents.std():.2f}, of x_0 "
            f"{latents.std():.2f}). Decoded with the {decoder}.")
    plot = schedule_frame(noise_schedule(models), noised.timestep)
    return Outputs(channels=channels, decoded=decoded, plot=plot, note=note, cache=NoiseCache(image, latents))


def noise_request(ctx: TabContext, image, timestep, seed, cache: NoiseCache | None
                  ) -> tuple[Image.Image, torch.Tensor | None, int, int]:
    """The views' shared inputs, checked: (the image prepared as the encoder sees it, the cached latents of the same
    upload or None, t, seed)."""
    timestep = check_int("timestep", timestep, 0, len(noise_schedule(ctx.models)) - 1)
    seed = controls.pick_seed(seed, False)
    upload = common.load_upload(image, ctx.settings)
    prepared = prepare_image(upload, ctx.settings.max_image_side, ctx.settings.min_image_side,
                             ctx.models.vae_scale_factor)
    return prepared, cache.latents if cache is not None and cache.path == image else None, timestep, seed


def prediction_pictures(prediction: NoisePrediction) -> list[tuple[Image.Image, str]]:
    """Per channel: the target, the prediction and their difference, on the target's colour scale."""
    names = {"epsilon": ("ε", "ε̂"), "v_prediction": ("v", "v̂"), "sample": ("x₀", "x̂₀")}[prediction.prediction_type]
    peaks = channel_peaks(prediction.target)
    rows = zip(*(latents_to_channel_images(tensor, peaks) for tensor in
                 (prediction.target, prediction.predicted, prediction.predicted - prediction.target)), strict=True)
    scale = channel_scale(prediction.target)
    return [(upscale(picture, scale), f"{label}, channel {c}") for c, row in enumerate(rows)
            for picture, label in zip(row, (names[0], names[1], f"{names[1]} − {names[0]}"), strict=True)]


def describe_prediction(models: Models, prediction: NoisePrediction, curve: list[tuple[int, float]]) -> str:
    hardest, easiest = max(curve, key=lambda point: point[1]), min(curve, key=lambda point: point[1])
    note = (f"At t = **{prediction.timestep}** the UNet saw only x_t and was asked for "
            f"**{TARGETS[prediction.prediction_type]}** (this model's scheduler says `prediction_type: "
            f"{prediction.prediction_type}`). Mean squared error of its answer: **{prediction.loss:.4f}**: exactly "
            f"the training loss at this t, for this image and this noise. The image on the right is x̂₀ recovered "
            f"from that answer and decoded.\n\nOver {len(curve)} timesteps (same noise, one batched call) the loss "
            f"is highest at t = {hardest[0]} ({hardest[1]:.4f}) and lowest at t = {easiest[0]} ({easiest[1]:.4f}).")
    if models.is_untrained:
        note += ("\n\n⚠️ The offline model's UNet is untrained (random weights): its prediction is not the noise, "
                 "so the loss stays near what a guess scores and x̂₀ is not the image. A trained UNet scores far "
                 "lower, most of all at large t, where the noise dominates x_t.")
    return note


PredictOutputs = named_outputs("PredictOutputs", "channels denoised curve note cache lesson")


@user_errors
def predict(ctx: TabContext, image, timestep, seed, prompt, cache: NoiseCache | None,
            lesson: LessonFigures | None) -> PredictOutputs:
    prepared, cached, timestep, seed = noise_request(ctx, image, timestep, seed, cache)
    prompt = prompt or ""
    check_prompt(prompt, ctx.models, ctx.settings.max_prompt_tokens)  # before any GPU time is asked for
    latents, prediction, curve, decoded = ctx.runner.run("predict_noise", prepared, cached, timestep, seed, prompt)
    frame = pd.DataFrame(curve, columns=["timestep", "training loss (MSE)"])
    return PredictOutputs(channels=prediction_pictures(prediction), denoised=decoded, curve=frame,
                          note=describe_prediction(ctx.models, prediction, curve), cache=NoiseCache(image, latents),
                          lesson=figures(lesson).measured(noise_loss=prediction.loss,
                                                          noise_loss_timestep=prediction.timestep))


def describe_noise_space(result: WhereNoiseLives) -> str:
    rows = "\n".join(f"| {level.noise_std:g} ({level.noise_std / 2:.1%} of the range) | {level.noisy_psnr_db:.2f} dB "
                     f"| {level.rebuilt_psnr_db:.2f} dB | {level.rebuilt_psnr_db - level.noisy_psnr_db:+.2f} dB |"
                     for level in result.through_vae)
    removed = [level for level in result.through_vae if level.rebuilt_psnr_db > level.noisy_psnr_db]
    verdict = ("The autoencoder **removes part of the pixel noise** at std "
               + ", ".join(f"{level.noise_std:g}" for level in removed) + ": its rebuild is closer to the clean "
               "image than the noisy input was." if removed else
               "The autoencoder **does not remove this pixel noise**: its rebuild is no closer to the clean image "
               "than the noisy input was.")
    if len(removed) < len(result.through_vae):
        verdict += (" Where the noise is weaker than what the autoencoder itself loses (its clean rebuild: "
                    f"{result.clean_psnr_db:.2f} dB), encoding and decoding costs more than the noise did.")
    return (f"At t = **{result.timestep}** (ᾱ_t = {result.alpha_bar:.3f}), the same mix √ᾱ_t·signal + √(1−ᾱ_t)·ε: "
            f"in latent space then decoded, **{result.latent_noise_psnr_db:.2f} dB** against the original; in pixel "
            f"space, **{result.pixel_noise_psnr_db:.2f} dB**. The same amount of noise, in a different place: "
            f"latent noise decodes into blotches the size of a latent cell, pixel noise stays per pixel.\n\n"
            f"**Pixel noise through encode → decode** (PSNR against the clean image):\n\n"
            f"| noise std | noisy | after encode → decode | change |\n|---|---|---|---|\n{rows}\n\n{verdict}")


SpaceOutputs = named_outputs("SpaceOutputs", "latent_noise pixel_noise rebuilt note cache")


@user_errors
def noise_space(ctx: TabContext, image, timestep, seed, cache: NoiseCache | None) -> SpaceOutputs:
    prepared, cached, timestep, seed = noise_request(ctx, image, timestep, seed, cache)
    latents, result = ctx.runner.run("noise_space", prepared, cached, timestep, seed)
    rebuilt = [(pixels_to_pil(level.rebuilt), f"std {level.noise_std:g}: {level.noisy_psnr_db:.1f} → "
                f"{level.rebuilt_psnr_db:.1f} dB") for level in result.through_vae]
    return SpaceOutputs(latent_noise=pixels_to_pil(result.latent_noise_decoded),
                        pixel_noise=pixels_to_pil(result.pixel_noise), rebuilt=rebuilt,
                        note=describe_noise_space(result), cache=NoiseCache(image, latents))


def build(ctx: TabContext) -> None:
    models, settings = ctx.models, ctx.settings
    alphas_cumprod = noise_schedule(models)
    last_t = len(alphas_cumprod) - 1
    handler = bound(explore, ctx)

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            image = common.image_upload(settings, label="Image", elem_id="noise-input", value=asset("astronaut.png"))
            timestep = gr.Slider(0, last_t, value=DEFAULT_TIMESTEP, step=1, label="Timestep t",
                                 elem_id="noise-timestep")
            seed = gr.Number(label="Noise seed", value=0, precision=0, minimum=0, elem_id="noise-seed")
            run = gr.Button("Add noise", variant="primary", elem_id="noise-button")
        with gr.Column():
            decoded = gr.Image(label="x_t decoded", format="png", elem_id="noise-decoded")
            note = gr.Markdown(elem_id="noise-note")
    channels = gr.Gallery(label="Noisy latents x_t (4 channels)", columns=4, height="auto", format="png",
                          elem_id="noise-channels")
    plot = gr.LinePlot(schedule_frame(alphas_cumprod, DEFAULT_TIMESTEP), x="timestep", y="weight", color="curve",
                       title="The noise schedule", elem_id="noise-plot")
    cache = gr.State(None, time_to_live=settings.state_ttl_s)  # this visitor's clean latents, not re-encoded
    inputs = [image, timestep, seed, cache]
    outputs = list(Outputs(channels=channels, decoded=decoded, plot=plot, note=note, cache=cache))
    run.click(handler, inputs, outputs, **ctx.model_job(api_name="add_noise"))
    timestep.release(handler, inputs, outputs, **ctx.model_job(api_visibility="private"))
    ctx.examples([[asset(name)] for name in ("astronaut.png", "chelsea.png", "rocket.jpg")], [image], handler, inputs,
                 outputs, "Examples (click one to add noise to it)")
    build_model_views(ctx, image, timestep, seed, cache)


PREDICT_INTRO = """### What the UNet learned
Training shows the UNet x_t and t and asks for the noise in it; its loss is the squared error of the answer. Here
is that exact question on your image at the chosen t: the true noise, the UNet's answer and their difference, per
latent channel on one colour scale, and the loss against t."""
SPACE_INTRO = """### Where the noise lives
The same amount of noise (the same ᾱ_t) in the latents, decoded, and in the pixels. Then noisy pixels through the
autoencoder: does encoding and decoding remove pixel noise? Measured, not assumed."""


def build_model_views(ctx: TabContext, image: gr.Image, timestep: gr.Slider, seed: gr.Number,
                      cache: gr.State) -> None:
    """'What the UNet learned' and 'Where the noise lives', on the tab's image, t and seed."""
    gr.Markdown(PREDICT_INTRO)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt the UNet sees (empty: unconditional)", value="", elem_id="predict-prompt")
        run = gr.Button("Ask the UNet", elem_id="predict-button")
    with gr.Row():
        channels = gr.Gallery(label="Per channel: target, prediction, difference", columns=3, height="auto",
                              format="png", elem_id="predict-channels")
        with gr.Column():
            denoised = gr.Image(label="x̂₀ from the prediction, decoded", format="png", elem_id="predict-denoised")
            note = gr.Markdown(elem_id="predict-note")
    curve = gr.LinePlot(x="timestep", y="training loss (MSE)", title="The training loss against t (same noise)",
                        elem_id="predict-curve")
    outputs = PredictOutputs(channels=channels, denoised=denoised, curve=curve, note=note, cache=cache,
                             lesson=ctx.lesson)
    run.click(bound(predict, ctx), [image, timestep, seed, prompt, cache, ctx.lesson], list(outputs),
              **ctx.page_event("predict_noise"))
    gr.Markdown(SPACE_INTRO)
    space_run = gr.Button("Compare latent noise with pixel noise", elem_id="space-button")
    with gr.Row():
        latent_noise = gr.Image(label="Noise in the latents, decoded", format="png", elem_id="space-latent")
        pixel_noise = gr.Image(label="The same noise in the pixels", format="png", elem_id="space-pixel")
    rebuilt = gr.Gallery(label="Noisy pixels after encode → decode", columns=3, height="auto", format="png",
                         elem_id="space-rebuilt")
    space_note = gr.Markdown(elem_id="space-note")
    space_outputs = SpaceOutputs(latent_noise=latent_noise, pixel_noise=pixel_noise, rebuilt=rebuilt,
                                 note=space_note, cache=cache)
    space_run.click(bound(noise_space, ctx), [image, timestep, seed, cache], list(space_outputs),
                    **ctx.page_event("noise_space"))
