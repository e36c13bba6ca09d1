"""The README.md model card written beside a saved model."""

from __future__ import annotations

from torch import nn

from prunekit.models.sparse_storage import StorageOptions
from prunekit.models.stats import model_stats
from prunekit.plan import PruningPlan

__all__ = ["model_card"]


def model_card(model: nn.Module, plan: PruningPlan, storage: StorageOptions) -> str:
    """The README.md of a saved model: what was removed, how it is stored, how to load it."""
    stats = model_stats(model)
    saved = 1 - stats.parameters / stats.parameters_original
    per_layer = ", ".join(str(n) for n in stats.heads_per_layer)
    nonzero = ""
    if plan.sparse_masks is not None:
        nonzero = (
            f"| nonzero parameters | {stats.parameters_original:,} | "
            f"{stats.parameters_nonzero:,} |\n"
            f"| nonzero encoder MACs @ {stats.seq_len} tokens | "
            f"{stats.encoder_macs_original:,} | {stats.encoder_macs_nonzero:,} |\n"
        )
    smaller = []
    if storage.sparse_values != "float32" and plan.sparse_masks is not None:
        smaller.append(f"sparse weights' nonzeros as {storage.sparse_values}")
    if storage.embeddings != "float32":
        smaller.append(f"word embeddings as {storage.embeddings}")
    stored = ""
    if smaller:
        stored = (
            f"Stored smaller: {' and '.join(smaller)} (rounded once, when saved; loading "
            "restores what is stored).\n\n"
        )
    return (
        f"# {stats.architecture} pruned with prunekit\n\n"
        f"| | original | pruned |\n|---|---|---|\n"
        f"| attention heads | {stats.heads_original} | {stats.heads_total} |\n"
        f"| parameters | {stats.parameters_original:,} | {stats.parameters:,} "
        f"({saved:.1%} fewer) |\n"
        f"| encoder MACs @ {stats.seq_len} tokens | {stats.encoder_macs_original:,} | "
        f"{stats.encoder_macs:,} |\n{nonzero}\n"
        f"Heads kept per layer: {per_layer}.\n\n{stored}{_loading(stats, plan, storage)}"
        "```python\nimport prunekit\nmodel = prunekit.load(PATH)\n```\n"
    )


def _loading(stats, plan: PruningPlan, storage: StorageOptions) -> str:
    """How the directory loads: stock ``from_pretrained`` refuses it when weights were cut or
    are stored compactly (empty placeholders), and reads it when nothing was."""
    cut = stats.parameters < stats.parameters_original
    compact = plan.sparse_masks is not None or storage.embeddings != "float32"
    if cut or compact:
        reason = "physically smaller" if cut else "stored compactly"
        return (
            f"The weights are {reason}, so stock `from_pretrained` refuses this directory "
            "with a size-mismatch error. Load it with:\n\n"
        )
    return "Nothing was cut, so stock `from_pretrained` reads it too; or load it with:\n\n"
