"""Schedulers: a fresh one per request, built from the model's config (they are stateful and not thread-safe)."""

from __future__ import annotations

import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

MODEL_DEFAULT = "model default"
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict]] = {
    "Euler": (EulerDiscreteScheduler, {}),
    "Euler a": (EulerAncestralDiscreteScheduler, {}),
    "DPM++ 2M": (DPMSolverMultistepScheduler, {}),
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "DDIM": (DDIMScheduler, {}),
    "UniPC": (UniPCMultistepScheduler, {}),
}
SCHEDULER_NAMES = [MODEL_DEFAULT, *SCHEDULERS]


def display_name(scheduler_config: dict, name: str) -> str:
    """The name AUTOMATIC1111 users know for `name`: the model default's own algorithm where it is one of ours."""
    if name != MODEL_DEFAULT:
        return name
    class_name = scheduler_config.get("_class_name", "EulerDiscreteScheduler")
    matches = [ours for ours, (kind, overrides) in SCHEDULERS.items() if kind.__name__ == class_name and not overrides]
    return matches[0] if len(matches) == 1 else MODEL_DEFAULT


def make_scheduler(scheduler_config: dict, name: str = MODEL_DEFAULT) -> SchedulerMixin:
    """A new scheduler from the model's config; `name` picks another algorithm with the same noise schedule."""
    if name == MODEL_DEFAULT:
        class_name = scheduler_config.get("_class_name", "EulerDiscreteScheduler")
        scheduler_class, overrides = getattr(diffusers, class_name, None), {}
        if scheduler_class is None:
            raise ValueError(f"the model's scheduler {class_name!r} is not available in diffusers")
    elif name in SCHEDULERS:
        scheduler_class, overrides = SCHEDULERS[name]
    else:
        raise ValueError(f"scheduler {name!r} is unknown; choose one of: {', '.join(SCHEDULER_NAMES)}")
    scheduler = scheduler_class.from_config(scheduler_config, **overrides)
    # The two fixes diffusers' Stable Diffusion pipelines apply to outdated scheduler configs when they load.
    fixes = {}
    if getattr(scheduler.config, "steps_offset", 1) != 1:
        fixes["steps_offset"] = 1
    if getattr(scheduler.config, "clip_sample", False) is True:
        fixes["clip_sample"] = False
    return scheduler_class.from_config(scheduler.config, **fixes) if fixes else scheduler
