"""Opt-in `--compile`: the UNet compiled at start-up for the default image size; every other shape runs eager.

torch.compile specialises on shapes: a shape it has not seen means compiling again, for a minute or more, inside a
visitor's request. So the compiled UNet is only ever called with the shapes it was warmed up on at start-up (the
default size, with and without guidance: batch 1 and 2), and any other request runs the eager UNet, the same
module with the same weights. Nothing compiles after start-up: a call that would recompile anyway (a guard we did
not foresee) is refused by torch ("fail_on_recompile") and runs eager.

On CUDA the compile records CUDA graphs (mode "reduce-overhead"), which the issue's H100 measurement favoured
(0.28 s against 0.54 s for plain inductor at 25 steps); on a CPU it is plain inductor (+9–22 % a step,
benchmarks/README.md). ZeroGPU's short-lived workers keep no just-in-time compilation; its ahead-of-time route
(`spaces.aoti_*`) is not built yet, so `--compile` is refused there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

TOKENS = 77  # CLIP's sequence length: every prompt's embeddings have this many rows
CUDA_MODE = "reduce-overhead"  # CUDA graphs
CPU_MODE = "default"  # inductor
BACKEND = "inductor"  # tests swap in "eager" (graph capture only) to check the dispatch in seconds


def default_side(vae_scale_factor: int, min_side: int, max_side: int) -> int:
    """The image side the Generate tab starts at: 512 px, within the settings' limits, on the VAE's grid."""
    low = -(-min_side // vae_scale_factor) * vae_scale_factor
    high = max_side // vae_scale_factor * vae_scale_factor
    return min(max(512, low), high)


@dataclass
class CompiledUNet:
    """Calls the compiled UNet for the shapes it was warmed up on, the eager one for any other: the `unet` argument
    of sampling.denoise."""

    eager: torch.nn.Module
    compiled: Callable
    shapes: set = field(default_factory=set)  # (sample shape, text embeddings shape, dtype) warmed up
    compile_seconds: float = 0.0
    refused: set = field(default_factory=set)  # shapes a call found compiled, but a guard failed (said once)

    def __call__(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, return_dict: bool = False):
        key = (tuple(sample.shape), tuple(encoder_hidden_states.shape), sample.dtype)
        if key not in self.shapes:
            return self.eager(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=return_dict)
        timestep = _as_compiled(timestep, sample.device)
        # the loop's first latents and the prompt's embeddings were made outside inference mode, later latents in
        # it: a guarded difference, so hand over inference tensors only (a copy of 16,384 values per image)
        sample, encoder_hidden_states = (x if x.is_inference() else x.clone() for x in (sample, encoder_hidden_states))
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                return self.compiled(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                     return_dict=return_dict)
        except RuntimeError as err:
            if "recompil" not in str(err).lower():
                raise
            if key not in self.refused:  # said once: the same call path would fail the same guard every time
                self.refused.add(key)
                log.warning("the compiled UNet would recompile for %s; running it eager (%s)", key, str(err)[:600])
            return self.eager(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=return_dict)

    def warm_up(self, side: int, vae_scale_factor: int, text_dim: int) -> None:
        """Compile (and on CUDA record the graphs) for `side`×`side` images, batch 1 and 2, timing it all."""
        started = time.perf_counter()
        latent = side // vae_scale_factor
        unet = self.eager
        for batch in (1, 2):
            with torch.inference_mode():  # as the loop runs: its tensors are inference tensors, a guarded property
                sample = torch.randn(batch, unet.config.in_channels, latent, latent, device=unet.device,
                                     dtype=unet.dtype)
                text = torch.randn(batch, TOKENS, text_dim, device=unet.device, dtype=unet.dtype)
                self.shapes.add((tuple(sample.shape), tuple(text.shape), sample.dtype))
                for _ in range(3 if unet.device.type == "cuda" else 1):  # CUDA graphs: warm-up, record, replay
                    self.compiled(sample, _as_compiled(999, unet.device), encoder_hidden_states=text,
                                  return_dict=False)
        if unet.device.type == "cuda":
            torch.cuda.synchronize(unet.device)
        self.compile_seconds = time.perf_counter() - started


def _as_compiled(timestep, device: torch.device) -> torch.Tensor:
    """The timestep as the compiled UNet was warmed up with, whatever the scheduler gives (int64 for DDIM, float32
    for Euler, made outside inference mode): a float32 tensor on the device, made here, so an inference tensor
    inside the loop. Any other type, device or mode would fail a guard and recompile."""
    return torch.as_tensor(timestep, device=device).to(torch.float32, copy=True)


def compile_unet(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int) -> CompiledUNet:
    """The UNet compiled for `side` px images and warmed up (minutes on a CPU): see the module's docstring."""
    mode = CUDA_MODE if unet.device.type == "cuda" else CPU_MODE
    compiled = CompiledUNet(unet, torch.compile(unet, backend=BACKEND, mode=None if BACKEND != "inductor" else mode,
                                                dynamic=False))
    log.info("compiling the UNet for %d×%d px images (%s, %s); this takes a while", side, side, BACKEND, mode)
    compiled.warm_up(side, vae_scale_factor, text_dim)
    log.info("compiled the UNet in %.0f s", compiled.compile_seconds)
    return compiled
