"""Settings: every knob of the app in one frozen dataclass, read from CLI flags and LATENT_DEMO_* variables."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "LATENT_DEMO_"


def _setting(default: Any, help: str, choices: Sequence[str] | None = None, minimum: int | None = None,
             maximum: int | None = None) -> Any:
    """A field with its help text and what `Settings.validate` accepts: one of `choices`, or minimum..maximum."""
    return field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum, "maximum": maximum})


@dataclass(frozen=True)
class Settings:
    # --- model -------------------------------------------------------------------------------------------------
    # None: the default preset for the device (sd15 on a CUDA GPU; sd-turbo elsewhere, MPS included), or the offline
    # model.
    model: str | None = _setting(None, "preset (sd-turbo, sd15, sd15-inpainting, offline), Hub repo id, "
                                       "local diffusers folder or single-file .safetensors checkpoint")
    # A diffusers-format folder or Hub id holding the configs a single-file checkpoint needs (offline use).
    single_file_config: str | None = _setting(None, "config folder/repo for a single-file checkpoint")
    # TAESD-size decoder for fast previews and the "fast decode" option; "none" disables it.
    fast_decoder: str = _setting("madebyollin/taesd", "AutoencoderTiny repo id or folder, or 'none'")
    # Other families' autoencoders, each loaded at start-up and compared with this model's VAE on the Encode tab:
    # known names (other_autoencoders.CANDIDATES), Hub repo ids or local folders, comma-separated. Empty on a CPU.
    compare_vaes: str | None = _setting(None, "autoencoders to compare latent spaces with, comma-separated: sdxl, "
                                              "flux-schnell, dc-ae, a Hub repo id or a local diffusers folder")
    preview: str = _setting("approx", "per-step preview: linear latent->RGB, the fast decoder, or none",
                            ("approx", "fast", "none"))
    # Steps can come faster than a page shows them (a GPU makes 25 steps in about a second), and each streamed
    # picture costs the server work that slows the next steps: at most one per this interval; the trajectory
    # still shows every step.
    preview_interval_ms: int = _setting(100, "stream at most one step picture per this many ms (0: no interval; "
                                             "steps the page had no time for are skipped either way)", minimum=0)
    device: str = _setting("auto", "where the models run", ("auto", "cpu", "cuda", "mps"))
    # auto: float16 on CUDA/MPS (VAE kept in float32); on CPU bfloat16 where it is native (AVX512-BF16/AMX), else fp32.
    dtype: str = _setting("auto", "weights dtype", ("auto", "float32", "float16", "bfloat16"))
    # auto: float32 when the rest is float16 (the SD VAE overflows to NaN in fp16), else the model's dtype.
    # float32 with --dtype bfloat16 runs the CUDA mix (half-precision UNet, full-precision VAE) on a CPU.
    vae_dtype: str = _setting("auto", "VAE dtype", ("auto", "float32", "float16", "bfloat16"))
    # Screens every generated image and every streamed preview; flagged ones are shown black.
    safety_checker: bool = _setting(False, "run the Stable Diffusion safety checker on generated images and previews")
    # torch.compile of the UNet for the default image size at start-up (CUDA graphs on a GPU, ahead of time on
    # ZeroGPU); other sizes run eager.
    compile: bool = _setting(False, "compile the UNet at start-up for the default image size: faster steps at that "
                                    "size, minutes more start-up")
    # Never touch the Hub: only local folders and the cache. Also on when HF_HUB_OFFLINE=1.
    offline: bool = _setting(False, "load models from local files and the cache only")

    # --- limits: what one request may ask for, and how many requests the server takes ---------------------------
    max_image_side: int = _setting(768, "larger images are scaled down to fit this side (px)", minimum=1)
    # The VAE downsamples by 8: smaller than 8 px leaves no latent pixel.
    min_image_side: int = _setting(64, "smaller images are refused (px)", minimum=8)
    # Pixels an uploaded file may declare before it is decoded (decompression-bomb guard): 40 MP.
    max_image_pixels: int = _setting(40_000_000, "largest uploaded image, in pixels, before any resizing", minimum=1)
    max_steps: int = _setting(50, "most denoising steps a request may ask for", minimum=1)
    # CLIP reads 75 tokens; longer prompts are truncated (and said so) up to this hard limit.
    max_prompt_tokens: int = _setting(300, "prompts longer than this many tokens are refused", minimum=1)
    max_seed_walk_frames: int = _setting(16, "most frames in a seed walk", minimum=1)
    max_file_size_mb: int = _setting(10, "largest upload accepted by the server (MB)", minimum=1)
    concurrency_limit: int = _setting(1, "model jobs that run at once (all tabs share this)", minimum=1)
    queue_max_size: int = _setting(16, "jobs that may wait; later visitors are told the queue is full", minimum=1)

    # --- server ------------------------------------------------------------------------------------------------
    host: str = _setting("127.0.0.1", "address to bind; 0.0.0.0 to serve other machines")
    port: int = _setting(7860, "port to serve on", minimum=1, maximum=65535)
    share: bool = _setting(False, "create a public gradio.live link")
    # Bounded memory: each visitor's session (and the latents it keeps) lives this long, and at most this many.
    state_ttl_s: int = _setting(1800, "seconds a visitor's session data (encoded latents) is kept", minimum=1)
    max_sessions: int = _setting(200, "most visitor sessions kept; the least recently used is dropped", minimum=1)
    # The page's own events (/generate_page ...: live pictures, galleries, Markdown) stay callable, but only the
    # forms for scripts are on the API page; listed, gradio_client fills in their defaults too (the tests call them).
    api_lists_page_events: bool = _setting(False, "list the page's own events (/generate_page, ...) on the API page "
                                                  "beside the forms for scripts")
    cache_max_age_s: int = _setting(3600, "Gradio's cached output files older than this are deleted (s)", minimum=1)

    @classmethod
    def from_sources(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, overridden by LATENT_DEMO_* variables, overridden by CLI flags."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f, raw)
        if environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            values.setdefault("offline", True)
        if environ.get("SPACE_ID"):  # on Hugging Face Spaces the app must listen on every interface
            values.setdefault("host", "0.0.0.0")
        args = build_arg_parser().parse_args(argv if argv is not None else [])
        values.update({k: v for k, v in vars(args).items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value, low, high = getattr(self, f.name), f.metadata.get("minimum"), f.metadata.get("maximum")
            if low is not None and value < low:
                raise ValueError(f"setting {f.name} must be >= {low}, got {value}")
            if high is not None and value > high:
                raise ValueError(f"setting {f.name} must be <= {high}, got {value}")
        if self.min_image_side >= self.max_image_side:  # the size sliders need a range
            raise ValueError(f"min_image_side ({self.min_image_side}) must be below max_image_side "
                             f"({self.max_image_side})")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"setting {f.name}={getattr(self, f.name)!r}; allowed: {', '.join(choices)}")


def _parse(f: dataclasses.Field, raw: str) -> Any:
    if f.type in ("bool", bool):
        lowered = raw.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a boolean")
        return lowered in ("1", "true", "yes", "on")
    if f.type in ("int", int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not an integer") from None
    return raw or None


def build_arg_parser() -> argparse.ArgumentParser:
    """One flag per setting; every default is None so that unset flags don't override the environment."""
    parser = argparse.ArgumentParser(
        prog="app.py", description="latent-demo: see how latent diffusion works, tab by tab.",
        epilog=f"Every flag can also be set as an environment variable {ENV_PREFIX}<NAME>, e.g. {ENV_PREFIX}MODEL.")
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = int if f.type in ("int", int) else str
            parser.add_argument(flag, type=kind, default=None, choices=f.metadata.get("choices"), help=help_text)
    return parser
