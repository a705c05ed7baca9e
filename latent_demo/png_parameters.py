"""Generation settings inside the PNG, both ways: AUTOMATIC1111's `parameters` text (which many tools read) and one
exact JSON chunk of our own; and reading either back.

AUTOMATIC1111's format (its `infotext`): the prompt (any number of lines), then optionally a line starting
"Negative prompt:" (the negative prompt, possibly over several lines), then one line of comma-separated `Key: value`
pairs; a value holding a comma, a colon or a newline is written as a JSON string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from latent_demo.images import UNREADABLE, check_pixel_count
from latent_demo.schedulers import MODEL_DEFAULT, SCHEDULER_NAMES

A1111_KEY = "parameters"  # the PNG text chunk AUTOMATIC1111 writes and reads
OUR_KEY = "latent-demo"  # our own chunk: the same settings as JSON, exact
APP_VERSION = "latent-demo 0.1.0"
NEGATIVE = "Negative prompt:"
# AUTOMATIC1111's own pattern for one `Key: value` pair of the last line (modules/infotext_utils.py, re_param_code)
PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# their key -> our setting, and how to read its value
KNOWN = {"Steps": ("steps", int), "Sampler": ("scheduler", str), "CFG scale": ("guidance", float),
         "Seed": ("seed", int), "Size": ("size", str), "Denoising strength": ("strength", float),
         "Model": ("model", str), "Version": ("version", str)}


@dataclass(frozen=True)
class GenerationSettings:
    """What made an image: the settings a PNG carries (None where the app did not use one, e.g. strength)."""

    prompt: str
    negative_prompt: str
    steps: int
    scheduler: str
    guidance: float
    seed: int
    width: int
    height: int
    model: str
    strength: float | None = None
    version: str = APP_VERSION


@dataclass(frozen=True)
class ReadSettings:
    """Settings read back from a PNG: what the app's controls can take, and what they cannot."""

    values: dict  # our setting name -> value (prompt, negative_prompt, steps, scheduler, guidance, seed, width, ...)
    source: str  # "latent-demo" (exact) or "AUTOMATIC1111 parameters"
    unsupported: dict[str, str] = field(default_factory=dict)  # their key -> value, not used here


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def a1111_text(settings: GenerationSettings) -> str:
    """The `parameters` text, as AUTOMATIC1111 writes it."""
    pairs = {"Steps": settings.steps, "Sampler": settings.scheduler, "CFG scale": f"{settings.guidance:g}",
             "Seed": settings.seed, "Size": f"{settings.width}x{settings.height}", "Model": settings.model}
    if settings.strength is not None:
        pairs["Denoising strength"] = f"{settings.strength:g}"
    pairs["Version"] = settings.version
    lines = [settings.prompt]
    if settings.negative_prompt:
        lines.append(f"{NEGATIVE} {settings.negative_prompt}")
    lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in pairs.items()))
    return "\n".join(lines)


def with_settings(image: Image.Image, settings: GenerationSettings) -> Image.Image:
    """The image with both text chunks in its `info`: saved as PNG (Gradio's writer copies `info`), it carries them."""
    image.info[A1111_KEY] = a1111_text(settings)
    image.info[OUR_KEY] = json.dumps(settings.__dict__, ensure_ascii=False)
    return image


def png_info(settings: GenerationSettings) -> PngImagePlugin.PngInfo:
    """The same chunks for a PNG written directly."""
    info = PngImagePlugin.PngInfo()
    info.add_text(A1111_KEY, a1111_text(settings))
    info.add_text(OUR_KEY, json.dumps(settings.__dict__, ensure_ascii=False))
    return info


MAX_TEXT = 20_000  # characters: a long prompt and its settings fit; the parser's pattern must not see megabytes


def parse_a1111(text: str) -> ReadSettings:
    """AUTOMATIC1111's `parameters` text -> what our controls take; keys we have no control for are listed apart."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"the PNG's parameters text is {len(text):,} characters; the limit is {MAX_TEXT:,}")
    lines = text.strip().split("\n")
    last = lines[-1] if len(PAIR.findall(lines[-1])) >= 3 else ""
    if last:
        lines = lines[:-1]
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith(NEGATIVE):
            in_negative, line = True, line[len(NEGATIVE):].strip()
        (negative if in_negative else prompt).append(line)
    values = {"prompt": "\n".join(prompt).strip(), "negative_prompt": "\n".join(negative).strip()}
    unsupported = {}
    for key, raw in PAIR.findall(last):
        raw = raw.strip()
        value = json.loads(raw) if raw.startswith('"') and raw.endswith('"') else raw
        if key not in KNOWN:
            unsupported[key] = value
            continue
        name, kind = KNOWN[key]
        try:
            values[name] = kind(value)
        except ValueError:
            unsupported[key] = value
    if "size" in values:
        width, _, height = values.pop("size").partition("x")
        if all(side.isascii() and side.isdecimal() for side in (width, height)):
            values["width"], values["height"] = int(width), int(height)
    if "scheduler" in values and values["scheduler"] not in SCHEDULER_NAMES:
        unsupported["Sampler"] = values.pop("scheduler")
    return ReadSettings(values, "AUTOMATIC1111 parameters", unsupported)


def read_settings(image: Image.Image) -> ReadSettings:
    """The settings a PNG carries: our exact chunk where there is one, else AUTOMATIC1111's; ValueError if none."""
    text = getattr(image, "text", None) or image.info
    if OUR_KEY in text:
        if len(text[OUR_KEY]) > MAX_TEXT:
            raise ValueError(f"the PNG's {OUR_KEY!r} chunk is over {MAX_TEXT:,} characters")
        try:
            values = json.loads(text[OUR_KEY])
        except (json.JSONDecodeError, RecursionError):
            raise ValueError(f"the PNG's {OUR_KEY!r} chunk is not valid JSON") from None
        known = {name for name in GenerationSettings.__dataclass_fields__}
        if not isinstance(values, dict) or not {"prompt", "seed", "steps"} <= values.keys():
            raise ValueError(f"the PNG's {OUR_KEY!r} chunk does not hold generation settings")
        return ReadSettings({k: v for k, v in values.items() if k in known}, "latent-demo")
    if A1111_KEY in text:
        return parse_a1111(str(text[A1111_KEY]))
    raise ValueError("this image carries no generation settings (no 'parameters' or 'latent-demo' text chunk)")


def read_settings_from_file(path: str, max_pixels: int) -> ReadSettings:
    """An uploaded file's settings, read from its text chunks as they are (before any conversion, which would drop
    them): the pixel limit checked first, anything unreadable a ValueError."""
    try:
        with Image.open(path) as image:
            check_pixel_count(image.size, max_pixels)
            image.load()  # text chunks after the image data arrive with it
            return read_settings(image)
    except Image.DecompressionBombError:
        raise ValueError(f"the image is too large to read safely; the limit is {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise ValueError(UNREADABLE) from None
    except (OSError, SyntaxError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise ValueError(f"the image file is damaged or truncated ({err})") from None


def scheduler_or_default(name: str | None) -> str:
    return name if name in SCHEDULER_NAMES else MODEL_DEFAULT
