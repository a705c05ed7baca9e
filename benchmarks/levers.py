"""`python -m benchmarks.levers`: CPU speed levers on one sd-turbo-size UNet step (512 px, batch 1).

Each lever: median step time, speed-up over the float32 eager baseline, and the max |difference| of the UNet's
output from that baseline (the same inputs and random weights). `--vae`: the SD VAE at 512 px with NCHW vs
channels_last input. Results are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from benchmarks import components
from benchmarks.harness import alternate


def step_fn(unet, latents, text, mode=torch.inference_mode):
    def step():
        with mode():
            return unet(latents, 999, encoder_hidden_states=text).sample
    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (minutes of compiling)")
    parser.add_argument("--vae", action="store_true", help="only the VAE layout lever")
    args = parser.parse_args(argv)
    if args.vae:
        return vae_layout(args.reps)
    torch.manual_seed(0)
    unet = components.turbo_unet().eval().requires_grad_(False)
    latents, text = torch.randn(1, 4, 64, 64), torch.randn(1, 77, 1024)
    baseline_step = step_fn(unet, latents, text)
    reference = baseline_step().float()
    rows = []

    def measure(name, step, restore=None):
        seconds = alternate({name: step}, args.reps)[name]
        diff = (step().float() - reference).abs().max().item()
        rows.append((name, seconds, diff))
        print(f"{name}: {seconds:.2f} s, max |diff| {diff:.2e}", flush=True)
        if restore:
            restore()

    measure("float32, eager, SDPA, inference_mode (baseline)", baseline_step)
    measure("float32, torch.no_grad instead of inference_mode", step_fn(unet, latents, text, torch.no_grad))
    unet.set_attn_processor(AttnProcessor())
    measure("float32, classic attention (no SDPA)", baseline_step,
            restore=lambda: unet.set_attn_processor(AttnProcessor2_0()))
    torch.set_num_threads(1)
    measure("float32, 1 thread instead of 2", baseline_step, restore=lambda: torch.set_num_threads(2))
    unet_cl = unet.to(memory_format=torch.channels_last)
    measure("float32, channels_last", step_fn(unet_cl, latents.to(memory_format=torch.channels_last), text))
    unet = unet.to(memory_format=torch.contiguous_format).to(torch.bfloat16)
    bf16_step = step_fn(unet, latents.bfloat16(), text.bfloat16())
    measure("bfloat16", bf16_step)
    measure("bfloat16, channels_last", step_fn(unet.to(memory_format=torch.channels_last),
                                               latents.bfloat16().to(memory_format=torch.channels_last),
                                               text.bfloat16()))
    unet = unet.to(memory_format=torch.contiguous_format)
    if args.compile:
        from torch._inductor import config as inductor_config

        inductor_config.freezing = True  # weights folded in and pre-packed for oneDNN: the CPU setting
        compiled = torch.compile(unet)
        started = time.perf_counter()
        step_fn(compiled, latents.bfloat16(), text.bfloat16())()
        print(f"torch.compile (bfloat16): first call incl. compiling {time.perf_counter() - started:.0f} s",
              flush=True)
        measure("bfloat16, torch.compile (after compiling)", step_fn(compiled, latents.bfloat16(), text.bfloat16()))
    base = rows[0][1]
    print("\n| lever | step | speed-up | max abs diff vs fp32 |\n|---|---|---|---|")
    for name, seconds, diff in rows:
        print(f"| {name} | {seconds:.2f} s | {base / seconds:.2f}× | {diff:.1e} |")


def vae_layout(reps: int) -> None:
    """Encode and decode at 512 px, NCHW input (as diffusers' docs call them) vs channels_last input (the app)."""
    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 512, 512) * 2 - 1
    print("| VAE call | NCHW input | channels_last input | speed-up | max abs diff |\n|---|---|---|---|---|")
    for dtype in (torch.float32, torch.bfloat16):
        vae = components.sd_vae().eval().requires_grad_(False).to(dtype)
        with torch.inference_mode():
            latents = vae.encode(pixels.to(dtype)).latent_dist.mean
        calls = {"encode": lambda x, vae=vae: vae.encode(x).latent_dist.mean,
                 "decode": lambda x, vae=vae: vae.decode(x).sample}
        for name, call in calls.items():
            batch = pixels.to(dtype) if name == "encode" else latents

            def run(layout, call=call, batch=batch):
                with torch.inference_mode():
                    return call(batch.to(memory_format=layout)).float()
            times = alternate({"nchw": lambda: run(torch.contiguous_format),
                               "nhwc": lambda: run(torch.channels_last)}, reps)
            diff = (run(torch.contiguous_format) - run(torch.channels_last)).abs().max().item()
            print(f"| {name}, {str(dtype).removeprefix('torch.')} | {times['nchw']:.2f} s | {times['nhwc']:.2f} s | "
                  f"{times['nchw'] / times['nhwc']:.2f}× | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
