"""Full-size Stable Diffusion architectures with random weights (compute doesn't depend on weight values).

Nothing is downloaded: each model is built from its config with a fixed seed. --quick uses the tiny offline model.
"""

from __future__ import annotations

import dataclasses

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from latent_demo.models import Models, assemble_models, ready
from latent_demo.offline_model import SD_SCHEDULER_CONFIG, build_offline_components, byte_level_clip_tokenizer

SD15_SCHEDULER = {**SD_SCHEDULER_CONFIG, "_class_name": "PNDMScheduler", "timestep_spacing": "leading",
                  "skip_prk_steps": True, "set_alpha_to_one": False}
TURBO_SCHEDULER = {**SD_SCHEDULER_CONFIG, "_class_name": "EulerDiscreteScheduler"}


def sd_vae() -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         sample_size=512)


def sd15_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)


def turbo_unet() -> UNet2DConditionModel:
    """SD 2.1 / sd-turbo."""
    return UNet2DConditionModel(sample_size=64, cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                                use_linear_projection=True, block_out_channels=(320, 640, 1280, 1280),
                                layers_per_block=2)


def clip_text(hidden: int, layers: int, heads: int, act: str = "quick_gelu") -> CLIPTextModel:
    """CLIP ViT-L/14 (SD 1.5: 768, 12, 12) or OpenCLIP ViT-H (SD 2.1: 1024, 23, 16) text tower, 49,408 tokens."""
    return CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 4,
                                        num_hidden_layers=layers, num_attention_heads=heads, hidden_act=act,
                                        max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                                        pad_token_id=513))


def build(preset: str, dtype: torch.dtype, fast_decoder: bool = True, seed: int = 0) -> Models:
    """preset: sd15, sd-turbo, or tiny (the offline model). Same seed -> same random weights."""
    torch.manual_seed(seed)
    device = torch.device("cpu")
    if preset == "tiny":
        parts = build_offline_components(seed)
        scheduler, defaults = dict(parts.pop("scheduler").config), (2, 7.5)
    elif preset == "sd15":
        parts = {"unet": sd15_unet(), "vae": sd_vae(), "text_encoder": clip_text(768, 12, 12)}
        scheduler, defaults = SD15_SCHEDULER, (20, 7.5)
    elif preset == "sd-turbo":
        parts = {"unet": turbo_unet(), "vae": sd_vae(), "text_encoder": clip_text(1024, 23, 16, "gelu")}
        scheduler, defaults = TURBO_SCHEDULER, (1, 0.0)
    else:
        raise ValueError(f"unknown preset {preset!r}")
    parts["tokenizer"] = byte_level_clip_tokenizer()  # token ids < 514: compute is the same as with CLIP's BPE
    models = assemble_models(parts, scheduler, device, dtype, dtype, source=f"{preset} (random weights)",
                             defaults=defaults)
    if fast_decoder and preset != "tiny":
        models = dataclasses.replace(models, fast_decoder=ready(AutoencoderTiny(), torch.device("cpu"), dtype))
    return models


def weight_bytes(models: Models) -> int:
    modules = [models.unet, models.vae, models.text_encoder] + ([models.fast_decoder] if models.fast_decoder else [])
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
