"""`--compile` on ZeroGPU with the real compiler, on this CPU: `python scripts/aot_check.py` (about a minute).

The app's ZeroGPU route (`compiled.aot_compile_unet`) with the real `spaces.aoti_compile` (spaces 0.51.3's own
zero/torch/aoti.py: torch.export + AOTInductor, C++ for this CPU) on the offline model at the default size; then
the Generate task with and without guidance against the eager UNet (images, and which calls reached the compiled
code) and the UNet's step, compiled against eager, alternating. Exits 1 if an image differs by more than 2 levels
or a default-size call missed the compiled code. What cannot run on a CPU is the GPU call around the compile (its
result crosses to the main process in pinned CUDA memory): scripts/zerogpu_check.sh runs that on a GPU. The suite
checks the same route with the test double's stand-in compiler (tests/test_compile.py), in seconds.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import alternate  # noqa: E402
from latent_demo.config import Settings  # noqa: E402
from latent_demo.models import load_offline_models, with_compiled_unet  # noqa: E402
from latent_demo.params import GenerateParams  # noqa: E402
from latent_demo.tasks import generate  # noqa: E402

SIDE = 512


def real_spaces_aoti() -> ModuleType:
    """spaces' own zero/torch/aoti.py, loaded from its file: its package `spaces.zero.torch` needs CUDA to import,
    the file itself only torch and spaces.zero's elf and utils (imported here from the real package)."""
    import spaces.zero.elf  # noqa: F401
    import spaces.zero.utils  # noqa: F401

    spec = importlib.util.spec_from_file_location("spaces.zero.torch.aoti",
                                                  Path(spaces.zero.__file__).parent / "torch" / "aoti.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    aoti = real_spaces_aoti()
    settings = Settings(fast_decoder="none", offline=True, max_image_side=SIDE)
    models = load_offline_models(torch.device("cpu"), torch.float32, torch.float32)
    os.environ["SPACES_ZERO_GPU"] = "true"
    sys.modules["spaces"] = SimpleNamespace(GPU=lambda task, duration: task, aoti_compile=aoti.aoti_compile)
    started = time.perf_counter()
    compiled_models = with_compiled_unet(models, settings)
    print(f"spaces.aoti_compile of the offline UNet for {SIDE}×{SIDE} px, batch 1-2: "
          f"{time.perf_counter() - started:.1f} s (export and AOTInductor, this CPU)")
    unet = compiled_models.compiled_unet
    calls, program = [], unet.compiled

    def counted(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return program(*args, **kwargs)

    unet.compiled = counted
    failed = not isinstance(program.program, aoti.ZeroGPUCompiledModel)  # (inside LoadedOncePerProcess)
    for guidance in (0.0, 7.5):
        params = GenerateParams(prompt="a red fox", seed=3, num_inference_steps=4, guidance_scale=guidance,
                                width=SIDE, height=SIDE)
        before = len(calls)
        ours, eager = (np.asarray(generate(m, params, settings).image, np.int16) for m in (compiled_models, models))
        difference = np.abs(ours - eager)
        reached = len(calls) - before
        print(f"guidance {guidance:g}: image against eager max {difference.max()}, mean {difference.mean():.3f} "
              f"levels; {reached} of 4 UNet calls ran the compiled code")
        failed |= difference.max() > 2 or reached != 4
    unet.compiled = program
    for batch in (1, 2):
        sample = torch.randn(batch, 4, SIDE // 8, SIDE // 8)
        text = torch.randn(batch, 77, models.unet.config.cross_attention_dim)
        with torch.inference_mode():
            times = alternate({"compiled": lambda x=sample, t=text: unet(x, 999, t),
                               "eager": lambda x=sample, t=text: models.unet(x, 999, encoder_hidden_states=t)}, 5)
        print(f"UNet step, batch {batch}: compiled {times['compiled'] * 1e3:.0f} ms, eager {times['eager'] * 1e3:.0f} "
              f"ms ({times['compiled'] / times['eager']:.2f}×)")
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
