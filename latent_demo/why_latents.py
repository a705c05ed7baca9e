"""Why latents: what one UNet step costs on the latents against the same UNet run on pixels, counted not run.

The pixel-size UNet is the loaded architecture with 3 input and output channels at the image's full size. Both are
built on the meta device (shapes only: no weights, nothing allocated) and counted with torch's FlopCounterMode; only
the latent-size step is really run, once, to measure this machine's speed.
"""

from __future__ import annotations

import json
import math
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from latent_demo.models import Models
from latent_demo.sampling import uses_guidance

PIXEL_CHANNELS = 3


@dataclass(frozen=True)
class StepCost:
    """One UNet call at batch 1 on a (channels, height, width) input."""

    channels: int
    height: int
    width: int
    flops: int  # multiply and add counted as 2, as FlopCounterMode does
    peak_activation_bytes: int  # activations alive at once during the call (weights excluded), attention fused
    attention_tokens: int  # tokens in the largest self-attention layer (height × width at its level)
    attention_matrix_bytes: int  # that layer's heads × tokens × tokens scores, were they stored at once
    layer_flops: dict[str, int]  # per module ("conv_in", "down_blocks.0.attentions.0...attn1"), sub-modules included

    @property
    def values(self) -> int:
        return self.channels * self.height * self.width


@dataclass(frozen=True)
class WhyLatents:
    """The same UNet on latents and on pixels, with one latent step measured on this machine (once it is)."""

    latent: StepCost
    pixel: StepCost
    unet_calls_per_step: int  # 2 with classifier-free guidance
    steps: int
    latent_step_seconds: float | None = None  # measured: one UNet call at batch 1 on the latents

    @property
    def flop_ratio(self) -> float:
        return self.pixel.flops / self.latent.flops

    @property
    def pixel_step_seconds(self) -> float | None:
        """An estimate at the latent step's FLOP rate (optimistic: the pixel step's larger activations run slower)."""
        return None if self.latent_step_seconds is None else self.latent_step_seconds * self.flop_ratio

    def image_seconds(self, step_seconds: float) -> float:
        return step_seconds * self.unet_calls_per_step * self.steps


