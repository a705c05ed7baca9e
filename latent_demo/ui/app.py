"""The app: intro, offline banner, one tab per stage of the latent flow, and the cross-tab wiring."""

from __future__ import annotations

import logging

import gradio as gr
from PIL import Image

from latent_demo import openmp
from latent_demo.config import Settings
from latent_demo.models import Models
from latent_demo.offline_model import HELD_OUT_PSNR_DB
from latent_demo.serving import files, gradio_compat, no_url_fetch
from latent_demo.serving.example_cache import RememberingRunner
from latent_demo.serving.runner import ModelRunner
from latent_demo.ui import lesson_script_api, script_api
from latent_demo.ui.common import TabContext
from latent_demo.ui.examples import ASSETS
from latent_demo.ui.state import EncodedImage, LastRun
from latent_demo.ui.tabs import encode, generate, img2img, inpaint, noise, quiz, seed_walk, why_latents

log = logging.getLogger(__name__)
TITLE = "latent-demo: see how latent diffusion works"
# Step pictures come at 4 px per latent cell (serving/previews.PREVIEW_CELL_PX): the page enlarges them to fill their
# frame, with hard edges, so each latent cell stays a visible square.
# The banner keeps its own colours in both themes: amber on cream, dark text (contrast ≈ 13:1; a light theme's text
# colour on it would be unreadable in dark mode).
CSS = ("#offline-banner {border: 2px solid #d97706; border-radius: 8px; padding: 4px 12px; background: #fef3c7}\n"
       "#offline-banner, #offline-banner * {color: #451a03 !important}\n"
       ".latent-steps img {image-rendering: pixelated; object-fit: contain !important}")


def intro(models: Models) -> str:
    return (f"# {TITLE}\n"
            "Stable Diffusion never works on pixels directly. The **VAE encoder** turns an image into a small "
            "**latent** tensor (512×512×3 = 786,432 values → 4×64×64 = 16,384); the **UNet** removes noise from "
            "latents step by step, guided by the **text encoder**; the **VAE decoder** turns latents back into "
            "pixels. Each tab shows one part of that flow.\n\n"
            f"Model: **{models.source}** on {models.device.type} ({str(models.dtype).removeprefix('torch.')}). "
            f"Inpainting by {models.inpaint_method.split(' (')[0]}.")


def offline_banner(models: Models) -> str:
    reason = f" Reason: {models.fallback_reason}." if models.fallback_reason else ""
    return ("⚠️ **Offline model in use.** Its VAE is trained: encoding, decoding, compression and the noise explorer "
            f"show real pictures (it rebuilds the example photos at {HELD_OUT_PSNR_DB:.1f} dB PSNR, none of them seen "
            "in training). Its UNet and text encoder are untrained, random weights: generated pictures are "
            "noise-like, not photos." + reason)


TABS = (encode, generate, img2img, inpaint, noise, seed_walk, why_latents, quiz)


def model_runner(models: Models, settings: Settings) -> ModelRunner:
    """The runner with every tab's jobs registered."""
    runner = ModelRunner(models, settings)
    for tab in TABS:
        for name, (job, estimate) in getattr(tab, "JOBS", {}).items():
            runner.register(name, job, estimate)
    return runner


