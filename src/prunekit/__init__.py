"""prunekit: prune Transformer encoders into physically smaller Hugging Face models, with proof.

Public API::

    import prunekit
    model = prunekit.load("pruned-dir")               # exact reload of a pruned model
    prunekit.apply_plan(model, plan)                   # physically remove heads / FFN neurons
    with prunekit.HeadGates(model, gates): ...         # differentiable head masking (v5-safe)
    prunekit.save(model, "out-dir", tokenizer)
    prunekit.save(model, "small-dir", storage=prunekit.StorageOptions(embeddings="int8"))
"""

from prunekit.errors import PrunekitError
from prunekit.models import (
    HeadGates,
    apply_plan,
    current_plan,
    load,
    model_stats,
    save,
)
from prunekit.models.sparse_storage import StorageOptions
from prunekit.plan import PruningPlan

__version__ = "0.1.0"

__all__ = [
    "HeadGates",
    "PrunekitError",
    "PruningPlan",
    "StorageOptions",
    "__version__",
    "apply_plan",
    "current_plan",
    "load",
    "model_stats",
    "save",
]
