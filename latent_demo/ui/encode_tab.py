"""Tab 1, Encode: image -> latents (channels, numbers) -> decoded back, with the error it leaves."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image

from latent_demo.config import Settings
from latent_demo.encoding import EncodeReport, encode_image
from latent_demo.gpu_budget import fitted_size, vae_seconds
from latent_demo.models import Models
from latent_demo.ui import common
from latent_demo.ui.common import TabContext, bound, user_errors
from latent_demo.ui.examples import example_images
from latent_demo.ui.files import latents_file

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


def encode_job(models: Models, settings: Settings, image: Image.Image, fast_decode: bool, updates) -> EncodeReport:
    """Runs where the GPU is."""
    return encode_image(models, image, settings, fast_decode=fast_decode)


def encode_seconds(settings: Settings, image: Image.Image, fast_decode: bool) -> int:
    width, height = fitted_size(*image.size, settings.max_image_side)
    return vae_seconds(width, height, passes=2)


JOBS = {"encode": (encode_job, encode_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


@user_errors
def encode(ctx: TabContext, image, fast_decode):
    report = ctx.runner.run("encode", common.load_upload(image, ctx.settings), bool(fast_decode))
    scale = common.channel_scale(report.latents)
    gallery = [(common.upscale(image, scale), f"channel {s.channel}: mean {s.mean:+.2f}, std {s.std:.2f}")
               for image, s in zip(report.channel_images, report.stats, strict=True)]
    source = "fast decoder" if fast_decode else "full VAE decoder"
    state = {"latents": report.latents, "image": report.image}
    return (gallery, describe(report, source), report.image, report.reconstruction, report.error_map,
            latents_file(report.latents, ctx.models), state)


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
    outputs = [channels, facts, original, reconstruction, error_map, download, ctx.encoded]
    run.click(handler, [image, fast], outputs, **ctx.model_job(api_name="encode"))
    ctx.examples([[path] for path in example_images()], [image], handler, [image, fast], outputs,
                 "Examples (click one to encode it)")
    return EncodeTab(send_to_img2img=to_img2img, send_to_inpaint=to_inpaint)
