"""`tasks.generate` in a process of its own, timed on request: the serving rows' calibration.

The serving rows compare a server process with the engine in the benchmark's process. Two processes running the
same code need not run it at the same speed: measured on a 2-core EPYC, a second engine process (no server, no
Gradio) took 1.02–1.11× the benchmark process's time at 2 steps and 1.00–1.03× at 25 steps, from one launch to the
next (benchmarks/README.md, "The progress loop (reverted), and what two processes differ by"). `EngineProcess`
measures that factor in the same run as the rows, so a ratio can be read against it.

Run as `python -m benchmarks.engine_process SIZE DEVICE`: loads the offline model on DEVICE, prints "ready", then for
each line of stdin (a step count) runs one Generate at SIZE px and prints its seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from benchmarks.harness import seconds

ROOT = Path(__file__).resolve().parents[1]


class EngineProcess:
    """A child process serving `tasks.generate` timings: `seconds(steps)`."""

    def __init__(self, size: int, device: str = "cpu"):
        self.child = subprocess.Popen([sys.executable, "-m", "benchmarks.engine_process", str(size), device], cwd=ROOT,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        if self.child.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the engine process did not start")

    def seconds(self, steps: int) -> float:
        self.child.stdin.write(f"{steps}\n")
        self.child.stdin.flush()
        return float(self.child.stdout.readline())

    def close(self) -> None:
        self.child.stdin.close()
        self.child.wait(timeout=60)

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def offline_engine(size: int, device: torch.device):
    """The engine the serving rows compare with: the offline model in the app's default dtypes, no fast decoder,
    images up to `size` px. Returns (models, settings)."""
    from latent_demo.config import Settings
    from latent_demo.models import load_offline_models
    from latent_demo.presets import choose_dtypes

    models = load_offline_models(device, *choose_dtypes(device, "auto"))
    return models, Settings(fast_decoder="none", offline=True, max_image_side=size)


def main() -> None:
    from latent_demo.params import GenerateParams
    from latent_demo.tasks import generate

    size = int(sys.argv[1])
    models, settings = offline_engine(size, torch.device(sys.argv[2]))
    print("ready", flush=True)
    for line in sys.stdin:
        params = GenerateParams(prompt="a red fox", seed=1, num_inference_steps=int(line), width=size, height=size)
        print(seconds(lambda params=params: generate(models, params, settings)), flush=True)


if __name__ == "__main__":
    main()
