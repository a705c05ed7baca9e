"""Autoencoders of other model families (`--compare-vaes`): what they are, where they come from, and loading them at
start-up beside the app's own VAE. Their latent spaces are compared on the visitor's image by latent_spaces.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderDC, AutoencoderKL

from latent_demo import hub
from latent_demo.latents import down_factor, shift_factor
from latent_demo.presets import HALF_PRECISION, HALF_VARIANT

log = logging.getLogger(__name__)
SD_VAE_PARAMETERS = 83_653_863  # the SD 1.x VAE, whose passes gpu_budget's costs were measured on
LOADABLE = {"AutoencoderKL": AutoencoderKL, "AutoencoderDC": AutoencoderDC}  # by the config's `_class_name`


@dataclass(frozen=True)
class Candidate:
    """A published autoencoder the README lists: each one's licence allows a public demo."""

    repo: str
    subfolder: str | None  # where its config.json and weights are inside the repo
    licence: str
    download: str  # the weight file a start-up fetches


CANDIDATES = {
    "sdxl": Candidate("stabilityai/sdxl-vae", None, "MIT", "335 MB (float32)"),
    "flux-schnell": Candidate("black-forest-labs/FLUX.1-schnell", "vae", "Apache-2.0",
                              "168 MB (bfloat16)"),
    "dc-ae": Candidate("mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers", None, "MIT",
                       "1.25 GB (float32)"),
}

# Their config.json files as published (the keys a file leaves out take diffusers' defaults), for building the
# architectures with random weights: tests and benchmarks, which can't download the weights. The DC-AE's is SANA
# 1.0's (saved again in SANA 600M's vae/config.json); 1.1 is published as the same architecture and scaling factor.
_KL_STAGES = {"block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
              "up_block_types": ["UpDecoderBlock2D"] * 4, "layers_per_block": 2, "norm_num_groups": 32,
              "act_fn": "silu", "in_channels": 3, "out_channels": 3, "sample_size": 1024}
_DC_AE_BLOCKS = ["ResBlock"] * 3 + ["EfficientViTBlock"] * 3
PUBLISHED_CONFIGS = {
    "sdxl": {"_class_name": "AutoencoderKL", **_KL_STAGES, "latent_channels": 4, "scaling_factor": 0.13025},
    "flux-schnell": {"_class_name": "AutoencoderKL", **_KL_STAGES, "latent_channels": 16, "force_upcast": True,
                     "latents_mean": None, "latents_std": None, "mid_block_add_attention": True,
                     "scaling_factor": 0.3611, "shift_factor": 0.1159, "use_post_quant_conv": False,
                     "use_quant_conv": False},
    "dc-ae": {"_class_name": "AutoencoderDC", "attention_head_dim": 32, "decoder_act_fns": "silu",
              "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024], "decoder_block_types": _DC_AE_BLOCKS,
              "decoder_layers_per_block": [3, 3, 3, 3, 3, 3], "decoder_norm_types": "rms_norm",
              "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]], "downsample_block_type": "Conv",
              "encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024], "encoder_block_types": _DC_AE_BLOCKS,
              "encoder_layers_per_block": [2, 2, 2, 3, 3, 3], "encoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
              "in_channels": 3, "latent_channels": 32, "scaling_factor": 0.41407,
              "upsample_block_type": "interpolate"},
}


