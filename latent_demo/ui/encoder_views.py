"""The Encode tab's encoder-side views: encoders × decoders, the lesson's toy encoder, the VAE's posterior."""

from __future__ import annotations

import gradio as gr
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.encoder_side import (
    GridCell,
    LatentCell,
    Posterior,
    ToyEncoding,
    autoencoders,
    encode_with_toy,
    encoder_decoder_grid,
    latent_cell,
    posterior,
)
from latent_demo.gpu_budget import fitted_size, vae_seconds
from latent_demo.images import heat_picture, pil_to_pixels, pixels_to_pil, prepare_image
from latent_demo.latents import latents_to_channel_images, pixels_to_latents
from latent_demo.models import Models
from latent_demo.params import check_int
from latent_demo.ui import common
from latent_demo.ui.common import TabContext, bound, user_errors
from latent_demo.ui.controls import pick_seed
from latent_demo.ui.pictures import channel_scale, upscale


def posterior_job(models: Models, settings: Settings, image: Image.Image, seed: int, updates) -> Posterior:
    """Runs where the GPU is."""
    prepared = prepare_image(image, settings.max_image_side, settings.min_image_side, models.vae_scale_factor)
    return posterior(models, pil_to_pixels(prepared), seed)


def posterior_seconds(models: Models, settings: Settings, image: Image.Image, seed: int) -> int:
    return vae_seconds(*fitted_size(*image.size, settings.max_image_side), passes=4)  # encode, 3 decodes


def grid_job(models: Models, settings: Settings, image: Image.Image, updates) -> list[GridCell]:
    """Runs where the GPU is."""
    prepared = prepare_image(image, settings.max_image_side, settings.min_image_side, models.vae_scale_factor)
    return encoder_decoder_grid(models, pil_to_pixels(prepared))


def grid_seconds(models: Models, settings: Settings, image: Image.Image) -> int:
    count = len(autoencoders(models))
    return vae_seconds(*fitted_size(*image.size, settings.max_image_side), passes=count + count * count)


def cell_job(models: Models, settings: Settings, image: Image.Image, row: int, col: int, updates) -> LatentCell:
    """Runs where the GPU is: encode (posterior mean), then decode with and without the one cell nudged."""
    prepared = prepare_image(image, settings.max_image_side, settings.min_image_side, models.vae_scale_factor)
    pixels = pil_to_pixels(prepared)
    return latent_cell(models, pixels_to_latents(models.vae, pixels).float().cpu(), pixels, row, col)


def cell_seconds(models: Models, settings: Settings, image: Image.Image, row: int, col: int) -> int:
    return vae_seconds(*fitted_size(*image.size, settings.max_image_side), passes=3)


JOBS = {"posterior": (posterior_job, posterior_seconds), "encoder_grid": (grid_job, grid_seconds),
        "latent_cell": (cell_job, cell_seconds)}


def change_heatmap(change: torch.Tensor) -> Image.Image:
    """|Δ| per pixel, scaled to its own maximum: black (none) - red - yellow - white (the most)."""
    return heat_picture((change / change.max().clamp_min(1e-12)).clamp(0, 1).numpy())


@user_errors
def cell(ctx: TabContext, image, row, col) -> tuple[Image.Image, Image.Image, str]:
    row, col = check_int("cell row", row, 0, 10**6), check_int("cell column", col, 0, 10**6)
    result = ctx.runner.run("latent_cell", common.load_upload(image, ctx.settings), row, col)
    factor = ctx.models.vae_scale_factor
    patch = pixels_to_pil(result.patch).resize((factor * 16, factor * 16), Image.Resampling.NEAREST)
    values = ", ".join(f"{value:+.3f}" for value in result.values)
    facts = (f"Cell (row {result.row}, column {result.col}) covers the {factor}×{factor}×3 = {factor * factor * 3} "
             f"pixel values shown on the left; it holds **{len(result.values)} numbers**: {values}.\n\n"
             f"Nudged alone by one standard deviation, it changes the decoded image within **{result.radius_90:.1f} "
             f"px** of its centre for 90 % of the change, and {result.outside_share:.0%} of the change falls outside "
             f"its own {factor}×{factor} pixels: a latent point is not a pixel block, the decoder spreads it over its "
             f"neighbourhood.")
    return patch, change_heatmap(result.change), facts



