"""Text conditioning: prompt -> CLIP token ids -> the embeddings the UNet cross-attends to."""

from __future__ import annotations

import threading
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
    def unconditional(self) -> bool:
        """An empty prompt: the UNet is conditioned on CLIP's embedding of no text at all."""
        return self.token_count == 0

    @property
    def truncated(self) -> bool:
        return self.token_count > self.token_limit


# transformers' fast tokenizers switch their truncation/padding state on every call: concurrent requests sharing
# the one tokenizer must take turns. Tokenising is sub-millisecond, so the lock costs nothing.
_TOKENIZER_LOCK = threading.Lock()
MAX_CHARS_PER_TOKEN = 8  # a prompt longer than 8 characters per allowed token is refused before tokenising


def count_tokens(models: Models, text: str, max_tokens: int, what: str = "prompt") -> int:
    """Tokens in `text` without start/end markers; over the limit -> ValueError (characters checked first)."""
    if not isinstance(text, str):
        raise ValueError(f"the {what} must be text, got {type(text).__name__}")
    if len(text) > max_tokens * MAX_CHARS_PER_TOKEN:
        raise ValueError(f"the {what} is {len(text):,} characters; the limit is {max_tokens * MAX_CHARS_PER_TOKEN:,}")
    with _TOKENIZER_LOCK:
        count = len(models.tokenizer(text, truncation=False).input_ids) - 2
    if count > max_tokens:
        raise ValueError(f"the {what} has {count} tokens; the limit is {max_tokens} "
                         f"(and CLIP reads only the first {models.tokenizer.model_max_length - 2})")
    return count


def check_prompt(prompt: str, models: Models, max_prompt_tokens: int) -> int:
    """The prompt's token count. "" is valid: unconditional generation, what the model draws with no text.
    Whitespace alone (most likely a slip) and over-long prompts -> ValueError."""
    if not isinstance(prompt, str):
        raise ValueError(f"the prompt must be text, got {type(prompt).__name__}")
    if prompt and not prompt.strip():
        raise ValueError("the prompt is only spaces; describe the picture you want, or leave it empty to see what "
                         "the model draws with no prompt")
    return count_tokens(models, prompt, max_prompt_tokens)


@torch.inference_mode()
def encode_prompt(models: Models, prompt: str, negative_prompt: str | None, guidance: bool,
                  max_prompt_tokens: int) -> PromptEmbeddings:
    """The same tokenisation and batch order as diffusers' StableDiffusionPipeline.encode_prompt."""
    token_count = check_prompt(prompt, models, max_prompt_tokens)
    if guidance and negative_prompt:
        count_tokens(models, negative_prompt, max_prompt_tokens, "negative prompt")
    texts = [negative_prompt or "", prompt] if guidance else [prompt]
    tokenizer = models.tokenizer
    limit = tokenizer.model_max_length - 2
    with _TOKENIZER_LOCK:
        ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids
        dropped = _dropped_text(tokenizer, prompt, limit)
    embeddings = models.text_encoder(ids.to(models.device))[0].to(models.dtype)
    return PromptEmbeddings(embeddings, token_count, limit, dropped)


def _dropped_text(tokenizer, prompt: str, limit: int) -> str:
    ids = tokenizer(prompt, truncation=False, add_special_tokens=False).input_ids
    return tokenizer.decode(ids[limit:]).strip() if len(ids) > limit else ""
