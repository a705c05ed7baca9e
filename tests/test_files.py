"""Files the app hands to Gradio: the trajectory GIF."""

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
