"""Loading: the read-only VAE, UNet, text encoder and scheduler config that every task shares (what to load and in
which dtype: presets.py; the Hub's retries: hub.py)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerBase

from latent_demo import hub, other_autoencoders, zerogpu
from latent_demo.compiled import CompiledUNet, aot_compile_unet, compile_unet, default_side
from latent_demo.config import Settings
from latent_demo.latents import down_factor
from latent_demo.offline_model import OFFLINE_SOURCE, build_offline_components
from latent_demo.other_autoencoders import ExtraAutoencoder
from latent_demo.presets import (
    GENERIC_DEFAULTS,
    HALF_PRECISION,
    HALF_VARIANT,
    OFFLINE_PRESET,
    PRESETS,
    choose_device,
    choose_dtypes,
    default_preset,
)
from latent_demo.safety import SAFETY_CHECKER_REPO, SafetyFilter, load_safety_filter

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """An explicitly requested model could not be loaded (never answered with a silent fallback)."""


@dataclass(frozen=True)
class Models:
    """Everything the tasks read. Shared by all requests; frozen (changes while loading make new copies)."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: PreTrainedTokenizerBase
    scheduler_config: dict  # a fresh scheduler is made from it for every request
    device: torch.device
    dtype: torch.dtype  # UNet and text encoder
    vae_dtype: torch.dtype  # float32 whenever the rest is float16: the SD VAE overflows to NaN in fp16
    source: str  # what was loaded, for the UI
    default_steps: int
    default_guidance: float
    fast_decoder: AutoencoderTiny | None = None
    safety_filter: SafetyFilter | None = None  # when on, every shown generated image passes it
    is_untrained: bool = False  # the offline model: its UNet and text encoder are random (its VAE is trained)
    fallback_reason: str | None = None  # set when the offline model stands in for the default one
    compiled_unet: CompiledUNet | None = None  # --compile: the UNet compiled for the default size (compiled.py)
    extra_autoencoders: tuple[ExtraAutoencoder, ...] = ()  # --compare-vaes: other families' latent spaces

    @property
    def unet_for_steps(self) -> UNet2DConditionModel | CompiledUNet:
        """What the denoising loop calls: the compiled UNet (eager for other sizes) with --compile, else the UNet."""
        return self.compiled_unet or self.unet

    @property
    def vae_scale_factor(self) -> int:
        return down_factor(self.vae)

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(1, channels, height / 8, width / 8): the latents of one image of height x width pixels."""
        return (1, self.latent_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)

    def decoder(self, fast: bool) -> AutoencoderKL | AutoencoderTiny:
        """The full VAE, or the TAESD-size fast decoder when asked for (ValueError if none is loaded)."""
        if not fast:
            return self.vae
        if self.fast_decoder is None:
            raise ValueError("fast decode was asked for but no fast decoder is loaded")
        return self.fast_decoder

    @property
    def has_inpainting_unet(self) -> bool:
        """A 9-channel UNet takes latents + mask + masked-image latents (SD inpainting checkpoints)."""
        return self.unet.config.in_channels == 9

    @property
    def inpaint_method(self) -> str:
        if self.has_inpainting_unet:
            return "inpainting UNet (9 input channels: latents + latent mask + masked-image latents)"
        return "latent blending (after each step, keep the re-noised original outside the mask)"


def load_models(settings: Settings) -> Models:
    """Load once at start-up. No model configured: the default preset, or the offline model if it can't be had."""
    try:
        device = choose_device(settings.device)
        dtype, vae_dtype = choose_dtypes(device, settings.dtype, settings.vae_dtype)
    except ValueError as err:
        raise ModelLoadError(str(err)) from None
    if settings.model is None:
        models = _load_default(default_preset(device), settings, device, dtype, vae_dtype)
    else:
        models = _load_source(settings.model, settings, device, dtype, vae_dtype)
    if settings.compile:
        models = with_compiled_unet(models, settings)
    models = dataclasses.replace(models, extra_autoencoders=load_extra_autoencoders(settings, device, vae_dtype))
    if settings.safety_checker:
        try:
            models = dataclasses.replace(models, safety_filter=load_safety_filter(settings.offline, device))
        except OSError as err:
            raise ModelLoadError(f"the safety checker {SAFETY_CHECKER_REPO} was asked for but could not be loaded "
                                 f"({_first_line(err)})") from err
    log.info("loaded %s on %s (%s, VAE %s); inpainting by %s", models.source, device, dtype, vae_dtype,
             models.inpaint_method)
    return models


