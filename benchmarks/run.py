"""`python -m benchmarks.run [--quick]`: every performance figure beside its anchor, measured in this run.

Ratios are medians of alternating repetitions in one process on the same components. Exit status 1 if a ratio
target is missed (not in --quick, which runs the tiny model as a smoke test with no timing verdicts).
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable

import numpy as np
import torch
from diffusers import StableDiffusionPipeline

from benchmarks import compare_vaes, components, processes
from benchmarks.harness import Config, Row, alternate, seconds, verdict
from latent_demo.compression import SQUEEZES, compare_compression
from latent_demo.config import Settings
from latent_demo.encoding import encode_image
from latent_demo.images import open_image, pil_to_pixels
from latent_demo.latents import convolution_layout, latents_to_pixels, latents_to_rgb_preview, pixels_to_latents
from latent_demo.noise_prediction import LOSS_CURVE_POINTS, loss_curve, predict_noise, run_unet, where_noise_lives
from latent_demo.params import GenerateParams
from latent_demo.presets import choose_dtypes
from latent_demo.sampling import predicted_original
from latent_demo.schedulers import make_scheduler
from latent_demo.serving.previews import linear_picture
from latent_demo.tasks import generate
from latent_demo.text import encode_prompt
from latent_demo.ui.examples import asset
from latent_demo.ui.pictures import side_by_side
from latent_demo.why_latents import clear_caches, counted_step_cost, why_latents

SECTIONS = ["turbo", "encode", "unet", "generate", "lesson", "app"]


def bench_turbo(cfg: Config, settings: Settings) -> list[Row]:
    """The CPU visitor's experience: sd-turbo size, 1 step, no guidance, bf16, fast or full decode."""
    preset = "tiny" if cfg.quick else "sd-turbo"
    rows = []
    results = {}
    for dtype in (torch.bfloat16, torch.float32):
        models = components.build(preset, dtype)
        fast = models.fast_decoder is not None
        params = GenerateParams(prompt="a red fox in the snow", num_inference_steps=1, guidance_scale=0.0,
                                width=cfg.size, height=cfg.size, seed=1, fast_decode=fast)
        full = GenerateParams(**{**params.__dict__, "fast_decode": False})
        times = alternate({"fast": lambda p=params, m=models: generate(m, p, settings),
                           "full": lambda p=full, m=models: generate(m, p, settings)}, cfg.reps)
        results[dtype] = np.asarray(generate(models, params, settings).image, dtype=np.int16)
        name = str(dtype).removeprefix("torch.")
        decoder = "TAESD-size decoder" if fast else "full VAE"
        rows.append(Row(f"{preset} 1 step {cfg.size}px, {name}, {decoder}", f"{times['fast']:.2f} s",
                        target="≤ 15 s" if dtype == torch.bfloat16 else "",
                        ok=verdict(cfg, times["fast"] <= 15) if dtype == torch.bfloat16 else None))
        rows.append(Row(f"{preset} 1 step {cfg.size}px, {name}, full VAE decode", f"{times['full']:.2f} s"))
        del models
        gc.collect()
    diff = np.abs(results[torch.bfloat16] - results[torch.float32])
    rows.append(Row("image difference bf16 vs fp32 (uint8)", f"max {diff.max()}, mean {diff.mean():.2f}"))
    return rows


def bench_encode_tab(cfg: Config, settings: Settings, models) -> list[Row]:
    """Against raw diffusers calls twice: as diffusers' docs write them (NCHW input) and with the channels_last
    input our VAE calls use, so the second ratio is the cost of the tab's extras alone. At least 7 repetitions:
    run to run, these ~7 s calls vary by more than the 5 % margin on this machine (3 gave 1.058 and 1.073, 7 gave
    1.024, while the tab's own timings put its extras at ~0.04 s)."""
    image = open_image(asset("astronaut.png"), settings.max_image_pixels).resize((cfg.size, cfg.size))
    vae = models.vae

    def raw(layout=lambda batch: batch):
        @torch.inference_mode()
        def encode_decode():
            latents = vae.encode(layout(pil_to_pixels(image).to(vae.dtype))).latent_dist.mean
            vae.decode(layout(latents)).sample.float()
        return encode_decode

    times = alternate({"tab": lambda: encode_image(models, image, settings), "raw": raw(),
                       "raw, same layout": raw(convolution_layout)}, cfg.reps if cfg.quick else max(cfg.reps, 7))
    ratio, same_layout = times["tab"] / times["raw"], times["tab"] / times["raw, same layout"]
    dtype = str(models.vae_dtype).removeprefix("torch.")
    return [Row(f"Encode tab end to end, {cfg.size}px, {dtype}", f"{times['tab']:.2f} s",
                f"raw vae.encode+decode {times['raw']:.2f} s", ratio, "≤ 1.05", verdict(cfg, ratio <= 1.05)),
            Row("… the same, raw calls given channels_last input too (the tab's extras alone)",
                f"{times['tab']:.2f} s", f"{times['raw, same layout']:.2f} s", same_layout, "≤ 1.05",
                verdict(cfg, same_layout <= 1.05)),
            Row(f"Encode tab at {cfg.size}px, {dtype}", f"{times['tab']:.2f} s", target="≤ 10 s",
                ok=verdict(cfg, times["tab"] <= 10))]


