"""The Encode tab's "Latent spaces compared" section: this model's VAE beside other families' autoencoders
(`--compare-vaes`) on the visitor's image, and one chart of PSNR against compression with the squeezes."""

from __future__ import annotations

import math

import gradio as gr
import pandas as pd
from PIL import Image

from latent_demo.compression import DEFAULT_SQUEEZES, SQUEEZES
from latent_demo.config import Settings
from latent_demo.gpu_budget import fitted_size, vae_seconds
from latent_demo.latent_spaces import LatentSpacesReport, compare_latent_spaces
from latent_demo.models import Models
from latent_demo.other_autoencoders import CANDIDATES
from latent_demo.ui import common
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors

X, Y = "compression (× fewer bits)", "PSNR (dB)"


def compare_job(models: Models, settings: Settings, image: Image.Image, squeezes: list[str], updates
                ) -> LatentSpacesReport:
    """Runs where the GPU is."""
    return compare_latent_spaces(models, image, settings, squeezes)


def compare_seconds(models: Models, settings: Settings, image: Image.Image, squeezes: list[str]) -> int:
    """Encode + decode with this VAE, a decode per squeeze, encode + decode with each extra at its relative cost."""
    passes = 2 + len(squeezes) + sum(2 * extra.cost_in_vae_passes for extra in models.extra_autoencoders)
    return vae_seconds(*fitted_size(*image.size, settings.max_image_side), passes=math.ceil(passes))


JOBS = {"compare_vaes": (compare_job, compare_seconds)}
Outputs = named_outputs("Outputs", "reconstructions error_maps chart table note")


def chart(report: LatentSpacesReport) -> pd.DataFrame:
    """One point per autoencoder and per squeeze: how much each keeps for how few bits."""
    rows = [(space.bit_ratio, space.psnr_db, "autoencoder", space.name) for space in report.spaces]
    rows += [(squeezed.ratio, squeezed.psnr_db, "this VAE's latents squeezed", squeezed.label)
             for squeezed in report.squeezed]
    return pd.DataFrame(rows, columns=[X, Y, "what", "name"])


def table(report: LatentSpacesReport) -> str:
    shape = lambda dims: "×".join(map(str, dims))  # noqa: E731
    rows = "\n".join(
        f"| {s.name} | {s.architecture} | {s.down_factor}× | {s.channels} | {shape(s.latent_shape)} | "
        f"{s.latent_values:,} | {s.value_ratio:.0f}× | {s.bit_ratio:.0f}× | {s.scaling_factor:g} / "
        f"{s.shift_factor:g} | {s.psnr_db:.2f} dB | {s.encode_seconds:.2f} s / {s.decode_seconds:.2f} s |"
        for s in report.spaces)
    image = report.image
    return (f"The image: {image.width}×{image.height}×3 = **{report.spaces[0].pixel_values:,} values** "
            f"({report.pixel_bits:,} bits as 8-bit pixels; latents counted as 16-bit floats).\n\n"
            f"| autoencoder | class | down | channels | latents | values | fewer values | fewer bits "
            f"| scaling / shift | PSNR vs original | encode / decode |\n" + "|---" * 11 + f"|\n{rows}")


def verdict(report: LatentSpacesReport) -> str:
    """Each other autoencoder against this VAE's latents squeezed to a similar size (within 2×), on this image:
    trained for its budget, or squeezed after training."""
    if len(report.spaces) == 1:
        return ("No other autoencoder is loaded: start the app with `--compare-vaes " + ",".join(CANDIDATES)
                + "` (or Hub ids, or local folders) to put other families' latent spaces beside this one.")
    own, lines = report.spaces[0], []
    for space in report.spaces[1:]:
        line = (f"- **{space.name}** ({space.down_factor}× down, {space.channels} channels): {space.psnr_db:.1f} dB "
                f"at {space.bit_ratio:.0f}× fewer bits")
        distance = lambda squeezed: abs(math.log(squeezed.ratio / space.bit_ratio))  # noqa: B023, E731
        near = min(report.squeezed, key=distance, default=None)
        if near is not None and distance(near) <= math.log(2):
            line += (f"; this VAE's latents squeezed to a similar size ({near.label}, {near.ratio:.0f}×) keep "
                     f"{near.psnr_db:.1f} dB")
        else:
            line += (f"; this VAE's own latents ({own.bit_ratio:.0f}×) keep {own.psnr_db:.1f} dB, and no squeeze "
                     "shown comes within 2× of its size")
        lines.append(line + ".")
    return ("Each family chose its latent space, and trained its encoder and decoder for it. On your image:\n"
            + "\n".join(lines) + "\n\nMore channels keep more at the same down-factor; a deeper encoder goes further "
            "down. Weights matter as much as the shape: an untrained or badly trained autoencoder keeps little at any "
            "size.")


@user_errors
def compare_vaes(ctx: TabContext, image, squeezes=DEFAULT_SQUEEZES) -> Outputs:
    report = ctx.runner.run("compare_vaes", common.load_upload(image, ctx.settings), list(squeezes or []))
    caption = lambda s: f"{s.name}: {s.down_factor}× down, {s.channels} ch, {s.psnr_db:.1f} dB"  # noqa: E731
    return Outputs(reconstructions=[(s.reconstruction, caption(s)) for s in report.spaces],
                   error_maps=[(s.error_map, s.name) for s in report.spaces], chart=chart(report),
                   table=table(report), note=verdict(report))


INTRO = """### Latent spaces compared
How other model families chose their latent space, on your image: SD 1.x/2.x and SDXL go 8× down with 4 channels,
FLUX.1 and SD3 8× down with 16 channels, DC-AE 32× down with 32 channels. Each autoencoder encodes and decodes the
same pixels; the chart puts them beside the squeezes of "What compression keeps"."""


def build(ctx: TabContext, image: gr.Image) -> None:
    gr.Markdown(INTRO)
    loaded = ", ".join(extra.name for extra in ctx.models.extra_autoencoders) or "none (see `--compare-vaes`)"
    with gr.Row():
        squeezes = gr.CheckboxGroup(list(SQUEEZES), value=DEFAULT_SQUEEZES, label="Squeezes to put on the chart",
                                    elem_id="spaces-squeezes")
        run = gr.Button(f"Compare latent spaces (also loaded: {loaded})", elem_id="spaces-button")
    # one row of pictures each, full width: in a gr.Row two galleries keep a tall empty frame under their pictures
    reconstructions = gr.Gallery(label="Each autoencoder's reconstruction", columns=4, height="auto", format="png",
                                 elem_id="spaces-reconstructions")
    error_maps = gr.Gallery(label="Their error maps", columns=4, height="auto", format="png", elem_id="spaces-errors")
    with gr.Row():
        plot = gr.ScatterPlot(x=X, y=Y, color="what", title="PSNR against compression: autoencoders and squeezes",
                              tooltip=["name", X, Y], elem_id="spaces-chart")
        note = gr.Markdown(elem_id="spaces-note")
    facts = gr.Markdown(elem_id="spaces-table")
    outputs = Outputs(reconstructions=reconstructions, error_maps=error_maps, chart=plot, table=facts, note=note)
    run.click(bound(compare_vaes, ctx), [image, squeezes], list(outputs),
              **ctx.page_event("compare_vaes"))
