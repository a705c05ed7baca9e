"""Text conditioning: prompt -> CLIP token ids -> the embeddings the UNet cross-attends to."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from latent_demo.models import Models


@dataclass(frozen=True)
class PromptEmbeddings:
    embeddings: torch.Tensor  # (2, 77, D) = [negative, prompt] with guidance, else (1, 77, D)
    token_count: int  # tokens in the prompt, without start/end markers
    token_limit: int  # what CLIP reads (75 for SD); the rest was dropped
    dropped_text: str  # the words beyond the limit, "" if none

    @property
    def truncated(self) -> bool:
        return self.token_count > self.token_limit


def check_prompt(prompt: str, models: Models, max_prompt_tokens: int) -> int:
    """The prompt's token count; empty or over-long prompts -> ValueError."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty; describe the picture you want")
    count = len(models.tokenizer(prompt, truncation=False).input_ids) - 2
    if count > max_prompt_tokens:
        raise ValueError(f"the prompt has {count} tokens; the limit is {max_prompt_tokens} "
                         f"(and CLIP reads only the first {models.tokenizer.model_max_length - 2})")
    return count


@torch.inference_mode()
def encode_prompt(models: Models, prompt: str, negative_prompt: str | None, guidance: bool,
                  max_prompt_tokens: int) -> PromptEmbeddings:
    """The same tokenisation and batch order as diffusers' StableDiffusionPipeline.encode_prompt."""
    token_count = check_prompt(prompt, models, max_prompt_tokens)
    texts = [negative_prompt or "", prompt] if guidance else [prompt]
    tokenizer = models.tokenizer
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    embeddings = models.text_encoder(ids.to(models.device))[0].to(models.dtype)
    limit = tokenizer.model_max_length - 2
    return PromptEmbeddings(embeddings, token_count, limit, _dropped_text(tokenizer, prompt, limit))


def _dropped_text(tokenizer, prompt: str, limit: int) -> str:
    ids = tokenizer(prompt, truncation=False, add_special_tokens=False).input_ids
    return tokenizer.decode(ids[limit:]).strip() if len(ids) > limit else ""
