"""`python -m benchmarks.openmp_teams [reps]`: why the UNet ran 1.35× slower inside the server (latent_demo/openmp.py).

One process, no server: the offline model's 25-step UNet (512 px, this CPU's default dtype) in a fresh thread, as
the server runs a job, while (1) the main thread that loaded the model keeps its OpenMP team, (2) it has given the
team back, (3) another, idle thread keeps the team it got from one parallel operator, (4) that thread gave it back.
"""

from __future__ import annotations

import queue
import statistics
import sys
import threading

import torch

from latent_demo import openmp
from latent_demo.config import Settings
from latent_demo.models import load_offline_models
from latent_demo.params import GenerateParams
from latent_demo.presets import choose_dtypes
from latent_demo.tasks import generate


def main(reps: int) -> None:
    device = torch.device("cpu")
    models = load_offline_models(device, *choose_dtypes(device, "auto"))
    settings = Settings(fast_decoder="none", offline=True, max_image_side=512)
    params = GenerateParams(prompt="a red fox", seed=1, num_inference_steps=25, width=512, height=512)
    generate(models, params, settings)  # warm-up, in the main thread: it now has a team

    def unet_in_a_fresh_thread() -> float:
        seconds = []
        worker = threading.Thread(target=lambda: seconds.extend(
            generate(models, params, settings).timings["unet"] for _ in range(reps)))
        worker.start()
        worker.join()
        return statistics.median(seconds)

    rows = [("the main thread keeps the team it loaded the model with", unet_in_a_fresh_thread())]
    openmp.release_threads()
    rows.append(("… the main thread gave it back", unet_in_a_fresh_thread()))
    for release in (False, True):
        hold = queue.Queue()

        def idle(release=release, hold=hold):
            (torch.ones(3, 1024, 1024) * 2).sum()  # one parallel operator, as a picture's conversion makes
            if release:
                openmp.release_threads()
            hold.get()
        thread = threading.Thread(target=idle, daemon=True)
        thread.start()
        label = "… and an idle thread that ran one parallel operator " + ("gave its team back" if release else
                                                                          "keeps its team")
        rows.append((label, unet_in_a_fresh_thread()))
        hold.put(None)
        thread.join()
    print(f"offline model, 512 px, 25 steps, {models.dtype}, medians of {reps}: the UNet in a fresh thread")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} s | {seconds / rows[1][1]:.2f}× |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
