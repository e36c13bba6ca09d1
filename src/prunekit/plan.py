"""`PruningPlan`: the one result type every pruning method returns and `apply_plan` consumes.

A plan names what *stays*, always in the indices of the original dense model, so a plan read from
any checkpoint means the same thing whatever was pruned before it. Per layer it holds the kept
attention heads and the kept FFN neurons (``None`` = the layer's FFN is untouched, which keeps
config.json short for head-only pruning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from prunekit.errors import PlanError

__all__ = ["PruningPlan", "PLAN_FORMAT_VERSION"]

PLAN_FORMAT_VERSION = 1


class PruningPlan(BaseModel):
    """Heads and FFN neurons kept per layer, in original (dense-model) indices.

    Attributes:
        num_layers: layers of the dense model (L).
        num_heads: heads per layer of the dense model (H).
        intermediate_size: FFN width per layer of the dense model.
        kept_heads: ``[L]`` sorted lists of kept head indices in ``[0, H)``; may be empty.
        kept_ffn: ``None`` (all FFN neurons kept) or ``[L]`` entries, each ``None`` (layer
            untouched) or a sorted list of kept neuron indices in ``[0, intermediate_size)``.
        sparse_masks: reserved for unstructured methods: parameter FQN -> mask file name.
        method: name of the method that produced the plan, for provenance.
        meta: free-form provenance (seed, scores file, ...); never read by surgery.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_layers: int
    num_heads: int
    intermediate_size: int
    kept_heads: tuple[tuple[int, ...], ...]
    kept_ffn: tuple[tuple[int, ...] | None, ...] | None = None
    sparse_masks: dict[str, str] | None = None
    method: str | None = None
    meta: dict[str, Any] = {}

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
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"plan file not found: {path}")
        return cls.from_json(path.read_text())

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

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

    def is_subset_of(self, other: PruningPlan) -> bool:
        """True when everything this plan keeps is also kept by ``other``."""
        if not self.same_shape_as(other):
            return False
        for layer in range(self.num_layers):
            if not set(self.kept_heads[layer]) <= set(other.kept_heads[layer]):
                return False
            if not set(self.ffn_kept(layer)) <= set(other.ffn_kept(layer)):
                return False
        return True

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
        return self.model_copy(update={"kept_heads": heads, "kept_ffn": ffn, "method": None})

    def summary(self) -> str:
        per_layer = " ".join(str(n) for n in self.heads_per_layer)
        return f"{self.heads_kept}/{self.heads_total} heads kept (per layer: {per_layer})"


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
