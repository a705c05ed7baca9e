"""Everything the app knows about ZeroGPU's `spaces` package, in one place (app.py's early import aside).

On a ZeroGPU Space, app.py imports `spaces` before torch (it must: "CUDA has been initialized before importing the
spaces package") and the runtime sets SPACES_ZERO_GPU=true. `spaces.GPU` then runs a function in a forked worker
that holds a GPU slice; elsewhere it is a no-op, or `spaces` is not installed at all. The serving runner wraps every
model job with `gpu_decorator()`; `--compile` compiles ahead of time with `spaces.aoti_compile` when `on_zerogpu()`.
No Gradio here: the core (models.py) asks these questions too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import ModuleType


def spaces_package() -> ModuleType | None:
    """The `spaces` package when app.py imported it (never imported here: that must happen before torch)."""
    return sys.modules.get("spaces")


def on_zerogpu() -> bool:
    """SPACES_ZERO_GPU read as spaces reads it (`spaces/config.py`: "1", "t" or "true", any case)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu_decorator() -> Callable | None:
    """spaces.GPU when `spaces` was imported (a no-op off ZeroGPU), else None."""
    return getattr(spaces_package(), "GPU", None)


def aot_compiler() -> ModuleType:
    """The `spaces` package with its ahead-of-time compiler (spaces 0.51+), or ValueError saying what is missing."""
    spaces = spaces_package()
    if spaces is None or not hasattr(spaces, "aoti_compile"):
        raise ValueError("--compile on ZeroGPU needs the `spaces` package imported first, with its ahead-of-time "
                         "compiler (spaces.aoti_compile, spaces 0.51+): start without --compile")
    return spaces
