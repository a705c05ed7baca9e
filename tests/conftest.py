"""Shared fixtures: tiny models built from configs (nothing is downloaded), test images, settings."""

import atexit
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: no test may touch the network
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# A Hub cache of the suite's own, empty: no test may pass or fail because of what this machine has cached.
_HF_HOME = tempfile.mkdtemp(prefix="latent-demo-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_CACHE"] = os.path.join(_HF_HOME, "hub")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)

import contextlib  # noqa: E402
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


# --- Other families' autoencoders (--compare-vaes), tiny, written as the Hub holds them ------------------------------
_OTHER_AUTOENCODERS = os.path.join(_HF_HOME, "other-autoencoders")


def tiny_other_autoencoders() -> dict[str, str]:
    """Two folders, written once per session with fixed-seed random weights in safetensors: a FLUX.1-shaped
    AutoencoderKL (8× down, 16 channels, a shift factor; in a vae/ subfolder as in a pipeline repo) and a
    DC-AE-shaped AutoencoderDC (32× down, 32 channels). Their architectures at full size: test_latent_spaces.py."""
    from diffusers import AutoencoderDC, AutoencoderKL

    folders = {"flux-shaped": os.path.join(_OTHER_AUTOENCODERS, "flux-shaped"),
               "dc-ae-shaped": os.path.join(_OTHER_AUTOENCODERS, "dc-ae-shaped")}
    if not os.path.isdir(_OTHER_AUTOENCODERS):
        torch.manual_seed(0)
        AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                      up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=16,
                      norm_num_groups=8, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                      use_post_quant_conv=False).save_pretrained(os.path.join(folders["flux-shaped"], "vae"))
        vit, widths = ("ResBlock",) * 4 + ("EfficientViTBlock",) * 2, (8, 8, 16, 16, 32, 32)
        AutoencoderDC(latent_channels=32, attention_head_dim=8, encoder_block_types=vit, decoder_block_types=vit,
                      encoder_block_out_channels=widths, decoder_block_out_channels=widths,
                      encoder_layers_per_block=(1,) * 6, decoder_layers_per_block=(1,) * 6,
                      encoder_qkv_multiscales=((),) * 4 + ((5,),) * 2, decoder_qkv_multiscales=((),) * 4 + ((5,),) * 2,
                      upsample_block_type="interpolate", downsample_block_type="Conv",
                      scaling_factor=0.41407).save_pretrained(folders["dc-ae-shaped"])
    return folders


def compare_vaes_flag() -> str:
    """The --compare-vaes value that loads both tiny folders."""
    return ",".join(tiny_other_autoencoders().values())


