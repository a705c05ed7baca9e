"""`--compare-vaes` as a visitor pays for it: `python app.py` on SD 1.5-size random weights with and without the
SDXL, FLUX.1-schnell and DC-AE autoencoders (their published architectures, random weights, saved as the Hub holds
them), 512 px: /encode's time and the server's peak memory, then /compare_vaes against the encode and decode calls
it adds, run in this process (alternating)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from gradio_client import Client, handle_file

from benchmarks.harness import Row, seconds
from benchmarks.processes import GB, ROOT, RunningApp, alternate_timed, dtype_name, peak_rss, saved_sd15
from latent_demo.compression import DEFAULT_SQUEEZES, squeeze
from latent_demo.config import Settings
from latent_demo.images import open_image, pil_to_pixels, prepare_image
from latent_demo.latents import latents_to_pixels, pixels_to_latents
from latent_demo.models import load_extra_autoencoders
from latent_demo.other_autoencoders import PUBLISHED_CONFIGS, random_weight_autoencoder
from latent_demo.presets import choose_dtypes

IMAGE = ROOT / "assets" / "astronaut.png"
SIZE = 512


def saved_autoencoders(folder: Path) -> list[str]:
    """Each published architecture with random float32 weights in safetensors (written once, reused)."""
    paths = []
    for name in PUBLISHED_CONFIGS:
        path = folder / name
        if not (path / "config.json").exists():
            random_weight_autoencoder(name).model.save_pretrained(path)
        paths.append(str(path))
    return paths


def resident(pid: int) -> int:
    """The process's resident memory now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def served_encode(app: RunningApp, reps: int) -> tuple[float, int, int]:
    """Median seconds of /encode for scripts (gradio_client defaults), then the server's peak and resident memory
    (the peak is the loading's: fp32 files cast to the app's dtype)."""
    client = Client(app.url, verbose=False)
    times = sorted(seconds(lambda: client.predict(handle_file(str(IMAGE)), api_name="/encode")) for _ in range(reps))
    return times[len(times) // 2], peak_rss(app.app.pid), resident(app.app.pid)


def raw_calls(vae, extras, squeezes: list[str]):
    """What /compare_vaes adds, as plain calls: this VAE's encode and decode, a decode per squeeze, each extra's
    encode and decode."""
    pixels = pil_to_pixels(prepare_image(open_image(str(IMAGE), 40_000_000), SIZE, 64, 32))

    def run():
        latents = pixels_to_latents(vae, pixels).float().cpu()
        latents_to_pixels(vae, latents)
        for name in squeezes:
            latents_to_pixels(vae, squeeze(latents, name)[0])
        for extra in extras:
            latents_to_pixels(extra.model, pixels_to_latents(extra.model, pixels).float().cpu())
    return run


def bench_compare_vaes(reps: int) -> list[Row]:
    temp = Path(tempfile.gettempdir())
    model = str(saved_sd15(temp / "latent-demo-bench-sd15"))
    extras = saved_autoencoders(temp / "latent-demo-bench-autoencoders")
    dtype = choose_dtypes(torch.device("cpu"), "auto")[0]
    flags = ("--device", "cpu", "--max-image-side", str(SIZE))
    with RunningApp(model, 900, *flags) as app:
        alone_s, alone_peak, alone_rss = served_encode(app, reps)
    with RunningApp(model, 900, *flags, "--compare-vaes", ",".join(extras)) as app:
        with_s, with_peak, with_rss = served_encode(app, reps)
        client = Client(app.url, verbose=False)
        loaded = load_extra_autoencoders(Settings(compare_vaes=",".join(extras), offline=True), torch.device("cpu"),
                                         dtype)
        vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=dtype).eval()
        call = raw_calls(vae, loaded, DEFAULT_SQUEEZES)
        times = alternate_timed({
            "served": lambda: (0, 0, seconds(lambda: client.predict(handle_file(str(IMAGE)), DEFAULT_SQUEEZES,
                                                                    api_name="/compare_vaes"))),
            "raw": lambda: (0, 0, seconds(call))}, reps)
    served_s, raw_s = times["served"][2], times["raw"][2]
    name = f"SD 1.5 size, {SIZE}px, {dtype_name(dtype)}"
    return [Row(f"/encode for scripts without --compare-vaes ({name})", f"{alone_s:.2f} s"),
            Row("/encode with --compare-vaes sdxl, flux-schnell, dc-ae (random weights, their architectures)",
                f"{with_s:.2f} s", f"without {alone_s:.2f} s", with_s / alone_s, "≤ 1.10", with_s / alone_s <= 1.10),
            Row("… the server's resident memory after the calls, with them", f"{with_rss / GB:.2f} GB",
                f"without {alone_rss / GB:.2f} GB", with_rss / alone_rss),
            Row("… its peak (loading: fp32 files cast to the app's dtype), with them", f"{with_peak / GB:.2f} GB",
                f"without {alone_peak / GB:.2f} GB", with_peak / alone_peak),
            Row(f"/compare_vaes, gradio_client defaults (3 autoencoders + {len(DEFAULT_SQUEEZES)} squeezes)",
                f"{served_s:.2f} s", f"its encode/decode calls in one process {raw_s:.2f} s", served_s / raw_s,
                "≤ 1.10", served_s / raw_s <= 1.10)]


if __name__ == "__main__":  # this section alone: python -m benchmarks.compare_vaes [reps]
    import sys

    for row in bench_compare_vaes(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(row.line())
