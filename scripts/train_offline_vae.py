"""Train the offline model's autoencoder: an `AutoencoderKL` (8x down, 4 latent channels) on permissive images.

    python -m scripts.vae_data ~/.cache/latent-demo/vae-data        # once: the training images
    python -m scripts.train_offline_vae --minutes 120               # resumes from its last checkpoint
    python -m scripts.train_offline_vae --export latent_demo/offline_vae   # fit scaling_factor, write fp16

Loss: MSE on pixels in [-1, 1] of a *sample* of the posterior, plus a small KL term, so the posterior stays a real
distribution (as Stable Diffusion's VAE: no perceptual or adversarial term here, so PSNR is what it optimises).
Random crops at several scales and flips; photos most of the time. The four assets/ photos are the held-out set:
their PSNR (long side 512 px) is the curve's y axis, written to CSV and PNG beside the checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from PIL import Image, ImageDraw

log = logging.getLogger("train_offline_vae")
ROOT = Path(__file__).resolve().parent.parent
HELD_OUT = [ROOT / "assets" / name for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")]
DEFAULT_DATA = Path.home() / ".cache" / "latent-demo" / "vae-data"
DEFAULT_RUN = Path.home() / ".cache" / "latent-demo" / "vae-run"


@dataclass(frozen=True)
class TrainConfig:
    block_out_channels: tuple[int, ...] = (32, 64, 128, 128)  # 3.75 M parameters: 7.5 MB in fp16
    batch_size: int = 16
    crop: int = 128  # px; the model is fully convolutional (no attention), so it applies at 512 px all the same
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    total_steps: int = 4000  # cosine decay to 10 % over these steps
    kl_weight: float = 1e-4  # on the KL summed per image / its pixel values
    ema_decay: float = 0.999
    photo_share: float = 0.8  # the rest split evenly between clipart and emoji
    # Share of crops whose RGB channels are shuffled: the photos here have few saturated reds, and an early model
    # rebuilt a red cup as teal. Shuffling shows every hue; added at step 1012 of the shipped run (see the curve).
    channel_shuffle: float = 0.5
    seed: int = 0


def build_vae(config: TrainConfig) -> AutoencoderKL:
    """SD's VAE layout (4 levels: /8, 4 latent channels), narrower, without the mid-block attention."""
    torch.manual_seed(config.seed)
    levels = len(config.block_out_channels)
    return AutoencoderKL(block_out_channels=config.block_out_channels, layers_per_block=1, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels, norm_num_groups=32,
                         mid_block_add_attention=False, sample_size=512)


def load_pool(data_dir: Path) -> dict[str, list[torch.Tensor]]:
    """Every training image as a uint8 (3, H, W) tensor, photos capped at 1024 px on the long side."""
    entries = json.loads((data_dir / "manifest.json").read_text())
    pool: dict[str, list[torch.Tensor]] = {"photo": [], "clipart": [], "emoji": []}
    for entry in entries:
        image = Image.open(data_dir / entry["file"])
        if image.mode in ("RGBA", "LA", "P"):  # clipart and emoji: over a random plain background
            rgba = image.convert("RGBA")
            shade = tuple(int(v) for v in np.random.default_rng(len(pool[entry["kind"]])).integers(0, 256, 3))
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, shade + (255,)), rgba)
        image = image.convert("RGB")
        image.thumbnail((1024, 1024), Image.LANCZOS)
        pool[entry["kind"]].append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    return pool