# the page's own events listed on the API page: the tests call them with gradio_client's defaults
APP_SETTINGS = dict(fast_decoder="none", offline=True, max_image_side=512, max_file_size_mb=2, queue_max_size=8,
                    api_lists_page_events=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_settings() -> Settings:
    return Settings(**APP_SETTINGS, port=free_port())


@contextlib.contextmanager
def launched(models, settings: Settings):
    """The real app launched in-process on the settings' loopback port, closed afterwards; yields its URL."""
    from latent_demo.ui.app import build_app, launch

    demo = build_app(models, settings)
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{settings.port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(models, app_settings):
    """The real app (offline model, float32, the tiny --compare-vaes folders) launched on a free loopback port;
    closed after the session."""
    from latent_demo.models import load_extra_autoencoders

    extras = load_extra_autoencoders(Settings(compare_vaes=compare_vaes_flag(), offline=True), CPU, torch.float32)
    with launched(dataclasses.replace(models, extra_autoencoders=extras), app_settings) as url:
        yield url


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


# --- The configuration matrix: what visitors run, not only the lab's float32 ----------------------------------------

def cpu_flags() -> set[str]:
    """The processor's feature flags as the kernel reports them (read here, not through the code under test)."""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


NATIVE_BF16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
DEFAULT_DTYPE = torch.bfloat16 if NATIVE_BF16 else torch.float32  # what a visitor's CPU gets from --dtype auto

# name -> (settings, expected UNet/text encoder dtype, expected VAE dtype)
CONFIGURATIONS = {
    "default": ({}, DEFAULT_DTYPE, DEFAULT_DTYPE),
    # the CUDA path's mix (half-precision UNet and text encoder, float32 VAE), with bf16 standing in for fp16
    "mixed": ({"dtype": "bfloat16", "vae_dtype": "float32"}, torch.bfloat16, torch.float32),
    # the other full-model dtype, so both float32 and bfloat16 run whatever this CPU's default is
    "bfloat16" if DEFAULT_DTYPE == torch.float32 else "float32": (
        {"dtype": "bfloat16"} if DEFAULT_DTYPE == torch.float32 else {"dtype": "float32"},
        torch.bfloat16 if DEFAULT_DTYPE == torch.float32 else torch.float32,
        torch.bfloat16 if DEFAULT_DTYPE == torch.float32 else torch.float32),
}


def load_configured_models(name: str):
    """The offline model loaded through the app's own loading code with the configuration's settings; fails if the
    dtypes the app chose are not the ones this configuration stands for."""
    from latent_demo.models import load_models

    overrides, dtype, vae_dtype = CONFIGURATIONS[name]
    loaded = load_models(Settings(model="offline", fast_decoder="none", offline=True, compare_vaes=compare_vaes_flag(),
                                  **overrides))
    assert (loaded.dtype, loaded.vae_dtype) == (dtype, vae_dtype), \
        f"configuration {name!r} loaded {loaded.dtype}/{loaded.vae_dtype}, expected {dtype}/{vae_dtype}"
    assert loaded.unet.dtype == dtype and loaded.text_encoder.dtype == dtype and loaded.vae.dtype == vae_dtype
    assert all(extra.model.dtype == vae_dtype for extra in loaded.extra_autoencoders)
    return loaded


# Images fit in 128 px on the matrix apps: bfloat16 convolutions are emulated (slow) on CPUs without native bf16,
# and the sizes do not change what a configuration can break (dtype boundaries).
MATRIX_SIDE = 128
MATRIX_APP_SETTINGS = {**APP_SETTINGS, "max_image_side": MATRIX_SIDE}


@pytest.fixture(scope="session", params=list(CONFIGURATIONS))
def configuration(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def configured_models(configuration):
    return load_configured_models(configuration)


@pytest.fixture(scope="session")
def configured_app_url(configured_models):
    """The app launched on one configuration of the matrix (each is launched once, and closed after its tests)."""
    with launched(configured_models, Settings(**MATRIX_APP_SETTINGS, port=free_port())) as url:
        yield url


@pytest.fixture(scope="session")
def configured_client(configured_app_url):
    from gradio_client import Client

    return Client(configured_app_url, verbose=False)


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


# --- ZeroGPU: the app under the test double of `spaces` (tests/zerogpu_app.py), shared by the ZeroGPU tests ---------
EVERY_THIRD_CALL_COLD = [{"idle": False} if index % 3 == 2 else {} for index in range(2000)]


@pytest.fixture(scope="session")
def zerogpu_app(tmp_path_factory):
    """`python app.py` as ZeroGPU runs it: weights packed in the main process from launch on, every third call
    given a cold worker by the scheduler, and every call held to its own estimate (scaled to this CPU); the tiny
    --compare-vaes folders loaded (and packed) beside the model."""
    from zerogpu_app import cpu_time_scale, start_app, stop_app

    scale = cpu_time_scale(load_configured_models("default"))  # the app's own (default) configuration
    app = start_app(tmp_path_factory.mktemp("zerogpu"), "--compare-vaes", compare_vaes_flag())
    app.configure(time_scale=scale)
    app.plan(EVERY_THIRD_CALL_COLD)
    yield app
    stop_app(app)


@pytest.fixture(scope="session")
def zclient(zerogpu_app):
    from gradio_client import Client

    return Client(zerogpu_app.url, verbose=False)
