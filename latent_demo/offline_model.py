"""The built-in offline model: tiny SD-architecture components with fixed-seed random weights (untrained).

It has the real shapes of the latent flow (a VAE that downsamples by 8 into 4 channels, a cross-attention
UNet, a CLIP text encoder) so every tab works without the Hub, but its pictures are noise-like: it is labelled
as untrained wherever it is used. Tests build the same components.
"""

from __future__ import annotations

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


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """4 resolution levels like the SD VAE, so 512x512x3 pixels -> 4x64x64 latents."""
    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         norm_num_groups=16, sample_size=64, scaling_factor=0.18215).eval()


def tiny_unet(seed: int = 0, in_channels: int = 4) -> UNet2DConditionModel:
    """in_channels=9 gives the inpainting layout (latents + mask + masked-image latents)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
                                in_channels=in_channels, out_channels=4, cross_attention_dim=TEXT_WIDTH,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=8, norm_num_groups=16).eval()


def build_offline_components(seed: int = 0, unet_in_channels: int = 4) -> dict:
    """The components of the offline model, named as in a diffusers Stable Diffusion pipeline."""
    return {
        "vae": tiny_vae(seed),
        "unet": tiny_unet(seed, unet_in_channels),
        "text_encoder": tiny_text_encoder(seed),
        "tokenizer": byte_level_clip_tokenizer(),
        "scheduler": EulerDiscreteScheduler.from_config(SD_SCHEDULER_CONFIG),
    }
