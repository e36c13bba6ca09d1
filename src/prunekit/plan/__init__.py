"""`PruningPlan`: the one result type every pruning method returns and `apply_plan` consumes.

A plan names what *stays*, always in the indices of the original dense model, so a plan read from
any checkpoint means the same thing whatever was pruned before it. Per layer it holds the kept
attention heads and the kept FFN neurons (``None`` = the layer's FFN is untouched, which keeps
config.json short for head-only pruning).

A plan may also carry unstructured masks (`with_masks`): boolean tensors keyed
``"{layer}.{slot}"`` (slot: one of `MASK_SLOTS`, the adapter's six linears), each in the dense
shape of that linear's weight, so that they compose with head and FFN pruning like every other
index in a plan. ``sparse_masks`` names the safetensors file that holds them, beside plan.json or
in a model directory; the tensors themselves live in a private attribute and are never put in JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator
from safetensors import SafetensorError, safe_open

from prunekit.errors import PlanError
from prunekit.files import write_atomic
from prunekit.plan.masks import (
    MASK_SLOTS,
    MaskSet,
    bad_file_name,
    check_masks,
    pack_masks,
    unpack_masks,
)

__all__ = [
    "PruningPlan",
    "PLAN_FORMAT_VERSION",
    "READABLE_FORMAT_VERSIONS",
    "MASK_SLOTS",
    "MASKS_FILE",
]

# 1: prunekit 0.1.0 (heads and FFN neurons). 2: adds ``sparse_masks``. Version 1 reads as 2.
PLAN_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
MASKS_FILE = "masks.safetensors"
# Metadata key of a masks file: a digest of the plan written with it. Plan and masks are two
# files, each replaced atomically; a kill between the two renames would otherwise pair a new
# masks file with an old plan.json, and the old plan would load someone else's masks silently.
_PLAN_DIGEST_KEY = "plan_sha256"


class PruningPlan(BaseModel):
    """Heads and FFN neurons kept per layer, in original (dense-model) indices.

    Attributes:
        num_layers: layers of the dense model (L).
        num_heads: heads per layer of the dense model (H).
        intermediate_size: FFN width per layer of the dense model.
        kept_heads: ``[L]`` sorted lists of kept head indices in ``[0, H)``; may be empty.
        kept_ffn: ``None`` (all FFN neurons kept) or ``[L]`` entries, each ``None`` (layer
            untouched) or a sorted list of kept neuron indices in ``[0, intermediate_size)``.
        sparse_masks: file name of the plan's masks (see `with_masks`), relative to the directory
            of plan.json or of the model; ``None`` when the plan has no masks.
        method: name of the method that produced the plan, for provenance.
        meta: free-form provenance (seed, scores file, ...); never read by surgery.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_layers: int
    num_heads: int
    intermediate_size: int
    kept_heads: tuple[tuple[int, ...], ...]
    kept_ffn: tuple[tuple[int, ...] | None, ...] | None = None
    sparse_masks: str | None = None
    method: str | None = None
    meta: dict[str, Any] = {}

    # None = no masks loaded: either the plan has none, or it names a file not read yet.
    _mask_set: MaskSet | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> PruningPlan:
        if self.num_layers < 1 or self.num_heads < 1 or self.intermediate_size < 1:
            raise ValueError("num_layers, num_heads and intermediate_size must be positive")
        if len(self.kept_heads) != self.num_layers:
            raise ValueError(
                f"kept_heads has {len(self.kept_heads)} layers but the model has {self.num_layers}"
            )
        for layer, heads in enumerate(self.kept_heads):
            _check_indices(heads, self.num_heads, f"kept_heads[{layer}]")
        if self.kept_ffn is not None:
            if len(self.kept_ffn) != self.num_layers:
                raise ValueError(
                    f"kept_ffn has {len(self.kept_ffn)} layers but the model has {self.num_layers}"
                )
            for layer, neurons in enumerate(self.kept_ffn):
                if neurons is not None:
                    _check_indices(neurons, self.intermediate_size, f"kept_ffn[{layer}]")
        if self.sparse_masks is not None and bad_file_name(self.sparse_masks):
            raise ValueError(
                f"sparse_masks must be a plain *.safetensors file name, got {self.sparse_masks!r}"
            )
        return self

    # ------------------------------------------------------------------ construction

    @classmethod
    def dense(cls, num_layers: int, num_heads: int, intermediate_size: int) -> PruningPlan:
        """The plan that keeps everything."""
        return cls(
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_size=intermediate_size,
            kept_heads=tuple(tuple(range(num_heads)) for _ in range(num_layers)),
        )

    @classmethod
    def build(cls, **fields: Any) -> PruningPlan:
        """Validate ``fields`` into a plan, raising `PlanError` with a readable message."""
        try:
            return cls(**fields)
        except ValidationError as err:
            raise PlanError(f"invalid pruning plan: {_first_error(err)}") from None

    @classmethod
    def from_json(cls, text: str) -> PruningPlan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PlanError(f"pruning plan is not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise PlanError("pruning plan must be a JSON object")
        return cls.build(**data)

    @classmethod
    def read(cls, path: str | Path) -> PruningPlan:
        """Read plan.json and, if it names one, the masks file beside it."""
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"plan file not found: {path}")
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise PlanError(f"{path} is not a plan (not UTF-8 text); pass a plan.json") from None
        return cls.from_json(text).resolve_masks(path.parent)

    def resolve_masks(self, directory: str | Path) -> PruningPlan:
        """This plan with the masks file it names read from ``directory`` (safetensors only)."""
        if self.sparse_masks is None:
            return self
        path = Path(directory) / self.sparse_masks
        if not path.is_file():
            raise PlanError(
                f"plan names masks file {self.sparse_masks!r} but {path} does not exist"
            )
        try:
            with safe_open(str(path), framework="pt") as handle:
                written_with = (handle.metadata() or {}).get(_PLAN_DIGEST_KEY)
            masks = unpack_masks(safetensors.torch.load_file(str(path)))
        except (SafetensorError, OSError, ValueError, KeyError) as err:
            raise PlanError(f"masks file {path} is corrupt: {err}") from None
        # Files written before the stamp existed carry none and are taken as they are.
        if written_with is not None and written_with != self._digest():
            raise PlanError(
                f"masks file {path} was written with another plan than the one naming it (an "
                "interrupted write, or a plan.json edited by hand); write the plan again"
            )
        return self.with_masks(masks, self.sparse_masks)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def write(self, path: str | Path) -> None:
        """Write plan.json to ``path`` and the masks file it names beside it, each atomically."""
        path = Path(path)
        self.write_masks(path.parent)
        write_atomic(path, lambda tmp: tmp.write_text(self.to_json() + "\n"))

    def write_masks(self, directory: str | Path) -> Path | None:
        """Write the masks to ``directory / sparse_masks`` atomically; None when there are none."""
        masks = self.masks
        if not masks:
            return None
        path = Path(directory) / self.sparse_masks  # type: ignore[operator]
        write_atomic(
            path,
            lambda tmp: safetensors.torch.save_file(
                pack_masks(masks),
                str(tmp),
                {"format": "prunekit-bits-1", _PLAN_DIGEST_KEY: self._digest()},
            ),
        )
        return path

    def _digest(self) -> str:
        """SHA-256 of the plan's JSON with sorted keys: the same after plan.json or config.json
        (which transformers writes with sorted keys) is written and read back."""
        canonical = json.dumps(json.loads(self.to_json()), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    # ------------------------------------------------------------------ masks

    def with_masks(
        self, masks: Mapping[str, torch.Tensor], file_name: str = MASKS_FILE
    ) -> PruningPlan:
        """This plan with unstructured ``masks`` (True = keep), replacing any it had.

        Args:
            masks: ``"{layer}.{slot}"`` -> bool tensor in the dense shape of that linear's weight
                (``[out, in]``); a missing key keeps the whole weight. The plan keeps references
                to (CPU copies of) the tensors: do not modify them afterwards.
            file_name: name of the safetensors file the masks are written to.

        Raises:
            PlanError: a key, dtype or shape does not fit the plan, or the file name is bad.
        """
        if not masks:
            return self.without_masks()
        if bad_file_name(file_name):
            raise PlanError(
                f"masks file name must be a plain *.safetensors name, got {file_name!r}"
            )
        # model_copy skips validation, which `check_masks` and the name check above stand in for.
        plan = self.model_copy(update={"sparse_masks": file_name})
        sizes = (self.num_layers, self.num_heads, self.intermediate_size)
        plan._mask_set = MaskSet(check_masks(masks, *sizes))
        return plan

    def without_masks(self) -> PruningPlan:
        if self.sparse_masks is None and self._mask_set is None:
            return self
        plan = self.model_copy(update={"sparse_masks": None})
        plan._mask_set = None
        return plan

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """``"{layer}.{slot}"`` -> bool mask in the dense weight shape; ``{}`` when none."""
        if self.sparse_masks is None:
            return {}
        if self._mask_set is None:
            raise PlanError(
                f"plan names masks file {self.sparse_masks!r} but its masks were not loaded; "
                "read it with PruningPlan.read or prunekit.load"
            )
        return dict(self._mask_set.tensors)

    def without_heads(self, removed: Iterable[tuple[int, int]]) -> PruningPlan:
        """This plan with the ``(layer, head)`` pairs of ``removed`` taken out of its kept heads
        (original head indices; pairs it no longer keeps are ignored)."""
        gone = set(removed)
        kept = tuple(
            tuple(h for h in heads if (layer, h) not in gone)
            for layer, heads in enumerate(self.kept_heads)
        )
        return self.model_copy(update={"kept_heads": kept})

    # ------------------------------------------------------------------ queries

    @property
    def heads_kept(self) -> int:
        return sum(len(h) for h in self.kept_heads)

    @property
    def heads_total(self) -> int:
        return self.num_layers * self.num_heads

    @property
    def heads_per_layer(self) -> list[int]:
        return [len(h) for h in self.kept_heads]

    def ffn_kept(self, layer: int) -> tuple[int, ...]:
        """Kept FFN neuron indices of ``layer`` (all of them when the layer is untouched)."""
        if self.kept_ffn is None or self.kept_ffn[layer] is None:
            return tuple(range(self.intermediate_size))
        return self.kept_ffn[layer]  # type: ignore[return-value]

    @property
    def ffn_per_layer(self) -> list[int]:
        return [len(self.ffn_kept(layer)) for layer in range(self.num_layers)]

    def pruned_heads(self) -> dict[int, list[int]]:
        """Removed heads per layer, in the ``config.pruned_heads`` form transformers 4.x used."""
        out = {}
        for layer, kept in enumerate(self.kept_heads):
            gone = sorted(set(range(self.num_heads)) - set(kept))
            if gone:
                out[layer] = gone
        return out

    def same_shape_as(self, other: PruningPlan) -> bool:
        return (self.num_layers, self.num_heads, self.intermediate_size) == (
            other.num_layers,
            other.num_heads,
            other.intermediate_size,
        )

    def is_subset_of(self, other: PruningPlan, masks: bool = True) -> bool:
        """True when everything this plan keeps is also kept by ``other``.

        With ``masks``, each mask entry must be kept by ``other`` too (a missing mask keeps all).
        """
        if not self.same_shape_as(other):
            return False
        for layer in range(self.num_layers):
            if not set(self.kept_heads[layer]) <= set(other.kept_heads[layer]):
                return False
            if not set(self.ffn_kept(layer)) <= set(other.ffn_kept(layer)):
                return False
        if not masks:
            return True
        mine = self.masks
        return all(
            bool(limit.all())
            if key not in mine
            else mine[key].shape == limit.shape and not bool((mine[key] & ~limit).any())
            for key, limit in other.masks.items()
        )

    def then(self, later: PruningPlan) -> PruningPlan:
        """The plan equal to applying ``self`` and then ``later``: what both keep."""
        if not self.same_shape_as(later):
            raise PlanError(
                "cannot compose plans of different model shapes: "
                f"{self.num_layers}x{self.num_heads}/{self.intermediate_size} vs "
                f"{later.num_layers}x{later.num_heads}/{later.intermediate_size}"
            )
        heads = tuple(
            tuple(sorted(set(a) & set(b)))
            for a, b in zip(self.kept_heads, later.kept_heads, strict=True)
        )
        ffn: tuple[tuple[int, ...] | None, ...] | None = None
        if self.kept_ffn is not None or later.kept_ffn is not None:
            ffn = tuple(
                None
                if len(set(self.ffn_kept(i)) & set(later.ffn_kept(i))) == self.intermediate_size
                else tuple(sorted(set(self.ffn_kept(i)) & set(later.ffn_kept(i))))
                for i in range(self.num_layers)
            )
        plan = self.without_masks().model_copy(
            update={"kept_heads": heads, "kept_ffn": ffn, "method": None}
        )
        masks = self.masks  # AND: an entry survives only if both plans keep it
        for key, mask in later.masks.items():
            masks[key] = masks[key] & mask if key in masks else mask
        if not masks:
            return plan
        return plan.with_masks(masks, self.sparse_masks or later.sparse_masks or MASKS_FILE)

    def summary(self) -> str:
        per_layer = " ".join(str(n) for n in self.heads_per_layer)
        text = f"{self.heads_kept}/{self.heads_total} heads kept (per layer: {per_layer})"
        if self.sparse_masks is not None and self._mask_set is not None:
            masks = self._mask_set.tensors.values()
            kept = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
            text += f"; {len(masks)} masks keep {kept:.1%} of their weights"
        return text


def _check_indices(indices: tuple[int, ...], upper: int, where: str) -> None:
    if list(indices) != sorted(indices):
        raise ValueError(f"{where} must be sorted ascending, got {list(indices)}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"{where} has duplicate indices: {list(indices)}")
    bad = [i for i in indices if i < 0 or i >= upper]
    if bad:
        raise ValueError(f"{where} has indices outside [0, {upper}): {bad}")


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = first.get("msg", str(err)).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
