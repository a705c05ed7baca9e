"""Latents coming back in: a visitor's `.safetensors` file, checked before anything is read into a tensor.

Only the safetensors format is parsed (an 8-byte little-endian header length, a JSON header, raw little-endian
data): no pickle, no zip. The header is read and checked first (its claimed length, one tensor, its dtype, rank,
channel count, size and byte range), then the bytes are loaded and the values checked (finite, plausible).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

MAX_HEADER_BYTES = 64 * 1024  # a header describing one tensor is a few hundred bytes
DTYPES = {"F32": 4, "F16": 2, "BF16": 2}
# SD-style latents (× scaling_factor) stay within about ±10 (unit variance by design); beyond this they are not
# latents any decoder was trained on, and would decode to nothing but saturated noise.
PLAUSIBLE_ABS = 100.0


def read_latents_file(path: str | Path, channels: int, min_side: int, max_side: int, factor: int
                      ) -> tuple[torch.Tensor, dict[str, str]]:
    """A latents file -> ((1, channels, h, w) float32 latents, its metadata); ValueError saying what is wrong.
    min_side/max_side: the app's image limits in pixels (the latents' sides × `factor` must fall within them)."""
    data = Path(path).read_bytes()
    name, entry, metadata, start = _header(data)
    shape = _checked_shape(entry, channels, min_side, max_side, factor)
    offsets = entry.get("data_offsets")
    expected = math.prod(shape) * DTYPES[entry["dtype"]]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
            and offsets[0] == 0 and offsets[1] == expected):
        raise ValueError(f"the tensor's byte range {entry.get('data_offsets')} does not match its shape and dtype "
                         f"({expected:,} bytes)")
    if len(data) - start != expected:
        raise ValueError(f"the file is truncated or padded: {len(data) - start:,} data bytes for a tensor of "
                         f"{expected:,}")
    try:
        latents = load_safetensors(data)[name].float().reshape(1, *shape[-3:])
    except SafetensorError as err:  # what our checks let through and the format's own parser refuses
        raise ValueError(f"not a valid .safetensors file ({err})") from None
    if not torch.isfinite(latents).all():
        raise ValueError("the latents contain NaN or infinite values")
    peak = latents.abs().max().item()
    if peak > PLAUSIBLE_ABS:
        raise ValueError(f"the latents reach {peak:,.4g}; latents × scaling_factor stay within about ±10 (a VAE "
                         f"makes them with unit variance), so these would decode to saturated noise")
    return latents, {key: str(value) for key, value in metadata.items()}


def _header(data: bytes) -> tuple[str, dict, dict, int]:
    """(the tensor's name, its header entry, the metadata, where the data starts)."""
    if len(data) < 8:
        raise ValueError("the file is too short to be a .safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES or length > len(data) - 8:
        kind = (" (it looks like a pickle)" if data[:1] == b"\x80" else " (it looks like a zip archive)"
                if data[:2] == b"PK" else "")
        raise ValueError(f"not a .safetensors latents file{kind}: its header claims {length:,} bytes")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError("not a .safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("not a .safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("not a .safetensors file: its metadata is not text")
    if len(header) != 1:
        raise ValueError(f"the file holds {len(header)} tensors; a latents file holds exactly one")
    (name, entry), = header.items()
    if not isinstance(entry, dict) or not isinstance(metadata, dict):
        raise ValueError("not a .safetensors file: a header entry is malformed")
    return name, entry, metadata, 8 + length


def _is_int(value) -> bool:
    return type(value) is int  # not bool, not float: JSON's true and 0.0 equal 1 and 0 in Python


def _checked_shape(entry: dict, channels: int, min_side: int, max_side: int, factor: int) -> tuple[int, ...]:
    dtype, shape = entry.get("dtype"), entry.get("shape")
    if dtype not in DTYPES:
        raise ValueError(f"the tensor's dtype is {dtype}; latents are float32, float16 or bfloat16")
    if not isinstance(shape, list) or not all(_is_int(side) and side >= 0 for side in shape):
        raise ValueError("not a .safetensors file: the tensor's shape is malformed")
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[0] != 1):
        raise ValueError(f"the tensor has shape {tuple(shape)}; latents are {channels}×H×W or 1×{channels}×H×W")
    if shape[-3] != channels:
        raise ValueError(f"the tensor has {shape[-3]} channels; this model's latents have {channels}")
    for side in shape[-2:]:
        if not min_side <= side * factor <= max_side:
            raise ValueError(f"latents of {shape[-2]}×{shape[-1]} decode to {shape[-2] * factor}×{shape[-1] * factor}"
                             f" px; this app takes {min_side} to {max_side} px a side")
    return tuple(shape)
