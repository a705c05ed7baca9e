"""Tab 1, Encode: image -> latents (channels, numbers) -> decoded back, with the error it leaves."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from latent_demo.compression import (
    DEFAULT_SQUEEZES,
    LINEAR_DECODER,
    SQUEEZES,
    CompressionReport,
    Decoded,
    compare_compression,
)
from latent_demo.config import Settings
from latent_demo.encoding import EncodeReport, encode_image
from latent_demo.gpu_budget import fitted_size, vae_seconds
from latent_demo.images import pixels_to_pil
from latent_demo.latents import latents_to_pixels
from latent_demo.latents_upload import read_latents_file
from latent_demo.models import Models
from latent_demo.serving.files import latents_file
from latent_demo.ui import common, encoder_views, latent_spaces_view
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.examples import example_images
from latent_demo.ui.pictures import channel_scale, upscale
from latent_demo.ui.state import EncodedImage, LessonFigures, figures

INTRO = """**The VAE encoder squeezes pixels into latents.** Every 8×8×3 patch of pixels becomes 4 numbers. Below:
the 4 latent channels (blue = negative, white = 0, red = positive, each channel scaled to its own range), the
decoder's attempt to rebuild the image from them, and where it fails (the error map: black = exact)."""


@dataclass
class EncodeTab:
    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button


def describe(report: EncodeReport, source: str) -> str:
    stats = "\n".join(f"| {s.channel} | {s.mean:+.3f} | {s.std:.3f} | {s.min:+.3f} | {s.max:+.3f} |"
                      for s in report.stats)
    t = report.timings
    return (f"**{report.facts.describe()}**\n\n"
            f"Latent tensor shape `{tuple(report.latents.shape)}` (batch, channels, height, width), values already "
            f"× the VAE's scaling factor. Reconstruction PSNR **{report.psnr_db:.2f} dB** "
            f"(decoded with the {source}).\n\n"
            f"| channel | mean | std | min | max |\n|---|---|---|---|---|\n{stats}\n\n"
            f"Timing: encode {t['encode']:.2f} s · decode {t['decode']:.2f} s · total {t['total']:.2f} s")


COMPRESS_INTRO = """### What compression keeps
The same latents through each decoder, then squeezed further before the full VAE decodes them: pooled (fewer latent
cells), fewer channels (the rest set to 0), or fewer bits per value. Sizes are counted in **bits as stored**: pixels
8 bits a value, latents 16-bit floats, so the VAE's 48× fewer values are 24× fewer bits. Two classic mistakes show up
here: judging latents by a weak decoder, and squeezing until the structure is gone."""


Outputs = named_outputs("Outputs", "channels facts original reconstruction error_map latents_file encoded lesson")


CompressOutputs = named_outputs("CompressOutputs", "decoders squeezed curve table lesson")


def encode_job(models: Models, settings: Settings, image: Image.Image, fast_decode: bool, updates) -> EncodeReport:
    """Runs where the GPU is."""
    return encode_image(models, image, settings, fast_decode=fast_decode)


def encode_seconds(models: Models, settings: Settings, image: Image.Image, fast_decode: bool) -> int:
    width, height = fitted_size(*image.size, settings.max_image_side)
    return vae_seconds(width, height, passes=2)


def compress_job(models: Models, settings: Settings, image: Image.Image, squeezes: list[str], updates
                 ) -> CompressionReport:
    """Runs where the GPU is."""
    return compare_compression(models, image, settings, squeezes)


def compress_seconds(models: Models, settings: Settings, image: Image.Image, squeezes: list[str]) -> int:
    width, height = fitted_size(*image.size, settings.max_image_side)
    return vae_seconds(width, height, passes=3 + len(squeezes))  # encode, two decoders, one decode per squeeze


def decode_job(models: Models, settings: Settings, latents: torch.Tensor, updates) -> Image.Image:
    """Runs where the GPU is."""
    return pixels_to_pil(latents_to_pixels(models.vae, latents))


def decode_seconds(models: Models, settings: Settings, latents: torch.Tensor) -> int:
    factor = models.vae_scale_factor
    return vae_seconds(latents.shape[3] * factor, latents.shape[2] * factor, passes=1)


# what this tab runs where the GPU is (registered by ui/app.py)
JOBS = {"encode": (encode_job, encode_seconds), "compress": (compress_job, compress_seconds),
        "decode_latents": (decode_job, decode_seconds), **encoder_views.JOBS, **latent_spaces_view.JOBS}
