"""The built-in offline model: small SD-architecture components, so every tab works without the Hub.

The autoencoder is trained (`offline_vae/`, made by scripts/train_offline_vae.py on permissively licensed images;
its model card is offline_vae/README.md): it really reconstructs photos, so the Encode tab, "What compression keeps"
and the Noise explorer show the lesson offline. The UNet and text encoder are tiny, with fixed-seed random weights
(untrained): generated pictures are noise-like, and the page says so. Tests load the same components.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

# The scheduler of Stable Diffusion 1.x/2.x (betas of the trained models), with sd-turbo's trailing spacing.
SD_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "trailing",
    "clip_sample": False,  # as in the trained models' configs (DDIM would otherwise clip x̂₀ to [-1, 1])
    "set_alpha_to_one": False,
    "steps_offset": 1,
}
TEXT_WIDTH = 32  # hidden size of the tiny text encoder = cross-attention width of the tiny UNet


def byte_level_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over single bytes (514 tokens, no merges): needs no vocabulary download."""
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=77)


def tiny_text_encoder(seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=514, hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                            pad_token_id=513)
    return CLIPTextModel(config).eval()


OFFLINE_VAE = Path(__file__).resolve().parent / "offline_vae"
OFFLINE_SOURCE = "built-in offline model (trained VAE; untrained UNet and text encoder)"
# Mean reconstruction PSNR of the four example photos (assets/, never trained on), long side 512 px, float32:
# measured by scripts/train_offline_vae.py --export; tests/test_offline_vae.py holds the shipped weights to it.
HELD_OUT_PSNR_DB = 18.73


def trained_vae() -> AutoencoderKL:
    """The trained offline autoencoder: SD's VAE layout (4 levels, so 512x512x3 pixels -> 4x64x64 latents), narrower
    and without the mid-block attention; weights stored in fp16, loaded in float32."""
    return AutoencoderKL.from_pretrained(OFFLINE_VAE, torch_dtype=torch.float32, use_safetensors=True,
                                         local_files_only=True).eval()


def tiny_unet(seed: int = 0, in_channels: int = 4) -> UNet2DConditionModel:
    """in_channels=9 gives the inpainting layout (latents + mask + masked-image latents)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
                                in_channels=in_channels, out_channels=4, cross_attention_dim=TEXT_WIDTH,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=8, norm_num_groups=16).eval()


def build_offline_components(seed: int = 0, unet_in_channels: int = 4) -> dict:
    """The components of the offline model, named as in a diffusers Stable Diffusion pipeline (`seed`: the random
    UNet and text encoder's)."""
    return {
        "vae": trained_vae(),
        "unet": tiny_unet(seed, unet_in_channels),
        "text_encoder": tiny_text_encoder(seed),
        "tokenizer": byte_level_clip_tokenizer(),
        "scheduler": EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG),
    }
