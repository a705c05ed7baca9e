"""The bundled example images (assets/, licences in assets/LICENSES.md) and what each tab does with them."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets"

INPAINT_EXAMPLES = [  # image, mask (white = repaint), prompt
    ("astronaut.png", "astronaut-mask.png", "a vase of sunflowers"),
    ("coffee.png", "coffee-mask.png", "a cup of hot chocolate with marshmallows"),
    ("chelsea.png", "chelsea-mask.png", "a bright blue cat eye"),
]
PROMPTS = [
    "a watercolor painting of a lighthouse on a cliff at sunset",
    "a red fox sitting in fresh snow, photograph",
    "an isometric voxel city at night, neon lights",
]


def asset(name: str) -> str:
    return str(ASSETS / name)


def example_images() -> list[str]:
    return [asset(name) for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")]


def inpaint_examples() -> list[tuple[str, str, str]]:
    return [(asset(image), asset(mask), prompt) for image, mask, prompt in INPAINT_EXAMPLES]