def load_extra_autoencoders(settings: Settings, device: torch.device, vae_dtype: torch.dtype
                            ) -> tuple[ExtraAutoencoder, ...]:
    """--compare-vaes: each one named must load, or the app does not start (ModelLoadError says which and why)."""
    try:
        return other_autoencoders.load_all(settings.compare_vaes, settings.offline, device, vae_dtype)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"--compare-vaes: could not load an autoencoder to compare ({_first_line(err)}); "
                             f"known ones: {', '.join(other_autoencoders.CANDIDATES)}, or a Hub repo id or a local "
                             "folder holding a diffusers autoencoder in safetensors") from err


def with_compiled_unet(models: Models, settings: Settings, backend: str = "inductor") -> Models:
    """--compile: the UNet compiled for the Generate tab's default size, at start-up (compiled.py says why).
    `backend`: torch.compile's (tests use "eager", graph capture only, to check the dispatch in seconds)."""
    side = default_side(models.vae_scale_factor, settings.min_image_side, settings.max_image_side)
    shape = (models.unet, side, models.vae_scale_factor, models.unet.config.cross_attention_dim)
    if zerogpu.on_zerogpu():
        try:
            spaces = zerogpu.aot_compiler()
        except ValueError as err:
            raise ModelLoadError(str(err)) from None
        how, compile_ = "ahead of time in a ZeroGPU worker", lambda: aot_compile_unet(*shape, spaces)
    else:
        how, compile_ = "with torch.compile", lambda: compile_unet(*shape, backend=backend)
    try:
        return dataclasses.replace(models, compiled_unet=compile_())
    except Exception as err:  # noqa: BLE001  (any compiler failure: the owner asked for it, so say so and stop)
        log.exception("compiling the UNet failed")
        raise ModelLoadError(f"--compile: compiling the UNet {how} failed ({type(err).__name__}: "
                             f"{_first_line(err)}); the log has the details. Start without --compile to run "
                             "it eager") from err


def _load_default(preset: str, settings: Settings, device, dtype, vae_dtype) -> Models:
    """The default preset, tried again after a pause when the Hub may be at fault; else the offline model, said
    loudly (a warning when offline was asked for, an error otherwise: then something is wrong)."""
    source = PRESETS[preset].source
    try:
        return hub.with_retries(lambda: _load_source(preset, settings, device, dtype, vae_dtype), source,
                                (OSError, ModelLoadError), () if settings.offline else hub.RETRY_WAITS_S)
    except (OSError, ModelLoadError) as err:
        failure = err
    where = "the local cache (offline mode)" if settings.offline else "the local cache or the Hub"
    reason = f"the default model {source} could not be loaded from {where}"
    log.log(logging.WARNING if settings.offline else logging.ERROR,
            "OFFLINE MODEL IN USE: %s (%s). Generated pictures will be noise-like.", reason, _first_line(failure))
    return dataclasses.replace(load_offline_models(device, dtype, vae_dtype), fallback_reason=reason)


def load_offline_models(device: torch.device, dtype: torch.dtype, vae_dtype: torch.dtype) -> Models:
    parts = build_offline_components()
    return assemble_models(parts, dict(parts["scheduler"].config), device, dtype, vae_dtype,
                     source=OFFLINE_SOURCE, defaults=(4, 0.0),
                     is_untrained=True)


def _load_source(name: str, settings: Settings, device, dtype, vae_dtype) -> Models:
    if name == OFFLINE_PRESET:
        return load_offline_models(device, dtype, vae_dtype)
    preset = PRESETS.get(name)
    source = preset.source if preset else name
    defaults = (preset.num_inference_steps, preset.guidance_scale) if preset else GENERIC_DEFAULTS
    path = Path(source).expanduser()
    try:
        if source.endswith((".ckpt", ".bin", ".pt", ".pth")):
            raise ModelLoadError(f"{source!r} is a pickle checkpoint; only .safetensors files are loaded")
        if source.endswith(".safetensors"):
            parts = _load_single_file(path, settings, dtype)
        else:
            if _looks_like_path(source) and not path.is_dir():
                raise ModelLoadError(f"no model folder at {source!r}")
            parts = _load_folder_or_repo(str(path) if path.is_dir() else source, settings, dtype)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelLoadError(f"could not load model {source!r}: {_first_line(err)}") from err
    fast_decoder = _load_fast_decoder(settings, vae_dtype, device)
    models = assemble_models(parts, parts["scheduler_config"], device, dtype, vae_dtype, source=source,
                             defaults=defaults)
    return dataclasses.replace(models, fast_decoder=fast_decoder)