DecodeOutputs = named_outputs("DecodeOutputs", "decoded facts encoded")


@user_errors
def decode_latents(ctx: TabContext, latents_file) -> DecodeOutputs:
    """A visitor's latents file, checked (latents_upload.py), decoded by the full VAE, and kept for the hand-offs."""
    if not latents_file:
        raise ValueError("please upload a .safetensors latents file first (Encode's or Generate's download)")
    models, settings = ctx.models, ctx.settings
    latents, metadata = read_latents_file(latents_file, models.latent_channels, settings.min_image_side,
                                          settings.max_image_side, models.vae_scale_factor)
    image = ctx.runner.run("decode_latents", latents)
    made_by = metadata.get("model")
    warning = ("" if made_by in (None, models.source) else
               f"\n\n⚠️ These latents say they were made by **{made_by}**; they are decoded by **{models.source}**'s "
               "VAE. Latents from another autoencoder decode wrongly: each latent space is its own.")
    facts = (f"Decoded latents of shape `{tuple(latents.shape)}` into a {image.width}×{image.height} image, with no "
             f"encoder involved. Send them on with \"Use these latents in img2img\" above.{warning}")
    handed = EncodedImage(latents, image, source="an uploaded latents file")
    return DecodeOutputs(decoded=image, facts=facts, encoded=handed)


@user_errors
def encode(ctx: TabContext, image, fast_decode, lesson: LessonFigures | None = None) -> Outputs:
    report = ctx.runner.run("encode", common.load_upload(image, ctx.settings), bool(fast_decode))
    scale = channel_scale(report.latents)
    gallery = [(upscale(image, scale), f"channel {s.channel}: mean {s.mean:+.2f}, std {s.std:.2f}")
               for image, s in zip(report.channel_images, report.stats, strict=True)]
    source = "fast decoder" if fast_decode else "full VAE decoder"
    seen = figures(lesson).measured(pixel_values=report.facts.pixel_values, latent_values=report.facts.latent_values)
    if not fast_decode:
        seen = seen.measured(psnr_db=report.psnr_db)
    return Outputs(channels=gallery, facts=describe(report, source), original=report.image,
                   reconstruction=report.reconstruction, error_map=report.error_map,
                   latents_file=latents_file(report.latents, ctx.models),
                   encoded=EncodedImage(report.latents, report.image, source="the Encode tab"), lesson=seen)


def decoded_caption(decoded: Decoded) -> str:
    return f"{decoded.label}: {decoded.psnr_db:.1f} dB, {decoded.ratio:.0f}× fewer bits, {decoded.seconds:.2f} s"


def psnr_curve(report: CompressionReport) -> pd.DataFrame:
    """PSNR against compression, one line per kind of squeeze, each starting from the unsqueezed latents."""
    full = report.decoders[0]
    rows = []
    for kind in dict.fromkeys(kind for kind, _ in SQUEEZES.values()):
        points = [full] + [d for d in report.squeezed if SQUEEZES[d.label][0] == kind]
        rows += [(d.ratio, d.psnr_db, kind, d.label) for d in points] if len(points) > 1 else []
    return pd.DataFrame(rows, columns=["compression (× fewer bits)", "PSNR (dB)", "squeeze", "variant"])


def compress_table(report: CompressionReport) -> str:
    rows = "\n".join(f"| {d.label} | {d.stored_bits:,} | {d.ratio:.0f}× | {d.psnr_db:.2f} dB | {d.seconds:.2f} s |"
                     for d in report.decoders + report.squeezed)
    return (f"The original: {report.image.width}×{report.image.height}×3 × 8 bits = **{report.pixel_bits:,} bits**."
            f"\n\n| decoded from | bits stored | fewer bits | PSNR vs original | decode time |\n"
            f"|---|---|---|---|---|\n{rows}")


@user_errors
def compress(ctx: TabContext, image, squeezes, lesson: LessonFigures | None) -> CompressOutputs:
    report = ctx.runner.run("compress", common.load_upload(image, ctx.settings), list(squeezes or []))
    linear = next(d for d in report.decoders if d.label == LINEAR_DECODER)
    return CompressOutputs(decoders=[(d.image, decoded_caption(d)) for d in report.decoders],
                           squeezed=[(d.image, decoded_caption(d)) for d in report.squeezed],
                           curve=psnr_curve(report), table=compress_table(report),
                           lesson=figures(lesson).measured(psnr_db=report.decoders[0].psnr_db,
                                                       linear_psnr_db=linear.psnr_db))