@user_errors
def encoder_grid(ctx: TabContext, image) -> tuple[list, list, str]:
    cells = ctx.runner.run("encoder_grid", common.load_upload(image, ctx.settings))
    name = lambda cell: f"{cell.encoder} encoder → {cell.decoder} decoder"  # noqa: E731
    pictures = [(pixels_to_pil(cell.reconstruction), f"{name(cell)}: {cell.psnr_db:.1f} dB") for cell in cells]
    errors = [(cell.error_map, name(cell)) for cell in cells]
    rows = "\n".join(f"| {cell.encoder} | {cell.decoder} | {cell.psnr_db:.2f} dB | {cell.encode_seconds:.2f} s | "
                     f"{cell.decode_seconds:.2f} s |" for cell in cells)
    table = ("| encoder | decoder | PSNR vs original | encode | decode |\n|---|---|---|---|---|\n" + rows)
    if len(cells) == 1:
        table += ("\n\nOnly the full VAE is loaded (no `--fast-decoder`), so the grid is 1×1. With TAESD loaded, "
                  "its encoder and decoder join: the row shows what an encoder loses, the column what a decoder does.")
    else:
        table += ("\n\nRead a row to compare decoders on the same latents, a column to compare encoders: a weak "
                  "encoder loses detail no decoder can bring back.")
    return pictures, errors, table


def build_cell(ctx: TabContext, image: gr.Image) -> None:
    """One latent cell: its pixels, its numbers, and how far it reaches through the decoder."""
    last = ctx.settings.max_image_side // ctx.models.vae_scale_factor - 1
    with gr.Row():
        row = gr.Slider(0, last, value=min(20, last), step=1, label="Cell row", elem_id="cell-row")
        col = gr.Slider(0, last, value=min(32, last), step=1, label="Cell column", elem_id="cell-col")
        run = gr.Button("What does one latent cell hold?", elem_id="cell-button")
    with gr.Row():
        patch = gr.Image(label="The pixels it covers (enlarged)", format="png", elem_id="cell-patch")
        heatmap = gr.Image(label="Where the decode changes when only it moves", format="png",
                           elem_id="cell-heatmap")
        facts = gr.Markdown(elem_id="cell-facts")
    run.click(bound(cell, ctx), [image, row, col], [patch, heatmap, facts], **ctx.model_job(api_name="latent_cell"))


def build_grid(ctx: TabContext, image: gr.Image) -> None:
    """Inside 'What compression keeps': every loaded encoder × every loaded decoder."""
    grid_button = gr.Button("Encoders × decoders: whose error is it?", elem_id="grid-button")
    with gr.Row():
        grid = gr.Gallery(label="Each encoder's latents through each decoder", columns=2, height="auto",
                          format="png", elem_id="grid-images")
        grid_errors = gr.Gallery(label="Their error maps", columns=2, height="auto", format="png",
                                 elem_id="grid-errors")
    grid_table = gr.Markdown(elem_id="grid-table")
    grid_button.click(bound(encoder_grid, ctx), [image], [grid, grid_errors, grid_table],
                      **ctx.page_event("encoder_grid"))


