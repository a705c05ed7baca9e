"""Opt-in `--compile`: the UNet compiled at start-up for the default image size; every other shape runs eager.

torch.compile specialises on shapes: a shape it has not seen means compiling again, for a minute or more, inside a
visitor's request. So the compiled UNet is only ever called with the shapes it was warmed up on at start-up (the
default size, with and without guidance: batch 1 and 2), and any other request runs the eager UNet, the same
module with the same weights. Nothing compiles after start-up: a call that would recompile anyway (a guard we did
not foresee) is refused by torch ("fail_on_recompile") and runs eager.

On CUDA the compile records CUDA graphs (mode "reduce-overhead"), which an H100 measurement favoured
(0.28 s against 0.54 s for plain inductor at 25 steps); on a CPU it is plain inductor (+9–22 % a step,
benchmarks/README.md).

ZeroGPU's short-lived workers keep no just-in-time compilation, so there the UNet is compiled ahead of time
(`aot_compile_unet`): exported once for the default size (batch 1 to 2) and compiled by AOTInductor through
`spaces.aoti_compile`, inside one `spaces.GPU` call at start-up. The compiled model it returns crosses to the main
process with its own copy of the weights (spaces pickles them into shared memory), and each later worker loads
it once (`LoadedOncePerProcess`). `spaces.aoti_apply` is not used: it empties the module's weights, which would
leave no eager UNet for the other sizes; the same dispatch as above calls the compiled model for the default size
instead.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)

TOKENS = 77  # CLIP's sequence length: every prompt's embeddings have this many rows
CUDA_MODE = "reduce-overhead"  # CUDA graphs
CPU_MODE = "default"  # inductor
AOT_COMPILE_SECONDS = 1500  # ZeroGPU: what the start-up compile asks for (held only while it runs)


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
    called: set = field(default_factory=set)  # (process, shape) that ran the compiled code (said once)

    def __call__(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, return_dict: bool = False):
        key = call_key(sample, encoder_hidden_states)
        if key not in self.shapes:
            return self.eager(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=return_dict)
        timestep = _as_compiled(timestep, sample.device)
        # the loop's first latents and the prompt's embeddings were made outside inference mode, later latents in
        # it: a guarded difference, so hand over inference tensors only (a copy of 16,384 values per image)
        sample, encoder_hidden_states = (x if x.is_inference() else x.clone() for x in (sample, encoder_hidden_states))
        first = (os.getpid(), key) not in self.called  # a ZeroGPU worker is a process of its own
        started = time.perf_counter()
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                output = self.compiled(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                       return_dict=return_dict)
            if first:
                if sample.device.type == "cuda":
                    torch.cuda.synchronize(sample.device)
                self.called.add((os.getpid(), key))
                log.info("the compiled UNet ran for %s (first call in this process: %.2f s)", key,
                         time.perf_counter() - started)
            return output
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
        unet = self.eager
        for sample, text in example_inputs(unet, side, vae_scale_factor, text_dim):
            self.shapes.add(call_key(sample, text))
            with torch.inference_mode():  # as the loop runs (a guarded property)
                for _ in range(3 if unet.device.type == "cuda" else 1):  # CUDA graphs: warm-up, record, replay
                    self.compiled(sample, _as_compiled(999, unet.device), encoder_hidden_states=text,
                                  return_dict=False)
        if unet.device.type == "cuda":
            torch.cuda.synchronize(unet.device)
        self.compile_seconds = time.perf_counter() - started


def call_key(sample: torch.Tensor, text: torch.Tensor) -> tuple:
    return tuple(sample.shape), tuple(text.shape), sample.dtype


def call_keys(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int) -> list[tuple]:
    """The call keys of `side`×`side` images: batch 1 without guidance, batch 2 with it."""
    latent = side // vae_scale_factor
    return [((batch, unet.config.in_channels, latent, latent), (batch, TOKENS, text_dim), unet.dtype)
            for batch in (1, 2)]


def example_inputs(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int) -> list[tuple]:
    """(latents, prompt embeddings) of each of those keys, made in inference mode as the loop's are."""
    made = dict(device=unet.device, dtype=unet.dtype)
    with torch.inference_mode():
        return [(torch.randn(sample, **made), torch.randn(text, **made))
                for sample, text, _ in call_keys(unet, side, vae_scale_factor, text_dim)]


