"""Architecture adapters, head gates, surgery, accounting and checkpoints."""

from prunekit.models.adapter import get_adapter, list_architectures
from prunekit.models.checkpoint import is_prunekit_dir, load, load_tokenizer, save
from prunekit.models.gates import HeadGates
from prunekit.models.stats import (
    ModelStats,
    count_nonzero_parameters,
    count_parameters,
    encoder_macs,
    model_stats,
    nonzero_encoder_macs,
)
from prunekit.models.surgery import (
    HeadMaskNotSupportedError,
    apply_plan,
    current_plan,
    dense_plan,
    reapply_masks,
)

__all__ = [
    "HeadGates",
    "HeadMaskNotSupportedError",
    "ModelStats",
    "apply_plan",
    "count_nonzero_parameters",
    "count_parameters",
    "current_plan",
    "dense_plan",
    "encoder_macs",
    "get_adapter",
    "is_prunekit_dir",
    "list_architectures",
    "load",
    "load_tokenizer",
    "model_stats",
    "nonzero_encoder_macs",
    "reapply_masks",
    "save",
]