@user_errors
def toy(ctx: TabContext, image) -> tuple[list, str]:
    """The lesson's toy encoder on the visitor's image (untrained, fixed seed: no model job, a few ms on a CPU)."""
    prepared = prepare_image(common.load_upload(image, ctx.settings), ctx.settings.max_image_side,
                             ctx.settings.min_image_side, ctx.models.vae_scale_factor)
    encoded = encode_with_toy(ctx.models, pil_to_pixels(prepared))
    shape = lambda dims: "×".join(map(str, dims))  # noqa: E731
    values = ToyEncoding.values
    facts = (f"| | shape | values | fewer than the pixels |\n|---|---|---|---|\n"
             f"| pixels | {shape(encoded.pixel_shape)} | {values(encoded.pixel_shape):,} | |\n"
             f"| the lesson's toy encoder (2 convolutions, stride 2) | {shape(encoded.toy_shape)} | "
             f"{values(encoded.toy_shape):,} | {encoded.toy_ratio:.1f}× |\n"
             f"| the VAE's latents | {shape(encoded.vae_shape)} | {values(encoded.vae_shape):,} | "
             f"{encoded.vae_ratio:.0f}× |\n\nHalving the size twice while multiplying the channels by ten is "
             "hardly compression: the toy keeps two thirds of the values. The VAE's 4 channels at 1/8 of the side are "
             "a choice, and training makes them enough to rebuild the picture.")
    scale = channel_scale(encoded.features)
    channels = [(upscale(picture, scale), f"toy channel {c}")
                for c, picture in enumerate(latents_to_channel_images(encoded.features)[:4])]
    return channels, facts


@user_errors
def show_posterior(ctx: TabContext, image, seed) -> tuple[list, list, str]:
    seed = pick_seed(seed, False)
    result = ctx.runner.run("posterior", common.load_upload(image, ctx.settings), seed)
    scale = channel_scale(result.mean)
    maps = [(upscale(picture, scale), f"{what}, channel {c}") for c, pair in enumerate(zip(
        latents_to_channel_images(result.mean), latents_to_channel_images(result.std), strict=True))
        for picture, what in zip(pair, ("mean", "std"), strict=True)]
    decoded = [(pixels_to_pil(result.mean_decoded), f"the mean, decoded: {result.mean_psnr_db:.1f} dB vs original")]
    decoded += [(pixels_to_pil(pixels), f"sample {i + 1}, decoded: {value:.1f} dB vs the mean's")
                for i, (pixels, value) in enumerate(zip(result.samples_decoded, result.sample_psnr_db, strict=True))]
    spread = result.std.mean().item() / result.mean.std().item()
    note = (f"The encoder outputs a Gaussian per latent value: a mean and a standard deviation (on average "
            f"{spread:.1%} of the latents' spread). Encode shows the mean, so the same image always gives the same "
            f"latents; img2img draws a sample, as diffusers' img2img does, so its starting point varies a little with "
            f"the seed. Two samples here decode {min(result.sample_psnr_db):.1f}–{max(result.sample_psnr_db):.1f} dB "
            f"from the mean's decode.")
    return maps, decoded, note


ENCODER_INTRO = """### The encoder's side
**The lesson's toy encoder** (two convolutions, untrained) against the VAE's encoder, in values kept; and **the
posterior**: what the VAE encoder really outputs is a distribution."""


def build(ctx: TabContext, image: gr.Image) -> None:
    """The toy encoder and the posterior, on the Encode tab's image."""
    gr.Markdown(ENCODER_INTRO)
    toy_button = gr.Button("Run the lesson's toy encoder", elem_id="toy-button")
    with gr.Row():
        toy_channels = gr.Gallery(label="4 of the toy encoder's 32 channels", columns=4, height="auto", format="png",
                                  elem_id="toy-channels")
        toy_facts = gr.Markdown(elem_id="toy-facts")
    toy_button.click(bound(toy, ctx), [image], [toy_channels, toy_facts], api_name="toy_encoder",
                     concurrency_limit=None)
    with gr.Row():
        seed = gr.Number(label="Seed of the samples", value=0, precision=0, minimum=0, elem_id="posterior-seed")
        run = gr.Button("Show the posterior: mean, spread and samples", elem_id="posterior-button")
    maps = gr.Gallery(label="Per channel: the mean and the standard deviation", columns=4, height="auto",
                      format="png", elem_id="posterior-maps")
    with gr.Row():
        decoded = gr.Gallery(label="The mean and two samples, decoded", columns=3, height="auto", format="png",
                             elem_id="posterior-decoded")
        note = gr.Markdown(elem_id="posterior-note")
    run.click(bound(show_posterior, ctx), [image, seed], [maps, decoded, note],
              **ctx.page_event("posterior"))
    build_cell(ctx, image)