def _as_compiled(timestep, device: torch.device) -> torch.Tensor:
    """The timestep as the compiled UNet was warmed up with, whatever the scheduler gives (int64 for DDIM, float32
    for Euler, made outside inference mode): a float32 tensor on the device, made here, so an inference tensor
    inside the loop. Any other type, device or mode would fail a guard and recompile."""
    return torch.as_tensor(timestep, device=device).to(torch.float32, copy=True)


def compile_unet(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int,
                 backend: str = "inductor") -> CompiledUNet:
    """The UNet compiled for `side` px images and warmed up (minutes on a CPU): see the module's docstring."""
    mode = (CUDA_MODE if unet.device.type == "cuda" else CPU_MODE) if backend == "inductor" else None
    compiled = CompiledUNet(unet, torch.compile(unet, backend=backend, mode=mode, dynamic=False))
    log.info("compiling the UNet for %d×%d px images (%s, %s); this takes a while", side, side, backend, mode)
    compiled.warm_up(side, vae_scale_factor, text_dim)
    log.info("compiled the UNet in %.0f s", compiled.compile_seconds)
    return compiled


def export_unet(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int):
    """torch.export of the UNet as the loop calls it for `side`×`side` images: batch 1 or 2 (one program for both,
    so one copy of the weights), a float32 timestep, `return_dict=False`."""
    sample, text = example_inputs(unet, side, vae_scale_factor, text_dim)[1]  # batch 2: a size not specialised
    batch = torch.export.Dim("batch", min=1, max=2)
    with torch.no_grad():
        return torch.export.export(unet, (sample, _as_compiled(999, unet.device)),
                                   {"encoder_hidden_states": text, "return_dict": False},
                                   dynamic_shapes={"sample": {0: batch}, "timestep": None,
                                                   "encoder_hidden_states": {0: batch}, "return_dict": None})


def aot_compile_unet(unet: torch.nn.Module, side: int, vae_scale_factor: int, text_dim: int,
                     spaces) -> CompiledUNet:
    """ZeroGPU's `--compile`: export and AOTInductor-compile in one `spaces.GPU` call at start-up (the module's
    docstring says why); `spaces` is the imported package (or a stand-in with its `GPU` and `aoti_compile`)."""
    def export_and_compile():  # runs in a GPU worker: CUDA is real only there
        return spaces.aoti_compile(export_unet(unet, side, vae_scale_factor, text_dim))

    started = time.perf_counter()
    log.info("compiling the UNet ahead of time for %d×%d px images (spaces.aoti_compile); this takes a while",
             side, side)
    program = spaces.GPU(export_and_compile, duration=AOT_COMPILE_SECONDS)()
    compiled = CompiledUNet(unet, LoadedOncePerProcess(program), compile_seconds=time.perf_counter() - started)
    compiled.shapes.update(call_keys(unet, side, vae_scale_factor, text_dim))  # named, not run: no GPU here
    log.info("compiled the UNet ahead of time in %.0f s", compiled.compile_seconds)
    return compiled


class LoadedOncePerProcess:
    """Calls spaces' compiled program in one context per process, so that it is loaded once per GPU worker.

    The program keeps what it loaded (the package's library, written to /tmp, and its constants) in a ContextVar,
    and every request runs the loop in a new thread, whose context starts empty: each request would load it again,
    on the visitor's GPU seconds, leaving another copy in /tmp. One context per process (a worker is a forked
    process) keeps the loaded program for the worker's life. Calls are serialised: a context is entered by one
    thread at a time (a ZeroGPU worker runs one call at a time anyway)."""

    def __init__(self, program: Callable):
        self.program = program
        self._lock = threading.Lock()
        self._context: tuple[int, contextvars.Context] | None = None  # (process id, its context)

    def __call__(self, *args, **kwargs):
        with self._lock:
            if self._context is None or self._context[0] != os.getpid():
                self._context = (os.getpid(), contextvars.Context())
            return self._context[1].run(self.program, *args, **kwargs)
