"""Pruning methods, one module each, registered by name with their metadata (`list_methods()`,
`get_method(name)`), and `decide`, the one way recipes run them."""

from prunekit.methods.decide import decide
from prunekit.methods.registry import (
    DEFAULT_HEAD_METHOD,
    RESUMES_AT_DEFAULT,
    HeadTarget,
    MethodConfig,
    MethodInfo,
    MethodResult,
    PruneRequest,
    TrainingMethodConfig,
    get_method,
    head_target,
    list_methods,
    read_method_options,
    register_method,
    select_top_heads,
)

__all__ = [
    "DEFAULT_HEAD_METHOD",
    "RESUMES_AT_DEFAULT",
    "HeadTarget",
    "MethodConfig",
    "MethodInfo",
    "MethodResult",
    "PruneRequest",
    "TrainingMethodConfig",
    "decide",
    "get_method",
    "head_target",
    "list_methods",
    "read_method_options",
    "register_method",
    "select_top_heads",
]
