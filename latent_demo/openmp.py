"""OpenMP's idle worker threads, released, so that the one thread running the model keeps its cores' full speed.

PyTorch's CPU operators run on OpenMP (libgomp in the Linux wheels). Every thread that ever runs a parallel operator
gets a team of worker threads of its own, kept after the operator ends. Once libgomp manages more threads than the
machine has cores it stops spinning between parallel regions (100 spins, then a sleep: "throttled"), and every
short operator of the UNet then pays a sleep and a wake-up. In a server that happens as soon as a thread other than
the model's has run one parallel operator: the main thread that loaded the models, a Gradio worker thread that made
a picture. Measured on 2 cores (offline model, 512 px, 25 steps): the UNet 1.56 s alone, 2.09 s with one idle thread
that had once run a parallel operator, 1.46 s again once that thread released its team (benchmarks/README.md,
"The page's own wait"). So every thread but the model's releases its team when its torch work is done.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from pathlib import Path

import torch  # noqa: F401  (loads the OpenMP runtime before it is looked for)

log = logging.getLogger(__name__)
OMP_PAUSE_HARD = 2  # OpenMP 5.0's omp_pause_hard: free the calling thread's team (libgomp: gomp_pause_host)


@functools.cache
def _pause_all():
    """libgomp's `omp_pause_resource_all`, or None (no libgomp loaded, or not on Linux). Only libgomp: it frees the
    calling thread's team alone, while LLVM's and Intel's runtimes pause the whole process, teams of other threads
    included, which could meet the model's thread inside a parallel region."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = sorted(set(re.findall(r"\S*/libgomp[^/\s]*\.so[^/\s]*", maps)))
    for path in found:
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        return pause
    return None


def release_threads() -> bool:
    """Free the calling thread's OpenMP team (its next parallel operator makes a new one, in microseconds). Call it
    outside any parallel region, from a thread that is done with its torch work for now. True if released."""
    pause = _pause_all()
    return pause is not None and pause(OMP_PAUSE_HARD) == 0
