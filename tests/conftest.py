"""Shared fixtures: tiny models built from configs (nothing is downloaded), test images, settings."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: no test may touch the network
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import dataclasses  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from latent_demo.config import Settings  # noqa: E402
from latent_demo.models import load_offline_models  # noqa: E402
from latent_demo.offline_model import tiny_unet  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(fast_decoder="none", offline=True)


@pytest.fixture(scope="session")
def models():
    """The offline model: tiny SD-architecture components with fixed-seed random weights, 4-channel UNet."""
    return load_offline_models(CPU, torch.float32, torch.float32)


@pytest.fixture(scope="session")
def models9(models):
    """The same components with a 9-channel (inpainting) UNet."""
    return dataclasses.replace(models, unet=tiny_unet(seed=1, in_channels=9).eval().requires_grad_(False))


def make_image(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth gradient with noise: structured enough for a VAE, different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but carries (almost) no data: a decompression-bomb probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def make_mask(width: int = 64, height: int = 64, box=(16, 16, 48, 48)) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    return mask


@pytest.fixture
def image() -> Image.Image:
    return make_image()


@pytest.fixture
def mask() -> Image.Image:
    return make_mask()


APP_SETTINGS = dict(fast_decoder="none", offline=True, max_image_side=512, max_file_size_mb=2, queue_max_size=8)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_settings() -> Settings:
    return Settings(**APP_SETTINGS, port=free_port())


@pytest.fixture(scope="session")
def app_url(models, app_settings):
    """The real app (offline model) launched in-process on a free loopback port; closed after the session."""
    from latent_demo.ui.app import build_app, launch_options

    demo = build_app(models, app_settings)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(app_settings))
    yield f"http://127.0.0.1:{app_settings.port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's real binary (/usr/bin/chromium is a wrapper script)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--no-default-browser-check"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium: Playwright can't download its own browsers offline."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 1000}}
