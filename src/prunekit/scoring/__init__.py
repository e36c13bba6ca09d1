"""Head importance scores: functions of a model and data returning ``[L, H]`` tensors.

Scorers hold no selection logic; methods select.
"""

from prunekit.scoring.gradient import head_importance, normalize_per_layer

__all__ = ["head_importance", "normalize_per_layer"]
