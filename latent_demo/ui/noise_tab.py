"""Tab 5, Noise explorer: the forward process x_t = sqrt(ᾱ_t)·x_0 + sqrt(1-ᾱ_t)·ε at any timestep."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from latent_demo.encoding import prepare_and_encode
from latent_demo.explore import add_noise, noise_schedule
from latent_demo.images import pixels_to_pil
from latent_demo.latents import latents_to_channel_images, latents_to_pixels
from latent_demo.params import check_int
from latent_demo.ui import controls
from latent_demo.ui.common import TabContext, gpu, image_upload, load_upload, upscale, user_errors
from latent_demo.ui.examples import asset

INTRO = """**Training teaches the UNet to undo this.** Pick a timestep: the image's latents are mixed with noise by
the schedule's weights. Early timesteps keep the picture; by t ≈ 999 the latents are almost pure noise, and
decoding them gives noise too: *latent noise is still noise*."""


def schedule_frame(alphas_cumprod, timestep: int) -> pd.DataFrame:
    steps = list(range(0, len(alphas_cumprod), 10)) + [len(alphas_cumprod) - 1]
    rows = [(t, float(alphas_cumprod[t]) ** 0.5, "signal weight √ᾱ_t") for t in steps]
    rows += [(t, float(1 - alphas_cumprod[t]) ** 0.5, "noise weight √(1-ᾱ_t)") for t in steps]
    rows += [(timestep, 0.0, "chosen t"), (timestep, 1.0, "chosen t")]
    return pd.DataFrame(rows, columns=["timestep", "weight", "curve"])


def build(ctx: TabContext) -> None:
    models, settings = ctx.models, ctx.settings
    alphas_cumprod = noise_schedule(models)
    last_t = len(alphas_cumprod) - 1

    def clean_latents(path, cache):
        """The visitor's image encoded once: moving the slider only re-noises (Gradio's upload path is per file)."""
        if cache and cache.get("path") == path:
            return cache["latents"], cache
        _, _, latents = prepare_and_encode(models, load_upload(path, settings), settings)
        return latents, {"path": path, "latents": latents}

    @gpu
    @user_errors
    def explore(image, timestep, seed, cache):
        timestep, seed = check_int("timestep", timestep, 0, last_t), controls.pick_seed(seed, False)
        with ctx.model_slots:
            latents, cache = clean_latents(image, cache)
            noised = add_noise(models, latents, timestep, seed)
            decoded = pixels_to_pil(latents_to_pixels(models.decoder(models.fast_decoder is not None),
                                                      noised.latents))
        scale = max(1, 256 // latents.shape[-1])
        channels = [(upscale(image, scale), f"x_t channel {c}")
                    for c, image in enumerate(latents_to_channel_images(noised.latents))]
        note = (f"t = **{noised.timestep}**: x_t = **{noised.signal_weight:.3f}** · x_0 + "
                f"**{noised.noise_weight:.3f}** · ε (std of x_t {noised.latents.std():.2f}, of x_0 "
                f"{latents.std():.2f}). Decoded with the {'fast decoder' if models.fast_decoder else 'full VAE'}.")
        return channels, decoded, schedule_frame(alphas_cumprod, noised.timestep), note, cache

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            image = image_upload(settings, label="Image", elem_id="noise-input", value=asset("astronaut.png"))
            timestep = gr.Slider(0, last_t, value=500, step=1, label="Timestep t", elem_id="noise-timestep")
            seed = gr.Number(label="Noise seed", value=0, precision=0, minimum=0, elem_id="noise-seed")
            run = gr.Button("Add noise", variant="primary", elem_id="noise-button")
        with gr.Column():
            decoded = gr.Image(label="x_t decoded", format="png", elem_id="noise-decoded")
            note = gr.Markdown(elem_id="noise-note")
    channels = gr.Gallery(label="Noisy latents x_t (4 channels)", columns=4, height="auto", format="png",
                          elem_id="noise-channels")
    plot = gr.LinePlot(schedule_frame(alphas_cumprod, 500), x="timestep", y="weight", color="curve",
                       title="The noise schedule", elem_id="noise-plot")
    cache = gr.State(None, time_to_live=settings.state_ttl_s)  # this visitor's clean latents, not re-encoded
    inputs, outputs = [image, timestep, seed, cache], [channels, decoded, plot, note, cache]
    run.click(explore, inputs, outputs, **ctx.model_job(api_name="add_noise"))
    timestep.release(explore, inputs, outputs, **ctx.model_job(api_visibility="private"))
    ctx.examples([[asset(name)] for name in ("astronaut.png", "chelsea.png", "rocket.jpg")], [image], explore, inputs,
                 outputs, "Examples (click one to add noise to it)")
