"""The device API's side, as the double plays it: which GPU a call gets and whether its worker may be reused, the
daily quota and the refusals in the words of spaces 0.51.3 (zero/client.py), the duration factor and the duration
warning. Everything is read at each call from files a test writes while the app runs (the numbers also from
environment variables of the same names, upper-case, prefixed ZEROGPU_DOUBLE_):

- ZEROGPU_DOUBLE_SCHEDULE_FILE: a JSON list of answers, the first one taken by each call (absent or empty: idle, GPU
  0). `{"idle": false}`: the scheduler says the slot is not idle, so the warm worker is not reused and a new one is
  forked (a cold call); `{"gpu": 1}`: another GPU (workers are kept per GPU index, as in wrappers.py);
  `{"refuse": "queue-timeout" | "no-gpu" | "illegal-duration"}`: ZeroGPU's other refusals.
- ZEROGPU_DOUBLE_QUOTA_FILE: the day's quota in seconds, or JSON `{"seconds": 210, "auth": "regular" | "pro",
  "wait_s": 3600}` (what the device API says of the visitor). Writing it starts a new day; deleting it lifts the
  quota. As in spaces, the refusal's words depend on the visitor's request too: with a token (the X-IP-Token header
  Spaces adds for a logged-in visitor) it names the seconds requested and left and when to come back, without one
  it is "Space app has reached its GPU limit"; a call from a script (no `x-gradio-user: app` header) gets the
  advice to log in or subscribe appended.
- ZEROGPU_DOUBLE_SETTINGS_FILE: JSON with any of
  - "duration_factor": 1.0 (H200 nodes) or 1.5 (RTX PRO 6000 nodes): spaces multiplies every requested duration by
    it before asking (client.get_duration_seconds), so the quota check and the warning use the product;
  - "max_duration_s": the longest duration the device API accepts; longer is refused as illegal;
  - "time_scale": CPU seconds per GPU second. The real client warns "GPU task is exceeding its requested duration"
    once a call has held the GPU for its (factored) duration; on a CPU the same work takes longer, so the double
    waits duration × scale. tests/test_zerogpu.py measures the scale;
  - "init_s": what a new worker's start costs before its first call (the real `allow` and CUDA initialisation; the
    weights' copy comes on top), billed like the call. Default 0.5.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import timedelta

# spaces/zero/client.py
EXAMPLES_RETRY_MESSAGE = "Try re-running outside of examples if it happened after clicking one"
NO_GPU_MESSAGE_REGULAR = "No GPU was available"
NO_GPU_MESSAGE_INQUEUE = "No GPU was available after 60s"
DURATION_WARNING = "GPU task is exceeding its requested duration and might be aborted"

_lock = threading.Lock()
_quota_used_s = 0.0
_day: int | None = None  # the quota file's mtime when today's quota was set


@dataclass(frozen=True)
class Answer:
    idle: bool = True
    gpu: int = 0


def setting(name: str, default: float | None) -> float | None:
    """From the settings file, else the environment (ZEROGPU_DOUBLE_<NAME>), else `default`."""
    path = os.environ.get("ZEROGPU_DOUBLE_SETTINGS_FILE")
    if path and os.path.exists(path):
        with open(path) as settings_file:
            settings = json.load(settings_file)
        if name in settings:
            return float(settings[name])
    value = os.environ.get(f"ZEROGPU_DOUBLE_{name.upper()}")
    return float(value) if value else default


def duration_factor() -> float:
    return setting("duration_factor", 1.0)


def time_scale() -> float:
    return setting("time_scale", 1.0)


def init_seconds() -> float:
    return setting("init_s", 0.5)


def schedule(duration_s: float) -> tuple[Answer, int]:
    """(the answer, the seconds asked for: duration × factor, rounded as spaces sends it), or the refusal as
    spaces raises it."""
    requested = round(duration_s * duration_factor())
    planned = _next_planned()
    refusal = planned.pop("refuse", None)
    if refusal is not None:
        raise _refusal(refusal, requested)
    if (limit := setting("max_duration_s", None)) is not None and requested > limit:
        raise _refusal("illegal-duration", requested)
    quota = _quota()
    if quota is not None:
        left, auth, wait_s = quota
        if requested > left:
            log({"event": "refused", "requested_s": requested, "left_s": round(left, 3), "auth": auth})
            raise _error(*quota_refusal(requested, int(left), timedelta(seconds=wait_s), auth, _request_headers()))
    return Answer(idle=planned.get("idle", True), gpu=planned.get("gpu", 0)), requested


def charge(held_s: float) -> None:
    global _quota_used_s
    with _lock:
        _quota_used_s += held_s


def log(entry: dict) -> None:
    path = os.environ.get("ZEROGPU_DOUBLE_LOG")
    if path:
        with _lock, open(path, "a") as log_file:
            log_file.write(json.dumps(entry) + "\n")



def _next_planned() -> dict:
    path = os.environ.get("ZEROGPU_DOUBLE_SCHEDULE_FILE")
    if not path or not os.path.exists(path):
        return {}
    with _lock:
        with open(path) as schedule_file:
            planned = json.load(schedule_file)
        if not planned:
            return {}
        with open(path, "w") as schedule_file:
            json.dump(planned[1:], schedule_file)
        return dict(planned[0])


def _quota() -> tuple[float, str | None, float] | None:
    """(seconds left today, the visitor's level or None when not logged in, seconds until more), or None."""
    global _day, _quota_used_s
    path = os.environ.get("ZEROGPU_DOUBLE_QUOTA_FILE")
    if not path or not os.path.exists(path):
        return None
    with _lock, open(path) as quota_file:
        stamp = os.stat(path).st_mtime_ns
        if stamp != _day:
            _day, _quota_used_s = stamp, 0.0
        text = quota_file.read().strip()
        day = json.loads(text) if text.startswith("{") else {"seconds": float(text)}
        return day["seconds"] - _quota_used_s, day.get("auth"), day.get("wait_s", 3600)


def _request_headers() -> dict:
    """The visitor's request headers, where spaces reads them (gradio's LocalContext.request)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) or {}
    return {key.lower(): value for key, value in dict(headers).items()}


def _error(title: str, message: str) -> Exception:
    import gradio

    return gradio.Error(message, title=title, print_exception=False)


# client.schedule's words, as (title, message), for each answer of the device API. tests/test_zerogpu_device_api.py
# checks them against the real client's, situation by situation.
SIGNUP_ON_HF = "[Create a free account](https://huggingface.co/join)"
PRO_QUOTA_MINUTES = 40


def quota_refusal(requested: int, left: int, wait: timedelta, auth: str | None, headers: dict) -> tuple[str, str]:
    token, api_call = headers.get("x-ip-token"), headers.get("x-gradio-user") != "app"
    if token is None:
        return "ZeroGPU quota exceeded", f"Space app has reached its GPU limit. {EXAMPLES_RETRY_MESSAGE}"
    if wait == timedelta(0):
        message = "You have exceeded your ZeroGPU runs limit. "
    else:
        gpu = "Pro ZeroGPU" if auth == "pro" else ("free ZeroGPU" if auth == "regular" else "ZeroGPU")
        message = (f"You have exceeded your {gpu} quota ({requested}s requested vs. {left}s left). "
                   f"Try again in {wait}. ")
    if api_call:
        message += {
            None: "Authenticate with a Hugging Face token for more quota - https://huggingface.co/settings/tokens",
            "regular": f"Subscribe to Hugging Face PRO to get {PRO_QUOTA_MINUTES} min of ZeroGPU quota a day - "
                       "https://huggingface.co/subscribe/pro?from=ZeroGPU",
            "pro": "Add credits to keep using ZeroGPU. $1 for 10 minutes of ZeroGPU inference - "
                   "https://huggingface.co/settings/billing?add-credits=true",
        }[auth]
    return "ZeroGPU quota exceeded", message


def illegal_duration(requested: int, auth: str | None, headers: dict) -> tuple[str, str]:
    message = f"The requested GPU duration ({requested}s) is larger than the maximum allowed"
    if headers.get("x-gradio-user") != "app" and auth in (None, "regular"):  # (spaces adds no space before it)
        message += (f"Subscribe to Hugging Face PRO to allow GPU tasks up to {PRO_QUOTA_MINUTES} min - "
                    "https://huggingface.co/subscribe/pro?from=ZeroGPU")
    return "ZeroGPU illegal duration", message


def _refusal(kind: str, requested: int) -> Exception:
    log({"event": "refused", "requested_s": requested, "reason": kind})
    headers = _request_headers()
    if kind == "illegal-duration":
        return _error(*illegal_duration(requested, None, headers))
    if kind == "queue-timeout":  # the visitor's own words differ with a token (an HTML toast): modelled without
        return _error("ZeroGPU quota exceeded", f"{NO_GPU_MESSAGE_INQUEUE}. {EXAMPLES_RETRY_MESSAGE}")
    if kind == "no-gpu":
        return _error("ZeroGPU client error", NO_GPU_MESSAGE_REGULAR)
    raise ValueError(f"unknown refusal {kind!r} in the schedule file")