def unet_step(models, batch: int, size: int) -> Callable:
    latents = torch.randn(batch, 4, size // 8, size // 8, dtype=models.dtype)
    text = torch.randn(batch, 77, models.text_encoder.config.hidden_size, dtype=models.dtype)

    @torch.inference_mode()
    def step():
        models.unet(latents, 999, encoder_hidden_states=text)
    return step


def matmul_gflops(dtype: torch.dtype, n: int, reps: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    time_s = alternate({"mm": lambda: a @ b}, max(3, reps))["mm"]
    return 2 * n**3 / time_s / 1e9


def bench_unet_and_previews(cfg: Config, models) -> list[Row]:
    step = unet_step(models, 2, cfg.size)
    # counted with attention as matmuls: FlopCounterMode does not count the fused CPU attention kernel (before this,
    # the table gave SD 1.5 1354 GFLOP a step instead of 1607, and a throughput 16 % low)
    latent = cfg.size // models.vae_scale_factor
    flops = 2 * counted_step_cost(models.unet, models.unet.config.in_channels, latent, latent).flops
    step_s = alternate({"unet": step}, cfg.reps)["unet"]
    peak = matmul_gflops(models.dtype, 1024 if cfg.quick else 4096, cfg.reps)
    achieved = flops / step_s / 1e9
    latents = torch.randn(1, 4, cfg.size // 8, cfg.size // 8)
    preview_s = alternate({"preview": lambda: latents_to_rgb_preview(latents)}, 20)["preview"]
    dtype = str(models.dtype).removeprefix("torch.")
    rows = [Row(f"UNet step (batch 2, {cfg.size}px, {dtype})", f"{step_s:.2f} s, {flops / 1e9:.0f} GFLOP"),
            Row("UNet throughput vs this CPU's torch.mm peak", f"{achieved:.0f} GFLOP/s",
                f"mm {peak:.0f} GFLOP/s", achieved / peak, "aim ≥ 0.50")]
    rows.append(Row("per-step preview (linear latent→RGB) / UNet step", f"{preview_s * 1e3:.2f} ms",
                    f"UNet step {step_s:.2f} s", preview_s / step_s, "≤ 0.01",
                    verdict(cfg, preview_s / step_s <= 0.01)))
    denoised_s = alternate({"x0": x0_preview_cost(models, cfg.size)}, 20)["x0"]
    rows.append(Row("per-step x̂₀ (computed + linear preview + side by side at display size) / UNet step",
                    f"{denoised_s * 1e3:.2f} ms", f"UNet step {step_s:.2f} s", denoised_s / step_s, "≤ 0.01",
                    verdict(cfg, denoised_s / step_s <= 0.01)))
    if models.fast_decoder is not None:
        fast_s = alternate({"taesd": lambda: latents_to_pixels(models.fast_decoder, latents)}, cfg.reps)["taesd"]
        rows.append(Row("per-step preview with the TAESD-size decoder / UNet step", f"{fast_s:.2f} s",
                        f"UNet step {step_s:.2f} s", fast_s / step_s, "(stated)"))
    return rows


def x0_preview_cost(models, size: int) -> Callable:
    """What x̂₀ adds to a step: computed from the UNet output (DPM++ 2M, which does not give it), its linear
    picture at display size, and the side-by-side picture with x_t."""
    scheduler = make_scheduler(models.scheduler_config, "DPM++ 2M")
    scheduler.set_timesteps(25)
    t = scheduler.timesteps[0]
    latents, noise_pred = torch.randn(2, 1, 4, size // 8, size // 8).unbind(0)
    output = scheduler.step(noise_pred, t, latents)
    noisy_picture = linear_picture(output.prev_sample, (size, size))

    def extra():
        denoised = predicted_original(scheduler, noise_pred, t, latents, output)
        side_by_side(noisy_picture, linear_picture(denoised, (size, size)))
    return extra


def app_previews(i, t, latents, denoised) -> None:
    """The app's per-step pictures (default view): x_t and x̂₀ by the linear map, side by side."""
    size = (latents.shape[3] * 8, latents.shape[2] * 8)
    side_by_side(linear_picture(latents, size), linear_picture(denoised, size))


def bench_generate_vs_diffusers(cfg: Config, settings: Settings, models) -> list[Row]:
    """Our generate (with the app's per-step preview callback) vs StableDiffusionPipeline, same everything."""
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer,
                                   unet=models.unet, scheduler=make_scheduler(models.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    params = GenerateParams(prompt="a red fox in the snow", seed=3, num_inference_steps=cfg.steps,
                            guidance_scale=7.5, width=cfg.size, height=cfg.size)

    images = {}

    def ours(steps=cfg.steps):
        p = GenerateParams(**{**params.__dict__, "num_inference_steps": steps})
        images["ours"] = generate(models, p, settings, callback=app_previews).image

    def diffusers_(steps=cfg.steps):
        images["diffusers"] = pipe(params.prompt, num_inference_steps=steps, guidance_scale=7.5, width=cfg.size,
                                   height=cfg.size, generator=torch.Generator("cpu").manual_seed(3)).images[0]

    latents = torch.randn(1, 4, cfg.size // 8, cfg.size // 8, dtype=models.vae_dtype)

    def decode(layout=lambda batch: batch):
        return lambda: latents_to_pixels_as_given(models.vae, layout(latents))

    times = alternate({"ours": ours, "diffusers": diffusers_, "decode NCHW": decode(),
                       "decode NHWC": decode(convolution_layout)}, cfg.reps,
                      warmup={"ours": lambda: ours(1), "diffusers": lambda: diffusers_(1), "decode NCHW": decode(),
                              "decode NHWC": decode(convolution_layout)})
    ratio = times["ours"] / times["diffusers"]
    layout_gain = times["decode NCHW"] - times["decode NHWC"]
    loop_ratio = (times["ours"] + layout_gain) / times["diffusers"]
    diff = np.abs(np.asarray(images["ours"], np.int16) - np.asarray(images["diffusers"], np.int16))
    dtype = str(models.dtype).removeprefix("torch.")
    return [Row(f"generate vs StableDiffusionPipeline ({cfg.size}px, {cfg.steps} steps, guidance 7.5, {dtype})",
                f"{times['ours']:.1f} s", f"{times['diffusers']:.1f} s", ratio, "≤ 1.02", verdict(cfg, ratio <= 1.02)),
            Row("… the same without our channels_last decode (our loop, callbacks and previews alone)",
                f"{times['ours'] + layout_gain:.1f} s", f"decode NCHW {times['decode NCHW']:.2f} s vs NHWC "
                f"{times['decode NHWC']:.2f} s", loop_ratio, "≤ 1.02", verdict(cfg, loop_ratio <= 1.02)),
            Row("… image difference ours vs diffusers (uint8)",
                f"max {diff.max()}, mean {diff.mean():.3f} (bf16 noise is drawn in fp32 by us)")]


@torch.inference_mode()
def bench_lesson(cfg: Config, settings: Settings, models) -> list[Row]:
    """The lesson's views: the why-latents panel (first visit and cached) and the over-compression view."""
    clear_caches()
    side, latent_side = cfg.size, cfg.size // models.vae_scale_factor
    channels = models.unet.config.in_channels
    count_s = seconds(lambda: (counted_step_cost(models.unet, channels, latent_side, latent_side),
                               counted_step_cost(models.unet, 3, side, side)))
    first_s = seconds(lambda: why_latents(models, side, side))  # counts cached: the timed call (and its warm-up)
    cached_s = seconds(lambda: why_latents(models, side, side))
    rows = [Row("why-latents panel: its table of counts (first visit: both UNet steps counted on shapes)",
                f"{count_s:.2f} s", "", None, "≤ 2 s", verdict(cfg, count_s <= 2.0)),
            Row("… then its measured row (one latent UNet call at batch 1, a warm-up first if under 1 s)",
                f"{first_s:.2f} s"),
            Row("… a later visit (cached per model and size)", f"{cached_s * 1e3:.1f} ms", "", None, "≤ 2 s",
                verdict(cfg, cached_s <= 2.0))]
    image = open_image(asset("astronaut.png"), settings.max_image_pixels)
    latents = pixels_to_latents(models.vae, pil_to_pixels(image.resize((side, side))))
    names = list(SQUEEZES)
    times = alternate({"all": lambda: compare_compression(models, image, settings, names),
                       "none": lambda: compare_compression(models, image, settings, []),
                       "decode": lambda: latents_to_pixels(models.vae, latents)}, cfg.reps)
    per_variant = (times["all"] - times["none"]) / len(names)
    rows.append(Row(f"over-compression view, per variant shown ({len(names)}: squeeze, full-VAE decode, PSNR)",
                    f"{per_variant:.2f} s", f"one full-VAE decode {times['decode']:.2f} s",
                    per_variant / times["decode"], "≤ 1.2", verdict(cfg, per_variant / times["decode"] <= 1.2)))
    return rows + bench_model_views(cfg, models, image.resize((side, side)), latents)


def bench_model_views(cfg: Config, models, image, latents: torch.Tensor) -> list[Row]:
    """The noise explorer's model views against the UNet and VAE calls they wrap, alternating in one run."""
    text = encode_prompt(models, "", None, False, 300).embeddings
    pixels = pil_to_pixels(image)
    noisy = torch.randn(latents.shape)
    batch = torch.randn((LOSS_CURVE_POINTS, *latents.shape[1:]))

    def unet_calls():  # what /predict_noise wraps: one call at t, one batched over the curve's timesteps, a decode
        run_unet(models, noisy, torch.tensor([500]), text)
        run_unet(models, batch, torch.arange(LOSS_CURVE_POINTS) * 100, text)
        latents_to_pixels(models.vae, latents)

    def vae_calls():  # what /noise_space wraps: two decodes, then three encodes and decodes
        for _ in range(2):
            latents_to_pixels(models.vae, latents)
        for _ in range(3):
            latents_to_pixels(models.vae, pixels_to_latents(models.vae, pixels))

    def predict():
        prediction = predict_noise(models, latents, 500, 0, text)
        loss_curve(models, latents, 0, text)
        latents_to_pixels(models.vae, prediction.denoised)

    times = alternate({"predict": predict, "unet": unet_calls,
                       "space": lambda: where_noise_lives(models, pixels, latents, 500, 0), "vae": vae_calls},
                      cfg.reps)
    predict_ratio, space_ratio = times["predict"] / times["unet"], times["space"] / times["vae"]
    return [Row("/predict_noise's model work (ε̂ at t, the loss at 10 t in one batch, x̂₀ decoded)",
                f"{times['predict']:.2f} s", f"the UNet and VAE calls it wraps {times['unet']:.2f} s", predict_ratio,
                "≤ 1.10", verdict(cfg, predict_ratio <= 1.10)),
            Row("/noise_space's model work (latent vs pixel noise; 3 noise levels through the VAE)",
                f"{times['space']:.2f} s", f"the VAE calls it wraps {times['vae']:.2f} s", space_ratio, "≤ 1.10",
                verdict(cfg, space_ratio <= 1.10))]


def latents_to_pixels_as_given(vae, latents: torch.Tensor) -> torch.Tensor:
    """A plain diffusers decode, in whatever memory layout the latents come."""
    return vae.decode(latents / vae.config.scaling_factor).sample.float()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 1 repetition, no verdicts (CI smoke test)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement (median)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run only these sections")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the app section's server and diffusers run (the other sections: CPU)")
    args = parser.parse_args(argv)
    cfg = Config(quick=args.quick, reps=1 if args.quick else args.reps, size=64 if args.quick else 512,
                 steps=2 if args.quick else 20)
    settings = Settings(max_image_side=max(cfg.size, 128), min_image_side=64)
    torch.manual_seed(0)
    rows = bench_turbo(cfg, settings) if "turbo" in args.only else []
    if {"encode", "unet", "generate", "lesson"} & set(args.only):
        # the dtype the app picks on this CPU (--dtype auto): bfloat16 where it is native, else float32
        default_dtype = choose_dtypes(torch.device("cpu"), "auto")[0]
        sd15 = components.build("tiny" if cfg.quick else "sd15", torch.float32 if cfg.quick else default_dtype)
        rows += bench_encode_tab(cfg, settings, sd15) if "encode" in args.only else []
        rows += bench_unet_and_previews(cfg, sd15) if "unet" in args.only else []
        rows += bench_generate_vs_diffusers(cfg, settings, sd15) if "generate" in args.only else []
        rows += bench_lesson(cfg, settings, sd15) if "lesson" in args.only else []
        del sd15
        gc.collect()
    if "lesson" in args.only and not cfg.quick:  # two app starts on full-size weights: no quick form
        rows += compare_vaes.bench_compare_vaes(cfg.reps)
    if "app" in args.only:
        rows += processes.bench_app_process() if args.device == "cpu" and not cfg.quick else []
        rows += processes.bench_cold_start(cfg.quick) if args.device == "cpu" else []
        rows += processes.bench_served_path(cfg.quick, cfg.reps, args.device)
        rows += processes.bench_turbo_script(cfg.quick, cfg.reps) if args.device == "cpu" else []
        rows += [] if cfg.quick else processes.bench_compile(cfg.reps, args.device)  # minutes of compiling
    table = "\n".join(["| measurement | value | anchor | ratio | target | verdict |", "|---|---|---|---|---|---|"]
                      + [row.line() for row in rows])
    header = f"threads {torch.get_num_threads()}, torch {torch.__version__}, {'quick' if cfg.quick else 'full'} run"
    print(header + "\n\n" + table)
    if args.out:
        with open(args.out, "w") as file:
            file.write(header + "\n\n" + table + "\n")
    return 1 if any(row.ok is False for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
