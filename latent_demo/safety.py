"""Optional safety filter: the Stable Diffusion safety checker on every shown generated image, previews included."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image

log = logging.getLogger(__name__)
SAFETY_CHECKER_REPO = "CompVis/stable-diffusion-safety-checker"


@dataclass
class SafetyFilter:
    checker: StableDiffusionSafetyChecker
    processor: object  # a CLIP image processor (resize, crop, normalise to the checker's input)

    @torch.inference_mode()
    def is_flagged(self, image: Image.Image) -> bool:
        pixels = self.processor(images=[image], return_tensors="pt").pixel_values
        clip_input = pixels.to(device=self.checker.device, dtype=self.checker.dtype)
        _, flags = self.checker(clip_input=clip_input, images=[np.zeros((1, 1, 3))])
        return bool(flags[0])

    def screen(self, image: Image.Image) -> tuple[Image.Image, bool]:
        """(the image, or a black one of the same size if flagged; flagged?)."""
        if not self.is_flagged(image):
            return image, False
        log.info("safety checker flagged an image; a black image is shown instead")
        return Image.new("RGB", image.size), True


def load_safety_filter(offline: bool, device: torch.device) -> SafetyFilter:
    """Raises OSError when the checker is neither cached nor downloadable (the caller reports it)."""
    from transformers import CLIPImageProcessor

    checker = StableDiffusionSafetyChecker.from_pretrained(SAFETY_CHECKER_REPO, use_safetensors=True,
                                                           local_files_only=offline)
    processor = CLIPImageProcessor.from_pretrained(SAFETY_CHECKER_REPO, local_files_only=offline)
    return SafetyFilter(checker.to(device).eval().requires_grad_(False), processor)
