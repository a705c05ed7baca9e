"""Tab 8, Check yourself: the lesson's questions, marked in the page; nothing is stored."""

from __future__ import annotations

import gradio as gr

from latent_demo.models import Models
from latent_demo.quiz import QUESTIONS, LessonNumbers, Mark, check_answers
from latent_demo.ui.common import TabContext, bound, user_errors
from latent_demo.ui.state import figures
from latent_demo.why_latents import PIXEL_CHANNELS, counted_step_cost

INTRO = """**Check yourself.** Seven questions on what the other tabs showed. Each answer says where to see it with
your own numbers: the figures below come from the tabs you ran, else from the loaded model at 512×512. Your answers
stay in this page; nothing is stored."""

DEFAULT_SIDE = 512  # px: the lesson's running example
DEFAULT_STEPS = 25


def model_numbers(models: Models) -> dict:
    """The figures for a 512×512 image with the loaded model, counted on shapes alone (cached; no GPU)."""
    factor = models.vae_scale_factor
    latent_side = DEFAULT_SIDE // factor
    # in the page's process: from the config and Models.dtype only (ZeroGPU has packed the weights away there)
    latent = counted_step_cost(models.unet, models.unet.config.in_channels, latent_side, latent_side, models.dtype)
    pixel = counted_step_cost(models.unet, PIXEL_CHANNELS, DEFAULT_SIDE, DEFAULT_SIDE, models.dtype)
    return {"pixel_values": DEFAULT_SIDE * DEFAULT_SIDE * PIXEL_CHANNELS,
            "latent_values": models.latent_channels * latent_side * latent_side,
            "flop_ratio": pixel.flops / latent.flops, "steps": DEFAULT_STEPS,
            "attention_ratio": pixel.attention_matrix_bytes / latent.attention_matrix_bytes}


def describe(marks: list[Mark]) -> str:
    score = sum(mark.right for mark in marks)
    lines = [f"### {score} of {len(marks)} right"]
    for number, mark in enumerate(marks, 1):
        verdict = "✓ Right" if mark.right else ("✗ Not answered" if mark.chosen is None else "✗ Not quite")
        answer = "" if mark.right else f" The answer: **{mark.answer}**."
        lines.append(f"**{number}. {mark.question}** {verdict}.{answer} {mark.why}")
    return "\n\n".join(lines)


@user_errors
def check(ctx: TabContext, *answers_and_lesson):
    *answers, lesson = answers_and_lesson
    numbers = LessonNumbers(**{**model_numbers(ctx.models), **figures(lesson).known()})
    return describe(check_answers(list(answers), numbers))


def build(ctx: TabContext) -> None:
    gr.Markdown(INTRO)
    radios = [gr.Radio(list(question.choices), value=None, label=f"{number}. {question.text}",
                       elem_id=f"quiz-{question.key}")
              for number, question in enumerate(QUESTIONS, 1)]
    button = gr.Button("Check my answers", variant="primary", elem_id="quiz-button")
    marks = gr.Markdown(elem_id="quiz-marks")
    button.click(bound(check, ctx), [*radios, ctx.lesson], marks, api_name="check_quiz")
