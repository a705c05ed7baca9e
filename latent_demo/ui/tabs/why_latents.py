"""Tab 7, Why latents: one UNet step on the latents against the same UNet on the pixels, for the loaded model."""

from __future__ import annotations

import gradio as gr

from latent_demo.config import Settings
from latent_demo.gpu_budget import generation_seconds
from latent_demo.models import Models
from latent_demo.params import MAX_GUIDANCE, check_float, check_int
from latent_demo.ui.common import TabContext, bound, named_outputs, user_errors
from latent_demo.ui.state import LessonFigures, figures
from latent_demo.why_latents import WhyLatents, why_latents

INTRO = """**Why does Stable Diffusion denoise latents, not pixels?** Because every step runs the whole UNet. Below,
the loaded model's UNet is counted twice: as it runs, on the 4 latent channels, and as the same architecture would
run on the 3 colour channels at full size. Nothing is run at pixel size: both are counted on shapes alone (PyTorch's
FLOP counter on the meta device), and one real step on the latents is timed on this machine."""


Outputs = named_outputs("Outputs", "table lesson")


def why_job(models: Models, settings: Settings, side: int, steps: int, guidance: float, updates) -> WhyLatents:
    """Runs where the GPU is (the one timed step)."""
    return why_latents(models, side, side, steps, guidance)


def why_seconds(models: Models, settings: Settings, side: int, steps: int, guidance: float) -> int:
    return generation_seconds(2, 0.0, side, side, vae_passes=0)  # at most a warm-up call and the timed one


JOBS = {"why_latents": (why_job, why_seconds)}  # what this tab runs where the GPU is (registered by ui/app.py)


def size_text(count: float, unit: str, base: int = 1000) -> str:
    """1.5e12, "B" -> "1.5 TB"; FLOPs use base 1000, bytes too (as disks do)."""
    for prefix in ("", "k", "M", "G", "T", "P", "E"):
        if abs(count) < base or prefix == "E":
            return f"{count:,.1f} {prefix}{unit}" if prefix else f"{count:,.0f} {unit}"
        count /= base
    raise AssertionError("unreachable")


def seconds_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.2f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def describe(report: WhyLatents) -> str:
    latent, pixel = report.latent, report.pixel
    rows = [
        ("values the UNet reads", f"{latent.channels}×{latent.height}×{latent.width} = {latent.values:,}",
         f"{pixel.channels}×{pixel.height}×{pixel.width} = {pixel.values:,}", pixel.values / latent.values),
        ("FLOPs of one UNet call", size_text(latent.flops, "FLOP"), size_text(pixel.flops, "FLOP"),
         report.flop_ratio),
        ("activations alive at once", size_text(latent.peak_activation_bytes, "B"),
         size_text(pixel.peak_activation_bytes, "B"), pixel.peak_activation_bytes / latent.peak_activation_bytes),
        ("tokens in the largest self-attention", f"{latent.attention_tokens:,}", f"{pixel.attention_tokens:,}",
         pixel.attention_tokens / latent.attention_tokens),
        ("its attention scores, if stored", size_text(latent.attention_matrix_bytes, "B"),
         size_text(pixel.attention_matrix_bytes, "B"), pixel.attention_matrix_bytes / latent.attention_matrix_bytes),
    ]
    if report.latent_step_seconds is None:
        rows.append(("one UNet call on this machine", "timing one call…", "", report.flop_ratio))
    else:
        rows += [("one UNet call on this machine", seconds_text(report.latent_step_seconds) + " (measured)",
                  seconds_text(report.pixel_step_seconds) + " (estimated)", report.flop_ratio),
                 (f"a {report.steps}-step image ({report.unet_calls_per_step} call(s) per step)",
                  seconds_text(report.image_seconds(report.latent_step_seconds)),
                  seconds_text(report.image_seconds(report.pixel_step_seconds)), report.flop_ratio)]
    table = "\n".join(f"| {what} | {a} | {b} | {ratio:,.0f}× |" for what, a, b, ratio in rows)
    token_ratio = pixel.attention_tokens / latent.attention_tokens
    return (f"| one UNet step | on latents | on pixels | pixels ÷ latents |\n|---|---|---|---|\n{table}\n\n"
            f"**{pixel.values / latent.values:,.0f}× more values cost {report.flop_ratio:,.0f}× the FLOPs.** "
            f"Convolutions grow with the number of values; attention compares every token with every other, so "
            f"{token_ratio:,.0f}× the tokens means {token_ratio**2:,.0f}× the scores. The pixel time assumes this "
            f"machine keeps the FLOP rate it reaches on latents (optimistic: larger activations run slower). "
            f"Memory counts the model's dtype, batch 1, with attention computed without storing its scores (as "
            f"PyTorch's fused attention does); weights are not counted.")


@user_errors
def count(ctx: TabContext, side, steps, guidance, lesson: LessonFigures | None):
    side = check_int("image side", side, ctx.settings.min_image_side, ctx.settings.max_image_side)
    if side % ctx.models.vae_scale_factor:
        raise ValueError(f"image side must be a multiple of {ctx.models.vae_scale_factor}, got {side}")
    steps = check_int("steps", steps, 1, ctx.settings.max_steps)
    guidance = check_float("guidance scale", guidance, 0.0, MAX_GUIDANCE)
    # the counts first (shapes only, here, seconds at most), then the timed step where the GPU is
    yield Outputs(table=describe(why_latents(ctx.models, side, side, steps, guidance, measure=False)))
    report = ctx.runner.run("why_latents", side, steps, guidance)
    seen = figures(lesson).measured(
        flop_ratio=report.flop_ratio, steps=steps,
        attention_ratio=report.pixel.attention_matrix_bytes / report.latent.attention_matrix_bytes,
        pixel_image_seconds=report.image_seconds(report.pixel_step_seconds),
        latent_image_seconds=report.image_seconds(report.latent_step_seconds))
    yield Outputs(table=describe(report), lesson=seen)


def build(ctx: TabContext) -> None:
    models, settings = ctx.models, ctx.settings
    step = models.vae_scale_factor
    gr.Markdown(INTRO)
    with gr.Row():
        side = gr.Slider(max(settings.min_image_side, step), settings.max_image_side // step * step,
                         value=min(512, settings.max_image_side // step * step), step=step,
                         label="Image side (px)", elem_id="why-side")
        steps = gr.Slider(1, settings.max_steps, value=min(25, settings.max_steps), step=1, label="Steps",
                          elem_id="why-steps")
        guidance = gr.Slider(0, MAX_GUIDANCE, value=7.5, step=0.5, label="Guidance scale (> 1: two UNet calls a step)",
                             elem_id="why-guidance")
    run = gr.Button("Count and measure", variant="primary", elem_id="why-button")
    table = gr.Markdown(elem_id="why-table")
    run.click(bound(count, ctx), [side, steps, guidance, ctx.lesson], list(Outputs(table=table, lesson=ctx.lesson)),
              **ctx.model_job(api_name="why_latents"))
