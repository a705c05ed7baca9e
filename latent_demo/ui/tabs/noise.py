"""Tab 5, Noise explorer: the forward process x_t = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε at any timestep."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.encoding import prepare_and_encode
from latent_demo.explore import NoisedLatents, add_noise, noise_schedule, preview_decoder
from latent_demo.gpu_budget import fitted_size, vae_seconds
from latent_demo.images import pixels_to_pil
from latent_demo.latents import latents_to_channel_images, latents_to_pixels
from latent_demo.models import Models
from latent_demo.params import check_int
from latent_demo.ui import common, controls
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import channel_scale, upscale
from latent_demo.ui.state import NoiseCache

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


JOBS = {"add_noise": (noise_job, noise_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


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