def build(ctx: TabContext) -> EncodeTab:
    models, settings = ctx.models, ctx.settings
    handler = bound(encode, ctx)

    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column():
            image = common.image_upload(settings, label="Image to encode", elem_id="encode-input")
            fast = gr.Checkbox(label="Decode with the fast (TAESD) decoder", value=False,
                               visible=models.fast_decoder is not None)
            run = gr.Button("Encode", variant="primary", elem_id="encode-button")
        facts = gr.Markdown(elem_id="encode-facts")
    channels = gr.Gallery(label="The latent channels", columns=4, height="auto", format="png",
                          elem_id="encode-channels")
    with gr.Row():
        original = gr.Image(label="Original (as encoded)", type="pil", format="png", elem_id="encode-original")
        reconstruction = gr.Image(label="Decoded from the latents", format="png", elem_id="encode-reconstruction")
        error_map = gr.Image(label="Error map (black = exact, white = off by half the range)", format="png",
                             elem_id="encode-error")
    with gr.Row():
        download = gr.File(label="Latents as .safetensors (tensor 'latents')", elem_id="encode-download")
        with gr.Column():
            to_img2img = gr.Button("Use these latents in img2img →", elem_id="send-img2img")
            to_inpaint = gr.Button("Use this image for inpainting →", elem_id="send-inpaint")
    outputs = list(Outputs(channels=channels, facts=facts, original=original, reconstruction=reconstruction,
                           error_map=error_map, latents_file=download, encoded=ctx.encoded, lesson=ctx.lesson))
    run.click(handler, [image, fast, ctx.lesson], outputs, **ctx.page_event("encode"))
    remembered = bound(encode, ctx.remembering())  # computed once per image for every visitor
    ctx.examples([[path] for path in example_images()], [image], remembered, [image, fast, ctx.lesson], outputs,
                 "Examples (click one to encode it)")
    build_compression(ctx, image)
    latent_spaces_view.build(ctx, image)
    encoder_views.build(ctx, image)
    build_decode(ctx)
    return EncodeTab(send_to_img2img=to_img2img, send_to_inpaint=to_inpaint)


def build_compression(ctx: TabContext, image: gr.Image) -> None:
    """The 'What compression keeps' section, on the Encode tab's image."""
    gr.Markdown(COMPRESS_INTRO)
    with gr.Row():
        squeezes = gr.CheckboxGroup(list(SQUEEZES), value=DEFAULT_SQUEEZES, label="Squeeze the latents further",
                                    elem_id="compress-squeezes")
        run = gr.Button("Compare decoders and squeeze", elem_id="compress-button")
    decoders = gr.Gallery(label="The same latents, each decoder (PSNR against the original)", columns=3,
                          height="auto", format="png", elem_id="compress-decoders")
    squeezed = gr.Gallery(label="Squeezed further, decoded by the full VAE", columns=4, height="auto", format="png",
                          elem_id="compress-squeezed")
    with gr.Row():
        curve = gr.LinePlot(x="compression (× fewer bits)", y="PSNR (dB)", color="squeeze",
                            title="PSNR against compression", elem_id="compress-curve")
        table = gr.Markdown(elem_id="compress-table")
    outputs = CompressOutputs(decoders=decoders, squeezed=squeezed, curve=curve, table=table, lesson=ctx.lesson)
    encoder_views.build_grid(ctx, image)
    run.click(bound(compress, ctx), [image, squeezes, ctx.lesson], list(outputs),
              **ctx.page_event("compress"))


DECODE_INTRO = """### Decode latents
Each step of the flow stands alone: latents saved from Encode or Generate (`.safetensors`, one 4×H×W tensor) come
back here, decode without any encoder, and can start img2img. Only the safetensors format is read."""


def build_decode(ctx: TabContext) -> None:
    """The 'Decode latents' section: a latents file in, its decode and the hand-off state out."""
    gr.Markdown(DECODE_INTRO)
    with gr.Row():
        upload = gr.File(label="A latents file (.safetensors)", file_types=[".safetensors"], type="filepath",
                         elem_id="decode-input")
        run = gr.Button("Decode these latents", elem_id="decode-button")
    with gr.Row():
        decoded = gr.Image(label="Decoded", format="png", elem_id="decode-image")
        facts = gr.Markdown(elem_id="decode-facts")
    outputs = DecodeOutputs(decoded=decoded, facts=facts, encoded=ctx.encoded)
    run.click(bound(decode_latents, ctx), [upload], list(outputs), **ctx.model_job(api_name="decode_latents"))


