"""What ZeroGPU does to torch in the main process, as far as a CPU can show it (spaces 0.51.3, zero/torch/patching.py
and zero/__init__.py).

- On import: `torch.cuda.is_available()` answers True (and device_count 1, current_device 0, capability 9.0, the
  name of an H200, synchronize a no-op), so an app choosing its device sees a GPU there. What it cannot do here:
  the real runtime also makes `.to("cuda")` work in the main process (weights stay in CPU memory behind tensors
  that say `cuda:0`); on a CPU-only torch that would need the whole emulation, so apps under the double load their
  weights with `--device cpu`. The choice itself (device, dtype, model) is what tests check under the patch.
- At `launch` (the real one wraps gr.Blocks.launch to pack first): every parameter and buffer of every torch module
  in the process is replaced by a tensor that raises on any operation with the real message ("Cannot apply function
  ... on disk-offloaded Tensor ..."); reading its device answers cuda:0, as the real fakes do. The real runtime
  packs only the tensors moved to CUDA; an app on ZeroGPU moves all of its models there, so all are packed here.
- In a worker, before its first call: the patches are undone and every packed tensor gets a working copy (the real
  worker moves the packs to its GPU, inside the billed time).
"""

from __future__ import annotations

import gc
import time
import warnings

import torch
from torch.overrides import resolve_name

OFFLOADED_ERROR_MESSAGE = "Cannot apply function {} on disk-offloaded Tensor {}"
FAKE_CUDA = {
    "is_available": lambda: True,
    "device_count": lambda: 1,
    "current_device": lambda: 0,
    "synchronize": lambda *args: None,
    "get_device_capability": lambda *args, **kwargs: (9, 0),
    "get_device_name": lambda *args, **kwargs: "NVIDIA H200",
}
_real_cuda: dict = {}
_packed: list[tuple[dict, str, torch.Tensor]] = []  # (the module's _parameters or _buffers, name, the real tensor)


class OffloadedTensor(torch.Tensor):
    """Stands where a packed weight was: shape and dtype kept (on the meta device, no memory), everything raises."""

    @staticmethod
    def __new__(cls, original: torch.Tensor):
        fake = torch.Tensor._make_subclass(cls, torch.empty(original.shape, dtype=original.dtype, device="meta"))
        fake.described = f"ZeroGPUTensor(shape={tuple(original.shape)}, dtype={original.dtype}, device='cuda:0')"
        return fake

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func == torch.Tensor.device.__get__:  # (== : each access to the getter makes a new wrapper)
            return torch.device("cuda", 0)
        if func == torch.Tensor.__repr__:
            return args[0].described
        tensor = next(arg for arg in args if isinstance(arg, OffloadedTensor)) if args else "?"
        raise Exception(OFFLOADED_ERROR_MESSAGE.format(resolve_name(func), getattr(tensor, "described", tensor)))


def patch_main_process() -> None:
    for name, fake in FAKE_CUDA.items():
        _real_cuda[name] = getattr(torch.cuda, name)
        setattr(torch.cuda, name, fake)


def pack() -> int:
    """Replace every module's parameters and buffers by offloaded tensors; returns the bytes packed."""
    packed_bytes = 0
    with warnings.catch_warnings():  # isinstance on some of torch's deprecated objects warns
        warnings.simplefilter("ignore")
        modules = [obj for obj in gc.get_objects() if isinstance(obj, torch.nn.Module)]
    for module in modules:
        for tensors in (module._parameters, module._buffers):
            for name, tensor in list(tensors.items()):
                if tensor is None or isinstance(tensor, OffloadedTensor) or tensor.is_meta:
                    continue
                _packed.append((tensors, name, tensor))
                tensors[name] = OffloadedTensor(tensor)
                packed_bytes += tensor.numel() * tensor.element_size()
    return packed_bytes


def packed_count() -> int:
    return len(_packed)


def unpack_in_worker(init_seconds: float) -> float:
    """The worker's start: undo the patches, wait `init_seconds` (the real `allow` and CUDA initialisation), give
    every packed tensor a working copy (the real move to the GPU). Returns the seconds it took."""
    started = time.monotonic()
    for name, real in _real_cuda.items():
        setattr(torch.cuda, name, real)
    time.sleep(init_seconds)
    for tensors, name, original in _packed:
        copy = original.detach().clone()
        tensors[name] = torch.nn.Parameter(copy, original.requires_grad) if isinstance(original, torch.nn.Parameter) \
            else copy
    _packed.clear()
    return time.monotonic() - started
