"""Files the app hands to Gradio: the trajectory GIF."""

from pathlib import Path

import numpy as np
from PIL import Image

from latent_demo.serving.files import to_gif


def test_a_gif_shares_one_palette_and_keeps_flat_cells():
    frames = [Image.new("RGB", (64, 32), colour) for colour in ("red", "blue", (10, 200, 30))]
    frames.append(Image.radial_gradient("L").resize((64, 32)).convert("RGB"))  # many greys
    animation = Image.open(to_gif(frames))
    assert animation.n_frames == len(frames)
    for index, frame in enumerate(frames):
        animation.seek(index)
        shown = animation.convert("RGB")
        assert shown.getpixel((5, 5)) == frame.getpixel((5, 5)) or index == 3
        error = sum(abs(a - b) for a, b in zip(shown.tobytes(), frame.tobytes(), strict=True)) / len(shown.tobytes())
        assert error < (5 if index == 3 else 0.5), (index, error)  # 256 greys share 253 colours: measured 4.3
        if index < 3:
            assert len(shown.getcolors()) == 1  # no dithering: a flat colour stays flat


def test_a_gif_frame_stores_only_what_changed_and_shows_every_frame_whole():
    """Unchanged pixels are left transparent over the previous frame: each frame, as a viewer composes it, is the
    frame given, including a region that changes back and a frame that repeats the one before."""
    def halves(left, right):
        frame = Image.new("RGB", (64, 32), left)
        frame.paste(Image.new("RGB", (32, 32), right), (32, 0))
        return frame

    frames = [halves("red", "blue"), halves("red", "green"), halves("red", "green"), halves("blue", "green"),
              halves("red", "blue")]
    path = to_gif(frames)
    animation = Image.open(path)
    assert animation.n_frames == len(frames)
    for index, frame in enumerate(frames):
        animation.seek(index)
        assert animation.convert("RGB").tobytes() == frame.tobytes(), index


def test_a_gif_of_a_small_change_costs_little_more_than_one_frame():
    rng = np.random.default_rng(0)
    first = Image.fromarray(rng.choice([0, 85, 170, 255], size=(256, 256, 3)).astype(np.uint8))  # 64 colours
    second = first.copy()
    second.paste((255, 255, 255), (100, 100, 116, 116))
    one, two = Path(to_gif([first])).stat().st_size, Path(to_gif([first, second])).stat().st_size
    assert two < 1.1 * one, (one, two)  # the second frame: a 16x16 patch, the rest transparent
