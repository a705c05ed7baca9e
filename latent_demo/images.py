"""Pixels: open and check uploads, PIL (uint8) <-> pixels (tensor in [-1, 1]), masks, error maps and PSNR."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

ImageSource = Image.Image | bytes | str | Path | np.ndarray
UNREADABLE = "the file is not an image this app can read (PNG, JPEG, WEBP, GIF, BMP, TIFF)"


def open_image(source: ImageSource, max_pixels: int, keep_alpha: bool = False) -> Image.Image:
    """Any upload -> an RGB PIL image, upright, first frame; corrupt, empty or oversized files -> ValueError.
    keep_alpha: RGBA as stored instead (a mask whose transparency says where to paint)."""
    if isinstance(source, np.ndarray):
        source = _array_to_pil(source)
    if isinstance(source, Image.Image):
        check_pixel_count(source.size, max_pixels)
        return source.convert("RGBA") if keep_alpha else to_rgb(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        check_pixel_count(image.size, max_pixels)  # before decoding: the header is all that was read
        image.seek(0)  # animated images: the first frame
        image.load()
    except Image.DecompressionBombError as err:
        raise ValueError(f"image is too large to decode safely ({err}); the limit is {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise ValueError(UNREADABLE) from None
    except (OSError, SyntaxError, EOFError) as err:
        if isinstance(err, OSError) and err.errno is not None:
            raise  # the file system (disk, permissions), not the file's contents: the server's problem
        raise ValueError(f"the image file is damaged or truncated ({err})") from None
    return image.convert("RGBA") if keep_alpha else to_rgb(image)


def check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"image is {width}x{height} px: it has no pixels")
    if width * height > max_pixels:
        raise ValueError(f"image is {width}x{height} px = {width * height:,} pixels; the limit is {max_pixels:,}")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image array has shape {array.shape}; expected HxW, HxWx3 or HxWx4")
    if array.dtype != np.uint8:
        raise ValueError(f"image array has dtype {array.dtype}; expected uint8")
    return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF rotation applied; 16-bit, palette, CMYK, grey and transparent images -> 8-bit RGB (alpha over white)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def fit_size(width: int, height: int, max_side: int, min_side: int, multiple: int) -> tuple[int, int]:
    """Scale (keeping aspect) to fit max_side, then round down to a multiple of the VAE factor."""
    if min(width, height) < min_side:
        raise ValueError(f"image is {width}x{height} px; each side must be at least {min_side} px")
    scale = min(1.0, max_side / max(width, height))
    new_w = max(multiple, int(width * scale) // multiple * multiple)
    new_h = max(multiple, int(height * scale) // multiple * multiple)
    return new_w, new_h


def prepare_image(image: Image.Image, max_side: int, min_side: int, multiple: int) -> Image.Image:
    size = fit_size(image.width, image.height, max_side, min_side, multiple)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """uint8 RGB PIL -> (1, 3, H, W) float32 in [-1, 1] (the same arithmetic as diffusers' VaeImageProcessor)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0


def pixels_to_pil(pixels: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> uint8 RGB PIL (values outside the range are clipped)."""
    array = ((pixels[0].float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy())


def mask_to_tensor(mask: Image.Image | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A mask image (white/opaque = repaint) -> (1, 1, H, W) of {0, 1}, binarised at 0.5 like diffusers."""
    if isinstance(mask, np.ndarray):
        mask = _array_to_pil(mask)
    if mask.size != size:
        raise ValueError(f"mask is {mask.width}x{mask.height} px but the image is {size[0]}x{size[1]} px")
    grey = mask.getchannel("A") if mask.mode in ("RGBA", "LA") else mask.convert("L")
    values = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)
    return (values >= 0.5).float()[None, None]


def feather(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """Soft edge for pasting back: a Gaussian blur of the {0, 1} mask (radius in px), kept at 1 inside."""
    if radius <= 0:
        return mask
    image = Image.fromarray((mask[0, 0].numpy() * 255).astype(np.uint8), mode="L")
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    return torch.maximum(mask, torch.from_numpy(blurred)[None, None])


def paste_outside_mask(original: Image.Image, generated: Image.Image, pixel_mask: torch.Tensor) -> Image.Image:
    """Keep the original pixels exactly where the mask is 0, the generated ones where it is 1."""
    weight = pixel_mask[0, 0].numpy()[..., None]
    blend = np.asarray(original, np.float32) * (1 - weight) + np.asarray(generated, np.float32) * weight
    return Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8))


def psnr(original: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two pixel tensors in [-1, 1] (peak-to-peak range 2)."""
    mse = torch.mean((original.float().clamp(-1, 1) - reconstruction.float().clamp(-1, 1)) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * float(np.log10(4.0 / mse))


def error_heatmap(original: torch.Tensor, reconstruction: torch.Tensor) -> Image.Image:
    """Per-pixel absolute error (mean over RGB) -> a black-red-yellow-white heatmap; white = error of 0.5+."""
    error = (original.float().clamp(-1, 1) - reconstruction.float().clamp(-1, 1)).abs().mean(dim=1)[0] / 2
    return heat_picture((error / 0.5).clamp(0, 1).numpy())


def heat_picture(level: np.ndarray) -> Image.Image:
    """Levels in [0, 1] -> black (0) - red - yellow - white (1)."""
    rgb = np.stack([np.clip(level * 3, 0, 1), np.clip(level * 3 - 1, 0, 1), np.clip(level * 3 - 2, 0, 1)], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def image_and_painted_mask(background: Image.Image | None, layers: list | None, max_pixels: int
                           ) -> tuple[Image.Image, Image.Image]:
    """An image editor's background and painted layers -> (RGB image, L mask: 255 wherever any layer is painted)."""
    if background is None:
        raise ValueError("please upload an image (or click an example) and paint the area to repaint")
    check_pixel_count(background.size, max_pixels)
    painted = np.zeros((background.height, background.width), dtype=bool)
    for layer in layers or []:
        if layer is None:
            continue
        if layer.size != background.size:
            raise ValueError(f"mask layer is {layer.width}x{layer.height} px but the image is "
                             f"{background.width}x{background.height} px")
        painted |= np.asarray(layer.convert("RGBA").getchannel("A")) > 0
    if not painted.any():
        raise ValueError("the mask is empty: paint over the part of the image to repaint")
    return to_rgb(background), Image.fromarray(painted.astype(np.uint8) * 255, mode="L")
