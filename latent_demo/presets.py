"""What to load and in which precision: the model presets, and the device and dtype policy (no loading here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Preset:
    source: str  # Hub repo id
    num_inference_steps: int  # sensible default for this model
    guidance_scale: float  # 0 = no classifier-free guidance (distilled models)
    description: str


PRESETS = {
    "sd-turbo": Preset("stabilityai/sd-turbo", 1, 0.0, "SD-Turbo (SD 2.1 distilled: 1-4 steps, no guidance)"),
    "sd15": Preset("stable-diffusion-v1-5/stable-diffusion-v1-5", 25, 7.5, "Stable Diffusion 1.5"),
    "sd15-inpainting": Preset("stable-diffusion-v1-5/stable-diffusion-inpainting", 25, 7.5,
                              "Stable Diffusion 1.5 inpainting (9-channel UNet)"),
}
OFFLINE_PRESET = "offline"
GENERIC_DEFAULTS = (25, 7.5)  # steps and guidance for a model we know nothing about
HALF_PRECISION = (torch.float16, torch.bfloat16)
HALF_VARIANT = "fp16"  # the Hub's name for half-size weight files (diffusion_pytorch_model.fp16.safetensors)


def default_preset(device: torch.device) -> str:
    """SD 1.5 on a CUDA GPU; sd-turbo (1 step) everywhere else, MPS included."""
    return "sd15" if device.type == "cuda" else "sd-turbo"


def choose_device(requested: str) -> torch.device:
    """"auto": CUDA, else MPS, else the CPU. A device asked for that is not there: ValueError."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available")
    return torch.device(requested)


def cpu_has_fast_bfloat16() -> bool:
    """AVX512-BF16 or AMX: bfloat16 runs ×1.8–2.5 faster than float32 there (measured: benchmarks/README.md)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def choose_dtypes(device: torch.device, requested: str, requested_vae: str = "auto"
                  ) -> tuple[torch.dtype, torch.dtype]:
    """(model dtype, VAE dtype). GPUs: fp16 with the VAE in fp32 (no black NaN images). CPUs: bf16 where the
    processor has native bf16, else fp32. An explicit VAE dtype overrides the VAE's. Unsupported: ValueError."""
    if requested == "auto" and device.type == "cpu":
        dtype = torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32
    elif requested == "auto":
        dtype = torch.float16
    else:
        dtype = getattr(torch, requested)
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("float16 is not supported on the CPU here; use float32 or bfloat16")
    if requested_vae != "auto":
        if requested_vae == "float16" and device.type == "cpu":
            raise ValueError("a float16 VAE is not supported on the CPU here; use float32 or bfloat16")
        return dtype, getattr(torch, requested_vae)
    return dtype, torch.float32 if dtype == torch.float16 else dtype
