"""Check yourself: the lesson's questions, marked, each answer explained with the visitor's own numbers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    choices: tuple[str, ...]
    answer: str  # one of choices
    why: str  # the explanation, with {placeholders} filled from LessonNumbers.fields()


QUESTIONS = (
    Question("purpose", "What is the main purpose of latent space?",
             ("To store the training images", "To hold a compressed representation that keeps what matters",
              "To add noise to images", "To translate text into pixels"),
             "To hold a compressed representation that keeps what matters",
             "Encode tab: {pixel_values} pixel values became {latent_values} latents ({value_ratio}× fewer)"
             "{rebuilt}."),
    Question("benefit", "What is the main benefit of denoising in latent space?",
             ("Sharper images than pixel diffusion", "Far less computation and memory per step",
              "No need for a text encoder", "Fewer random seeds to choose from"),
             "Far less computation and memory per step",
             "Why latents tab: one UNet step on pixels costs {flop_ratio}× the FLOPs of the same step on latents, "
             "and its largest attention layer would hold {attention_ratio}× the scores."),
    Question("encoder", "Which component creates the latent representation?",
             ("The UNet", "The VAE encoder", "The text encoder", "The scheduler"),
             "The VAE encoder",
             "Encode tab: the VAE encoder turned your image into the 4 latent channels shown there; every 8×8×3 "
             "patch of pixels became 4 numbers."),
    Question("where", "Where does modern diffusion (Stable Diffusion and its successors) usually operate?",
             ("Directly on pixels", "In a learned latent space", "In the frequency domain", "On text tokens"),
             "In a learned latent space",
             "Generate tab: the run starts from the seed's noise latents (4 channels, 1/8 of the image's side) and "
             "only the final latents go through the VAE decoder."),
    Question("reason", "What is the main reason for latent diffusion?",
             ("Pixel-space diffusion at high resolution is too expensive", "Latents are easier to draw by hand",
              "The VAE makes images more colourful", "Text prompts only work on latents"),
             "Pixel-space diffusion at high resolution is too expensive",
             "Why latents tab: {image_times}."),
    Question("decoder", "What reconstructs data from latent space?",
             ("The VAE decoder", "The UNet", "The noise scheduler", "The safety checker"),
             "The VAE decoder",
             "Encode tab, 'What compression keeps': {decoders}."),
    Question("predicts", "What does the UNet learn to predict from the noisy latents x_t?",
             ("The noise that was added to the latents", "The text prompt", "The VAE's scaling factor",
              "The pixels of the next step"),
             "The noise that was added to the latents",
             "Noise explorer, 'What the UNet learned': {noise_loss}. The model still learns to predict and remove "
             "noise, just on compressed representations."),
)


@dataclass(frozen=True)
class LessonNumbers:
    """The figures the explanations quote: the visitor's own where they ran the tab, else the loaded model's."""

    pixel_values: int
    latent_values: int
    flop_ratio: float
    attention_ratio: float
    steps: int
    pixel_image_seconds: float | None = None  # from the Why latents tab, once it has run
    latent_image_seconds: float | None = None
    psnr_db: float | None = None  # from the Encode tab, once an image was encoded
    linear_psnr_db: float | None = None  # from 'What compression keeps', once it has run
    noise_loss: float | None = None  # from 'What the UNet learned', once it has run
    noise_loss_timestep: int | None = None

    def fields(self) -> dict[str, str]:
        """The placeholders' text: a figure where the visitor has one, else what to run to get it."""
        rebuilt = (f", and the full VAE rebuilt it at {self.psnr_db:.1f} dB PSNR" if self.psnr_db is not None
                   else "; encode an image there to see how well the VAE rebuilds it")
        image_times = (f"a {self.steps}-step image on pixels would take about {self.pixel_image_seconds:,.0f} s on "
                       f"this machine, against {self.latent_image_seconds:,.1f} s on latents"
                       if self.pixel_image_seconds is not None and self.latent_image_seconds is not None
                       else f"press 'Count and measure' to see what a {self.steps}-step image costs each way here")
        decoders = (f"from the same latents the full VAE decoder gave {self.psnr_db:.1f} dB PSNR, the linear 4×3 "
                    f"map {self.linear_psnr_db:.1f} dB" if self.psnr_db is not None and self.linear_psnr_db is not None
                    else "press 'Compare decoders and squeeze' to see the full VAE decoder against the linear 4×3 "
                         "map, PSNR side by side")
        noise_loss = (f"asked for the noise in your image's latents at t = {self.noise_loss_timestep}, the UNet's "
                      f"answer scored {self.noise_loss:.4f} (mean squared error: the training loss)"
                      if self.noise_loss is not None else "press 'Ask the UNet' to see the true noise, the UNet's "
                      "prediction and the training loss on your own image")
        return {"pixel_values": f"{self.pixel_values:,}", "latent_values": f"{self.latent_values:,}",
                "value_ratio": f"{self.pixel_values / self.latent_values:.0f}",
                "flop_ratio": f"{self.flop_ratio:,.0f}", "attention_ratio": f"{self.attention_ratio:,.0f}",
                "rebuilt": rebuilt, "image_times": image_times, "decoders": decoders, "noise_loss": noise_loss}


@dataclass(frozen=True)
class Mark:
    question: str
    chosen: str | None
    right: bool
    answer: str
    why: str


def check_answers(answers: list[str | None], numbers: LessonNumbers) -> list[Mark]:
    """One Mark per question, in order. No answer counts as wrong; an answer not among the choices is an error."""
    if len(answers) != len(QUESTIONS):
        raise ValueError(f"expected {len(QUESTIONS)} answers, got {len(answers)}")
    fields = numbers.fields()
    marks = []
    for question, chosen in zip(QUESTIONS, answers, strict=True):
        if chosen is not None and chosen not in question.choices:
            raise ValueError(f"{chosen!r} is not one of the answers to {question.text!r}")
        marks.append(Mark(question.text, chosen, chosen == question.answer, question.answer,
                          question.why.format(**fields)))
    return marks