def build_app(models: Models, settings: Settings) -> gr.Blocks:
    """Build the UI around already-loaded models; nothing is loaded or launched here."""
    if settings.preview == "fast" and models.fast_decoder is None:
        log.warning("--preview fast asked for, but no fast decoder is loaded: previews use the linear approximation")
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(intro(models), elem_id="intro")
        if models.is_untrained:
            gr.Markdown(offline_banner(models), elem_id="offline-banner")
        encoded = gr.State(None, time_to_live=settings.state_ttl_s)
        lesson = gr.State(None, time_to_live=settings.state_ttl_s)
        runner = model_runner(models, settings)
        ctx = TabContext(models=models, settings=settings, encoded=encoded, runner=runner, lesson=lesson,
                         example_runner=RememberingRunner(runner))
        # the forms for scripts (one answer, no streaming; /generate, /img2img, /inpaint, /encode and the lesson's
        # views with many pictures): built first, so they take those names before Gradio names the tabs' unnamed
        # events after their functions
        script_api.build(ctx)
        lesson_script_api.build(ctx)
        with gr.Tabs() as tabs:
            with gr.Tab("1 · Encode", id="encode"):
                encode_tab = encode.build(ctx)
            with gr.Tab("2 · Generate", id="generate"):
                generate_tab = generate.build(ctx)
            with gr.Tab("3 · img2img", id="img2img"):
                img2img_tab = img2img.build(ctx)
            with gr.Tab("4 · Inpainting", id="inpaint"):
                inpaint_editor = inpaint.build(ctx)
            with gr.Tab("5 · Noise explorer", id="noise"):
                noise.build(ctx)
            with gr.Tab("6 · Seed walk", id="seed-walk"):
                seed_walk.build(ctx)
            with gr.Tab("7 · Why latents", id="why-latents"):
                why_latents.build(ctx)
            with gr.Tab("8 · Check yourself", id="quiz"):
                quiz.build(ctx)
        _wire_sends(encode_tab, generate_tab, img2img_tab, inpaint_editor, encoded, tabs)
    demo.queue(max_size=settings.queue_max_size, default_concurrency_limit=settings.concurrency_limit)
    return demo


def launch(demo: gr.Blocks, settings: Settings, **extra) -> None:
    """Check and install the Gradio patches (gradio_compat), start the cache clean-up, then serve: the only way the
    app is started."""
    gradio_compat.apply(demo, settings)
    files.start_cache_cleanup(demo, settings.cache_max_age_s)  # instead of delete_cache=...: see its docstring
    files.remove_scratch_at_exit()
    openmp.release_threads()  # loading ran parallel operators here: only the model's thread should keep a team
    demo.launch(**launch_options(settings), **extra)


def _wire_sends(encode_tab: encode.EncodeTab, generate_tab: generate.GenerateTab, img2img_tab: img2img.Img2ImgTab,
                inpaint_editor: gr.ImageEditor, encoded: gr.State, tabs: gr.Tabs) -> None:
    """The send buttons hand a result on (latents where the target uses them, no re-encode); only this module
    knows both ends. Encode's result lives in `encoded`; Generate's and img2img's in their `last_run`."""
    def to_img2img(state: EncodedImage | None):
        if state is None:
            raise gr.Error("encode an image first")
        return gr.Tabs(selected="img2img"), img2img.FROM_ENCODE

    def generated_to_img2img(last: LastRun | None):
        if last is None:
            raise gr.Error("generate an image first")
        handed = EncodedImage(last.latents, last.image, "the Generate tab")
        return gr.Tabs(selected="img2img"), img2img.FROM_ENCODE, handed

    def to_inpaint(image: Image.Image):
        return gr.Tabs(selected="inpaint"), {"background": image, "layers": [], "composite": image}

    def encoded_to_inpaint(state: EncodedImage | None):
        if state is None:
            raise gr.Error("encode an image first")
        return to_inpaint(state.image)

    def result_to_inpaint(last: LastRun | None):
        if last is None:
            raise gr.Error("run it first: there is no result to send yet")
        return to_inpaint(last.image)

    private = {"api_visibility": "private"}
    encode_tab.send_to_img2img.click(to_img2img, [encoded], [tabs, img2img_tab.source], **private)
    encode_tab.send_to_inpaint.click(encoded_to_inpaint, [encoded], [tabs, inpaint_editor], **private)
    generate_tab.send_to_img2img.click(generated_to_img2img, [generate_tab.last_run],
                                       [tabs, img2img_tab.source, encoded], **private)
    for tab in (generate_tab, img2img_tab):
        tab.send_to_inpaint.click(result_to_inpaint, [tab.last_run], [tabs, inpaint_editor], **private)


def launch_options(settings: Settings) -> dict:
    """Everything launch() needs: server limits, the allowed paths, theme and CSS (Gradio 6 takes them here)."""
    return {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "max_file_size": f"{settings.max_file_size_mb}mb",
        "state_session_capacity": settings.max_sessions,
        "run_history": False,  # Gradio 6's run history page (and its option to upload runs to the Hub): off
        "allowed_paths": [str(ASSETS)],
        "app_kwargs": {"middleware": no_url_fetch.middleware()},
        "ssr_mode": False,
        "css": CSS,
        "theme": gr.themes.Soft(),
    }