@dataclass(frozen=True)
class ExtraAutoencoder:
    """One more autoencoder, loaded once, read-only like the other models."""

    name: str  # as the page and the API name it: the candidate's name, or the repo id / folder asked for
    model: AutoencoderKL | AutoencoderDC
    parameters: int  # counted at loading: on ZeroGPU the main process may not read the weights afterwards

    @property
    def cost_in_vae_passes(self) -> float:
        """One encode or decode, in SD VAE passes, estimated from the parameter count (at least 1)."""
        return max(1.0, self.parameters / SD_VAE_PARAMETERS)

    @property
    def down_factor(self) -> int:
        return down_factor(self.model)

    @property
    def channels(self) -> int:
        return self.model.config.latent_channels

    @property
    def scaling_factor(self) -> float:
        return float(self.model.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        return shift_factor(self.model)


def requested(compare_vaes: str | None) -> list[str]:
    """'sdxl, ./my-vae' -> ['sdxl', './my-vae'] (a comma-separated list; empty entries dropped)."""
    return [entry.strip() for entry in (compare_vaes or "").split(",") if entry.strip()]


def where(entry: str, offline: bool) -> tuple[str, str | None]:
    """A candidate's name, a local folder, or a Hub id -> (source, subfolder): the config at the root or in vae/."""
    if entry in CANDIDATES:
        return CANDIDATES[entry].repo, CANDIDATES[entry].subfolder
    folder = Path(entry).expanduser()
    if folder.is_dir():
        if (folder / "config.json").is_file():
            return str(folder), None
        if (folder / "vae" / "config.json").is_file():
            return str(folder), "vae"
        raise ValueError(f"no config.json in {entry!r} or its vae/ folder")
    if entry.startswith(("/", ".", "~")) or entry.count("/") != 1:
        raise ValueError(f"{entry!r} is neither a known autoencoder ({', '.join(CANDIDATES)}), a folder, "
                         "nor a Hub repo id")
    try:  # a pipeline repo keeps its autoencoder in vae/
        AutoencoderKL.load_config(entry, local_files_only=offline)
        return entry, None
    except OSError:
        return entry, "vae"


def display_name(entry: str) -> str:
    """What the page calls it: a candidate's or Hub repo's name as given, a folder by its own name."""
    folder = Path(entry).expanduser()
    return folder.resolve().name if entry not in CANDIDATES and folder.is_dir() else entry


def load_autoencoder(entry: str, offline: bool, device: torch.device, dtype: torch.dtype) -> ExtraAutoencoder:
    """safetensors only; the `fp16` weight files in half precision where the repo has them. Failure raises
    (OSError, ValueError): the owner named this model, so the app must not start without it."""
    source, subfolder = where(entry, offline)
    config = AutoencoderKL.load_config(source, subfolder=subfolder, local_files_only=offline)
    kind = LOADABLE.get(config.get("_class_name"))
    if kind is None:
        raise ValueError(f"its config names {config.get('_class_name')!r}; only {', '.join(LOADABLE)} are compared")
    variant = HALF_VARIANT if dtype in HALF_PRECISION else None
    model = hub.load_weights(kind, source, subfolder, variant, torch_dtype=dtype, use_safetensors=True,
                             local_files_only=offline)
    return ExtraAutoencoder(display_name(entry), model.to(device).eval().requires_grad_(False),
                            sum(parameter.numel() for parameter in model.parameters()))


def load_all(compare_vaes: str | None, offline: bool, device: torch.device, dtype: torch.dtype
             ) -> tuple[ExtraAutoencoder, ...]:
    loaded = []
    for entry in requested(compare_vaes):
        extra = load_autoencoder(entry, offline, device, dtype)
        log.info("--compare-vaes: loaded %s as %s (%s, %d× down, %d channels)", entry, extra.name,
                 type(extra.model).__name__, extra.down_factor, extra.channels)
        loaded.append(extra)
    return tuple(loaded)


def random_weight_autoencoder(name: str, seed: int = 0) -> ExtraAutoencoder:
    """A candidate's architecture from its published config, with random weights: its shapes, counts, factors and
    costs are the real model's, its pictures are not."""
    config = PUBLISHED_CONFIGS[name]
    with torch.random.fork_rng():  # the process's random state is left as it was
        torch.manual_seed(seed)
        model = LOADABLE[config["_class_name"]].from_config(config).eval().requires_grad_(False)
    return ExtraAutoencoder(name, model, sum(parameter.numel() for parameter in model.parameters()))
