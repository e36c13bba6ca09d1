"""Pruning methods, one module each, registered by name (`list_methods()`)."""

from prunekit.methods.registry import (
    HeadTarget,
    PruneMethod,
    PruneRequest,
    get_method,
    head_target,
    list_methods,
    register_method,
    select_top_heads,
)

__all__ = [
    "HeadTarget",
    "PruneMethod",
    "PruneRequest",
    "get_method",
    "head_target",
    "list_methods",
    "register_method",
    "select_top_heads",
]
