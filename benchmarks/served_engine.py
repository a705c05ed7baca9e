"""The app as app.py serves it, in a process that also runs the engine on request: the serving rows' reference,
timed in the server's own process.

The serving rows divide what a request waits by what the engine (`tasks.generate`, no server) takes. Two processes
running the same engine need not run it at the same speed: measured on a 2-core EPYC, a second engine process took
1.02–1.11× the benchmark process's time at 2 steps and 1.00–1.03× at 25 steps, from one launch to the next
(benchmarks/README.md, "The progress loop (reverted), and what two processes differ by"). Timed between requests in
the server's own process (its memory, its threads, its idle loops as they are), the engine carries that process's
luck too, and the ratio is what the requests add. The engine in the benchmark's process is still timed beside it:
the row "what two processes differ by".

Run as `python -m benchmarks.served_engine APP-FLAGS...` (app.py's flags): serves the app, then for each line of stdin
("STEPS GUIDANCE SIZE") runs one Generate in a new thread, as the server runs a job, and prints "engine SECONDS".
"""

from __future__ import annotations

import sys
import threading

import torch

from benchmarks.harness import seconds

ENGINE_ANSWER = "engine "  # the child's answers on stdout start with this (anything else there is skipped)


def offline_engine(size: int, device: torch.device):
    """The engine the serving rows compare with: the offline model in the app's default dtypes, no fast decoder,
    images up to `size` px. Returns (models, settings)."""
    from latent_demo.config import Settings
    from latent_demo.models import load_offline_models
    from latent_demo.presets import choose_dtypes

    models = load_offline_models(device, *choose_dtypes(device, "auto"))
    return models, Settings(fast_decoder="none", offline=True, max_image_side=size)


def generate_params(steps: int, guidance: float, size: int):
    """The request every serving row makes: "a red fox", seed 1."""
    from latent_demo.params import GenerateParams

    return GenerateParams(prompt="a red fox", seed=1, num_inference_steps=steps, guidance_scale=guidance, width=size,
                          height=size)


def in_a_new_thread(work) -> float:
    """Seconds `work()` takes in a thread of its own, started and ended around it, as the server runs each job (its
    OpenMP team goes with the thread)."""
    took = []
    thread = threading.Thread(target=lambda: took.append(seconds(work)), name="latent-demo-engine")
    thread.start()
    thread.join()
    if not took:
        raise RuntimeError("the engine failed (its traceback is in the app's log)")
    return took[0]


def main() -> None:
    import app
    from latent_demo.tasks import generate

    answers, sys.stdout = sys.stdout, sys.stderr  # Gradio's prints go to the app's log: stdout is read only on request
    models, settings = app.main(sys.argv[1:], prevent_thread_lock=True)
    for line in sys.stdin:
        steps, guidance, size = line.split()
        params = generate_params(int(steps), float(guidance), int(size))
        print(ENGINE_ANSWER, in_a_new_thread(lambda params=params: generate(models, params, settings)), sep="",
              file=answers, flush=True)


if __name__ == "__main__":
    main()
