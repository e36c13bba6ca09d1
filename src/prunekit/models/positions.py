"""How long an input a model embeds, and tokenizers that cut inputs to it.

A model's position table bounds its inputs: one token past it fails deep inside transformers
(an index error in the embedding). Recipes cut GLUE inputs to ``--max-seq-length`` (128 by
default), so a model with a shorter table would fail there; its tokenizer is capped at the
table instead (`fit_tokenizer`), and prunekit's encoder cuts at the smaller of the two.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fit_tokenizer", "max_sequence_length"]

# families whose position ids start after the padding index, so the table holds fewer inputs
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet")


def max_sequence_length(model_or_config: Any) -> int:
    """The longest input a model (or its config) embeds: its position table, less
    RoBERTa-style models' offset (their positions start after the padding index)."""
    config = getattr(model_or_config, "config", model_or_config)
    positions = getattr(config, "max_position_embeddings", None) or 512
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def fit_tokenizer(tokenizer: Any, model_or_config: Any) -> Any:
    """``tokenizer`` with ``model_max_length`` at most the model's `max_sequence_length`
    (changed in place, returned for chaining)."""
    longest = max_sequence_length(model_or_config)
    current = getattr(tokenizer, "model_max_length", None)
    if not isinstance(current, int) or current > longest:
        tokenizer.model_max_length = longest
    return tokenizer