def random_crop(image: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """A crop of `crop` px at a random scale (a region of one crop's side .. the image's short side), maybe
    flipped."""
    _, height, width = image.shape
    short = min(height, width)
    low = min(crop, short)  # region side at full resolution
    side = int(low + torch.rand(1, generator=generator).item() * (short - low))
    top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
    region = image[:, top:top + side, left:left + side].float().unsqueeze(0) / 127.5 - 1.0
    region = F.interpolate(region, size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)
    if torch.rand(1, generator=generator).item() < 0.5:
        region = region.flip(-1)
    return region[0]


def next_batch(pool: dict[str, list[torch.Tensor]], config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(config.batch_size):
        draw = torch.rand(1, generator=generator).item()
        clipart_below = (1 + config.photo_share) / 2
        kind = "photo" if draw < config.photo_share else ("clipart" if draw < clipart_below else "emoji")
        images = pool[kind]
        crop = random_crop(images[int(torch.randint(0, len(images), (1,), generator=generator))], config.crop,
                           generator)
        if torch.rand(1, generator=generator).item() < config.channel_shuffle:
            crop = crop[torch.randperm(3, generator=generator)]
        crops.append(crop)
    return torch.stack(crops).clamp(-1, 1)


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.total_steps - config.warmup_steps))
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_loss(vae: AutoencoderKL, pixels: torch.Tensor, config: TrainConfig, autocast: bool
                  ) -> tuple[torch.Tensor, float]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        posterior = vae.encode(pixels).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
    mse = F.mse_loss(reconstruction.float(), pixels)
    kl = posterior.kl().sum() / pixels.numel()
    return mse + config.kl_weight * kl, mse.item()


def held_out_pixels(long_side: int = 512) -> list[torch.Tensor]:
    """The four example photos scaled to `long_side` px on their long side, cut to multiples of 8."""
    batches = []
    for path in HELD_OUT:
        image = Image.open(path).convert("RGB")
        scale = long_side / max(image.size)
        size = (int(image.width * scale) // 8 * 8, int(image.height * scale) // 8 * 8)
        image = image.resize(size, Image.LANCZOS)
        batches.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0)
    return batches


@torch.no_grad()
def held_out_psnr(vae: AutoencoderKL, long_side: int = 512) -> list[float]:
    """PSNR (dB, peak-to-peak 2) of mean-latent reconstructions of each held-out photo, in float32."""
    vae.eval()
    scores = []
    for pixels in held_out_pixels(long_side):
        reconstruction = vae.decode(vae.encode(pixels).latent_dist.mean).sample.clamp(-1, 1)
        mse = torch.mean((reconstruction - pixels) ** 2).item()
        scores.append(10 * math.log10(4.0 / mse))
    return scores


def ema_update(ema: AutoencoderKL, vae: AutoencoderKL, decay: float) -> None:
    with torch.no_grad():
        for target, source in zip(ema.parameters(), vae.parameters(), strict=True):
            target.lerp_(source, 1 - decay)


def save_checkpoint(run_dir: Path, step: int, vae, ema, optimizer, generator, seconds: float) -> None:
    state = {"step": step, "vae": vae.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "seconds": seconds}
    torch.save(state, run_dir / "checkpoint.tmp")
    (run_dir / "checkpoint.tmp").replace(run_dir / "checkpoint.pt")  # never a half-written checkpoint


