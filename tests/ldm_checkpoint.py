"""Write a diffusers Stable Diffusion 1.x pipeline as ONE original-layout (CompVis/LDM) `.safetensors` checkpoint.

This is the inverse of the converters that `StableDiffusionPipeline.from_single_file` runs, in
`diffusers/loaders/single_file_utils.py`: `convert_ldm_unet_checkpoint` (UNet under `model.diffusion_model.`),
`convert_ldm_vae_checkpoint` (VAE under `first_stage_model.`) and `convert_ldm_clip_checkpoint` (an SD 1.x CLIP
text encoder under `cond_stage_model.transformer.`). It lets tests load a single-file checkpoint offline, on a tiny
model. Every diffusers key must have a rule here: an unmapped key raises instead of being silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
from safetensors.torch import save_file

UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
# diffusers ResnetBlock2D sub-layer -> openaimodel ResBlock sub-layer (inverse of update_unet_resnet_ldm_to_diffusers)
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
               "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
# diffusers VAE mid-block Attention -> LDM AttnBlock (inverse of update_vae_attentions_ldm_to_diffusers)
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _component(source, name: str):
    return source[name] if isinstance(source, Mapping) else getattr(source, name)


def _resnet(rest: str) -> str:
    layer, param = rest.rsplit(".", 1)
    return f"{UNET_RESNET[layer]}.{param}"


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    state, lpb = unet.state_dict(), unet.config.layers_per_block
    if not isinstance(lpb, int):
        raise ValueError("the LDM layout (and diffusers' converter) needs one int layers_per_block")
    direct = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    up_with_attention = {int(k.split(".")[1]) for k in state if k.startswith("up_blocks.") and ".attentions." in k}
    out = {}
    for key, tensor in state.items():
        if key in direct:
            new = direct[key]
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = 1 + block * (lpb + 1) + layer
            new = f"input_blocks.{index}." + (f"0.{_resnet(rest)}" if kind == "resnets" else f"1.{rest}")
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * (lpb + 1)}.0.op.{m[2]}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = block * (lpb + 1) + layer
            new = f"output_blocks.{index}." + (f"0.{_resnet(rest)}" if kind == "resnets" else f"1.{rest}")
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            block = int(m[1])  # the upsampler follows the block's last resnet (and its attention, if any)
            new = f"output_blocks.{block * (lpb + 1) + lpb}.{2 if block in up_with_attention else 1}.conv.{m[2]}"
        else:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[UNET_PREFIX + new] = tensor
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    state, levels = vae.state_dict(), len(vae.config.up_block_types)
    direct = DIFFUSERS_TO_LDM_MAPPING["vae"]
    out = {}
    for key, tensor in state.items():
        if key in direct:
            new = direct[key]
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):  # LDM numbers up levels
            new = f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):  # from the bottom
            new = f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            new = f"{m[1]}.mid.attn_1.{VAE_ATTENTION[m[2]]}.{m[3]}"
            if m[2] != "group_norm" and m[3] == "weight":  # LDM's q/k/v/proj_out are 1x1 convolutions
                tensor = tensor[:, :, None, None]
        else:
            raise KeyError(f"no LDM name for VAE key {key!r}")
        out[VAE_PREFIX + new] = tensor
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """SD 1.x: the transformers CLIPTextModel under `cond_stage_model.transformer.text_model.`.

    transformers >= 5.6 dropped the `text_model.` level from CLIPTextModel's keys; the LDM layout has it (and
    diffusers strips it again when loading into a flat model).
    """
    state = text_encoder.state_dict()
    return {TEXT_PREFIX + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def ldm_state_dict(source) -> dict[str, torch.Tensor]:
    """The single-file state dict of `source`: a pipeline, a dict of components or anything with the attributes."""
    state = {**unet_to_ldm(_component(source, "unet")), **vae_to_ldm(_component(source, "vae")),
             **text_encoder_to_ldm(_component(source, "text_encoder"))}
    return {key: tensor.detach().cpu().contiguous().clone() for key, tensor in state.items()}


def save_as_ldm_checkpoint(pipe_components_or_pipeline, path: str | Path) -> Path:
    """Write the UNet, VAE and text encoder of a pipeline (or of a dict/object holding them) as one LDM checkpoint."""
    path = Path(path)
    save_file(ldm_state_dict(pipe_components_or_pipeline), str(path), metadata={"format": "pt"})
    return path