def why_latents(models: Models, height: int = 512, width: int = 512, steps: int = 25, guidance_scale: float = 7.5,
                measure: bool = True) -> WhyLatents:
    """Counts both steps on shapes (cached per model and size; seconds at most) and, with `measure`, times one real
    latent step (cached too; one UNet call, which on a CPU can take several seconds: callers show the counts first).
    """
    if height % models.vae_scale_factor or width % models.vae_scale_factor:
        raise ValueError(f"height and width must be multiples of {models.vae_scale_factor}, got {height}x{width}")
    factor, channels = models.vae_scale_factor, models.unet.config.in_channels
    latent = counted_step_cost(models.unet, channels, height // factor, width // factor, models.dtype)
    pixel = counted_step_cost(models.unet, PIXEL_CHANNELS, height, width, models.dtype)
    seconds = measured_step_seconds(models.unet, channels, height // factor, width // factor) if measure else None
    return WhyLatents(latent, pixel, 2 if uses_guidance(guidance_scale) else 1, steps, seconds)


def counted_step_cost(unet: UNet2DConditionModel, channels: int, height: int, width: int,
                      dtype: torch.dtype | None = None) -> StepCost:
    """Counted on a meta-device copy built from `unet`'s config. Pass `dtype` (Models.dtype) wherever the weights may
    not be readable: on ZeroGPU the main process's weights are packed away after launch, and reading `unet.dtype`
    (which looks at a parameter) raises there."""
    return _counted(_config_key(unet), dtype or unet.dtype, _text_shape(unet), channels, height, width)


@lru_cache(maxsize=16)
def _counted(config_json: str, dtype: torch.dtype, text_shape: tuple[int, int], channels: int, height: int,
             width: int) -> StepCost:
    config = json.loads(config_json)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config({**config, "in_channels": channels, "out_channels": channels})
    unet = torch.nn.Module.to(unet, dtype).eval()  # (diffusers' own .to warns about fp32 modules: none matter here)
    attention = AttentionCalls(unet)
    sample = torch.empty(1, channels, height, width, device="meta", dtype=dtype)
    text = torch.empty(1, *text_shape, device="meta", dtype=dtype)
    # The math backend writes attention as matmuls, which FlopCounterMode counts (the fused CPU kernel it doesn't).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as flops, \
            LiveActivations(skip=attention.is_scores) as memory:
        unet(sample, 999, encoder_hidden_states=text, return_dict=False)
    tokens, heads = attention.largest_self_attention
    itemsize = torch.empty((), dtype=dtype).element_size()
    layers = {name.partition(".")[2]: sum(ops.values()) for name, ops in flops.get_flop_counts().items()
              if "." in name}
    return StepCost(channels, height, width, flops.get_total_flops(), memory.peak_bytes, tokens,
                    heads * tokens * tokens * itemsize, layers)


def measured_step_seconds(unet: UNet2DConditionModel, channels: int, height: int, width: int) -> float:
    return _measured(unet, channels, height, width)


@lru_cache(maxsize=16)
def _measured(unet: UNet2DConditionModel, channels: int, height: int, width: int) -> float:
    """Cached per UNet (modules hash by identity) and size."""
    sample = torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(0)).to(
        unet.device, unet.dtype)
    text = torch.zeros(1, *_text_shape(unet), device=unet.device, dtype=unet.dtype)

    def step() -> float:
        start = time.perf_counter()
        unet(sample, 999, encoder_hidden_states=text, return_dict=False)
        if unet.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.inference_mode():
        first = step()  # it pays one-off costs (kernel selection, memory pools): a second call where that is cheap
        return step() if first < 1.0 else first


def clear_caches() -> None:
    """Forget every count and measurement (a benchmark's first visit)."""
    _counted.cache_clear()
    _measured.cache_clear()


class LiveActivations(TorchDispatchMode):
    """Tracks the bytes of the tensors ops create while they are alive, and their peak. Views and in-place results
    share memory already counted and are left out; so are tensors `skip(tensor)` names."""

    def __init__(self, skip=lambda tensor: False):
        super().__init__()
        self.live_bytes = self.peak_bytes = 0
        self._skip = skip

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out
        for tensor in out if isinstance(out, tuple | list) else (out,):
            if isinstance(tensor, torch.Tensor) and not self._skip(tensor):
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        self.live_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        weakref.finalize(tensor, self._free, size)

    def _free(self, size: int) -> None:
        self.live_bytes -= size


class AttentionCalls:
    """Hooks on the UNet's attention layers: which attention call is running (query and key token counts), and the
    largest self-attention seen (tokens, heads)."""

    def __init__(self, unet: UNet2DConditionModel):
        self.current: tuple[int, int] | None = None
        self.largest_self_attention = (0, 0)
        for module in unet.modules():
            if isinstance(module, Attention):
                module.register_forward_pre_hook(self._enter, with_kwargs=True)
                module.register_forward_hook(self._leave)

    def _enter(self, module: Attention, args, kwargs) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        context = kwargs.get("encoder_hidden_states") if len(args) < 2 else args[1]
        queries = math.prod(hidden.shape[2:]) if hidden.ndim == 4 else hidden.shape[1]
        self.current = (queries, queries if context is None else context.shape[1])
        if context is None and queries > self.largest_self_attention[0]:
            self.largest_self_attention = (queries, module.heads)

    def _leave(self, module, args, output) -> None:
        self.current = None

    def is_scores(self, tensor: torch.Tensor) -> bool:
        """Query-by-key scores (and their softmax): the math backend stores them, a fused kernel never does."""
        return self.current is not None and tensor.ndim >= 2 and tuple(tensor.shape[-2:]) == self.current


def _config_key(unet: UNet2DConditionModel) -> str:
    """The UNet's architecture as a cache key: its config (without diffusers' bookkeeping) as JSON."""
    return json.dumps({k: v for k, v in unet.config.items() if not k.startswith("_")}, sort_keys=True, default=str)


def _text_shape(unet: UNet2DConditionModel) -> tuple[int, int]:
    """(tokens, width) of the prompt embeddings the UNet's cross-attention reads: CLIP's 77 tokens."""
    width = unet.config.cross_attention_dim
    return 77, width if isinstance(width, int) else width[0]