def _load_folder_or_repo(source: str, settings: Settings, dtype: torch.dtype) -> dict:
    """Component by component, so no safety checker or image processor is pulled in.

    In half precision the UNet and text encoder come from the `fp16` weight files where the repo has them (half the
    download); the VAE always from the full-precision files, since it may run in float32 (`vae_dtype`).
    """
    common = {"local_files_only": settings.offline}
    weights = {**common, "use_safetensors": True}
    variant = HALF_VARIANT if dtype in HALF_PRECISION else None
    return {
        "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", **weights),
        "unet": hub.load_weights(UNet2DConditionModel, source, "unet", variant, torch_dtype=dtype, **weights),
        "text_encoder": hub.load_weights(CLIPTextModel, source, "text_encoder", variant, dtype=dtype, **weights),
        "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **common),
        "scheduler_config": _load_scheduler_config(source, common),
    }


def _load_scheduler_config(source: str, common: dict) -> dict:
    # Any scheduler class reads scheduler_config.json; the class to build is named inside it (_class_name).
    return dict(DDIMScheduler.load_config(source, subfolder="scheduler", **common))


def _load_single_file(path: Path, settings: Settings, dtype: torch.dtype) -> dict:
    """An SD 1.x/2.x .safetensors checkpoint; offline it needs `single_file_config` (a diffusers folder)."""
    from diffusers import StableDiffusionPipeline

    if not path.is_file():
        raise ModelLoadError(f"no checkpoint file at {str(path)!r}")
    if settings.offline and not (settings.single_file_config and Path(settings.single_file_config).is_dir()):
        # without a local config folder diffusers would try to download one (even with local_files_only)
        raise ModelLoadError("offline, a single-file checkpoint needs --single-file-config: a local diffusers "
                             "folder of the same model family holding its configs")
    # No `load_safety_checker` kwarg: diffusers loads the safety checker from the Hub whenever it is not None,
    # even when it is False (diffusers/loaders/single_file.py, `if load_safety_checker is not None`).
    pipe = StableDiffusionPipeline.from_single_file(
        str(path), config=settings.single_file_config, local_files_only=settings.offline, torch_dtype=dtype,
        safety_checker=None, requires_safety_checker=False)
    parts = {name: getattr(pipe, name) for name in ("vae", "unet", "text_encoder", "tokenizer")}
    parts["scheduler_config"] = dict(pipe.scheduler.config)
    return parts


def _load_fast_decoder(settings: Settings, dtype: torch.dtype, device: torch.device) -> AutoencoderTiny | None:
    """Optional: the fast decoder is a nicety, so failing to get it is logged, not fatal."""
    if (settings.fast_decoder or "none").lower() == "none":
        return None
    try:
        decoder = AutoencoderTiny.from_pretrained(settings.fast_decoder, use_safetensors=True,
                                                  local_files_only=settings.offline)
    except OSError as err:
        log.warning("fast decoder %s unavailable (%s); previews use the linear approximation",
                    settings.fast_decoder, _first_line(err))
        return None
    return ready(decoder, device, dtype)


def ready(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """On the device in its dtype, frozen."""
    if module.dtype != dtype:  # diffusers warns about .to(dtype) even when nothing changes
        module = module.to(dtype=dtype)
    return module.to(device).eval().requires_grad_(False)


def assemble_models(parts: dict, scheduler_config: dict, device, dtype, vae_dtype, *, source: str,
                    defaults: tuple[int, float], is_untrained: bool = False) -> Models:
    """Put loaded (or freshly built) components on the device in their dtypes, frozen, as one Models."""
    unet = ready(parts["unet"], device, dtype)
    if unet.config.in_channels not in (4, 9):
        raise ModelLoadError(f"the UNet has {unet.config.in_channels} input channels; only 4 or 9 are supported")
    return Models(vae=ready(parts["vae"], device, vae_dtype), unet=unet,
                  text_encoder=ready(parts["text_encoder"], device, dtype),
                  tokenizer=parts["tokenizer"], scheduler_config=dict(scheduler_config), device=device, dtype=dtype,
                  vae_dtype=vae_dtype, source=source, default_steps=defaults[0], default_guidance=defaults[1],
                  is_untrained=is_untrained)


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source.count("/") != 1 or Path(source).exists()


_first_line = hub.first_line
