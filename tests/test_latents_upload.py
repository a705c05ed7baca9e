"""Latents files coming back in: ours read back exactly; the hostile ones are in tests/reliability/corpus.py."""

import pytest
import torch

from latent_demo.latents_upload import read_latents_file
from latent_demo.serving.files import latents_file


def test_our_latents_file_reads_back_exactly_with_its_metadata(models):
    latents = torch.randn(1, 4, 12, 10)
    latents_path = latents_file(latents, models, settings='{"seed": 1}')
    read, metadata = read_latents_file(latents_path, 4, 64, 768, 8)
    assert torch.equal(read, latents) and metadata["settings"] == '{"seed": 1}' and metadata["model"] == models.source


def test_a_three_dimensional_half_precision_tensor_is_latents_too(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "latents.safetensors"
    save_file({"x": torch.randn(4, 8, 8).half()}, str(path))
    read, metadata = read_latents_file(path, 4, 64, 768, 8)
    assert read.shape == (1, 4, 8, 8) and read.dtype == torch.float32 and metadata == {}


@pytest.mark.parametrize("side, message", [(7, "decode to 56×56 px"), (97, "decode to 776×776 px")])
def test_latents_outside_the_image_limits_are_refused(tmp_path, side, message):
    from safetensors.torch import save_file

    path = tmp_path / "latents.safetensors"
    save_file({"latents": torch.zeros(1, 4, side, side)}, str(path))
    with pytest.raises(ValueError, match=message):
        read_latents_file(path, 4, 64, 768, 8)


@pytest.mark.parametrize("header, message", [
    ({"x": {"dtype": "F32", "shape": [1, 4, 8, 8], "data_offsets": 5}}, "byte range"),
    ({"x": {"dtype": "F32", "shape": [True, 4, 8, 8], "data_offsets": [0, 1024]}}, "shape is malformed"),
    ({"x": {"dtype": "F32", "shape": [1, 4, 8, 8], "data_offsets": [0.0, 1024]}}, "byte range"),
    ({"__metadata__": {"a": 1}, "x": {"dtype": "F32", "shape": [1, 4, 8, 8], "data_offsets": [0, 1024]}},
     "metadata is not text"),
    ("[" * 60_000, "header is not JSON"),
])
def test_malformed_headers_are_refused_as_such(tmp_path, header, message):
    import json
    import struct

    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    path = tmp_path / "latents.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(1024))
    with pytest.raises(ValueError, match=message):
        read_latents_file(path, 4, 64, 768, 8)