def write_curve_png(csv_path: Path, png_path: Path) -> None:
    """Training MSE (as PSNR) and held-out PSNR against step, drawn with PIL (no plotting dependency)."""
    rows = list({row["step"]: row for row in csv.DictReader(csv_path.open())}.values())  # a resumed run's last word
    rows.sort(key=lambda row: int(row["step"]))
    if len(rows) < 2:
        return
    width, height, pad = 720, 360, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    steps = [int(r["step"]) for r in rows]
    series = {"train PSNR (batch, EMA of steps)": ([float(r["train_psnr"]) for r in rows], (120, 120, 220)),
              "held-out PSNR (4 photos, 512 px)": ([float(r["held_out_psnr"]) for r in rows], (220, 60, 40))}
    low = min(min(v) for v, _ in series.values()) - 1
    high = max(max(v) for v, _ in series.values()) + 1

    def xy(step: int, value: float) -> tuple[float, float]:
        return (pad + (step - steps[0]) / max(1, steps[-1] - steps[0]) * (width - 2 * pad),
                height - pad - (value - low) / (high - low) * (height - 2 * pad))

    draw.rectangle([pad, pad, width - pad, height - pad], outline="black")
    for db in range(math.ceil(low), math.floor(high) + 1, 2):
        draw.text((4, xy(steps[0], db)[1] - 6), f"{db} dB", fill="black")
    for row, (name, (values, colour)) in enumerate(series.items()):
        draw.line([xy(s, v) for s, v in zip(steps, values, strict=True)], fill=colour, width=2)
        draw.text((pad + 8, pad + 6 + 14 * row), name, fill=colour)
    draw.text((width // 2 - 60, height - pad + 10), f"step {steps[0]} .. {steps[-1]}", fill="black")
    image.save(png_path)


def train(args: argparse.Namespace, config: TrainConfig) -> None:
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    vae, ema = build_vae(config).to(args.device), build_vae(config).to(args.device)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    step, seconds = 0, 0.0
    if (run_dir / "checkpoint.pt").exists():
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        vae.load_state_dict(state["vae"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, seconds = state["step"], state["seconds"]
        log.info("resumed at step %d (%.0f min trained)", step, seconds / 60)
    else:
        ema.load_state_dict(vae.state_dict())
    pool = load_pool(args.data_dir)
    csv_path = run_dir / "curve.csv"
    if not csv_path.exists():
        csv_path.write_text("step,minutes,lr,train_psnr,held_out_psnr\n")
    autocast = args.device == "cpu" and args.bf16
    start, last_save, smoothed_mse = time.perf_counter(), time.perf_counter(), None
    vae.train()
    while step < config.total_steps and time.perf_counter() - start < args.minutes * 60:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        pixels = next_batch(pool, config, generator).to(args.device)
        loss, mse = training_loss(vae, pixels, config, autocast)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, vae, config.ema_decay if step > 200 else 0.0)
        step += 1
        smoothed_mse = mse if smoothed_mse is None else 0.98 * smoothed_mse + 0.02 * mse
        if step % args.eval_every == 0 or step == config.total_steps:
            elapsed = seconds + time.perf_counter() - start
            scores = held_out_psnr(ema.cpu())
            ema.to(args.device)
            vae.train()
            with csv_path.open("a") as out:
                out.write(f"{step},{elapsed / 60:.1f},{learning_rate(step, config):.2e},"
                          f"{10 * math.log10(4 / smoothed_mse):.2f},{sum(scores) / len(scores):.2f}\n")
            write_curve_png(csv_path, run_dir / "curve.png")
            log.info("step %d, %.1f min: train %.2f dB, held-out %s", step, elapsed / 60,
                     10 * math.log10(4 / smoothed_mse), " ".join(f"{s:.2f}" for s in scores))
        if time.perf_counter() - last_save > 300:
            save_checkpoint(run_dir, step, vae, ema, optimizer, generator, seconds + time.perf_counter() - start)
            last_save = time.perf_counter()
    save_checkpoint(run_dir, step, vae, ema, optimizer, generator, seconds + time.perf_counter() - start)


@torch.no_grad()
def export(args: argparse.Namespace, config: TrainConfig) -> None:
    """The EMA weights, with `scaling_factor` = 1 / std of the mean latents over training crops, as fp16."""
    state = torch.load(args.run_dir / "checkpoint.pt", weights_only=True)
    vae = build_vae(config)
    vae.load_state_dict(state["ema"])
    vae.eval()
    generator = torch.Generator().manual_seed(1)
    pool = load_pool(args.data_dir)
    latents = torch.cat([vae.encode(next_batch(pool, config, generator)).latent_dist.mean for _ in range(16)])
    vae.register_to_config(scaling_factor=round(1.0 / latents.std().item(), 5))
    fp32 = held_out_psnr(vae)
    vae.to(torch.float16).save_pretrained(args.export, safe_serialization=True)
    reloaded = AutoencoderKL.from_pretrained(args.export, torch_dtype=torch.float32)
    fp16 = held_out_psnr(reloaded)
    log.info("scaling_factor %.5f; held-out PSNR fp32 %.2f dB, from the fp16 file %.2f dB (step %d)",
             vae.config.scaling_factor, sum(fp32) / 4, sum(fp16) / 4, state["step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="made by python -m scripts.vae_data")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN, help="checkpoint, curve.csv, curve.png")
    parser.add_argument("--minutes", type=float, default=120, help="time budget of this run (resumable)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="CPU: train in float32, not under bf16 autocast")
    parser.add_argument("--total-steps", type=int, default=TrainConfig.total_steps)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--export", type=Path, help="write the trained weights (fp16 safetensors) here and stop")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig(total_steps=args.total_steps)
    export(args, config) if args.export else train(args, config)


if __name__ == "__main__":
    main()
