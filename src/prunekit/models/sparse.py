"""A sparse CPU inference path for unstructured-pruned linears (opt-in; surgery never uses it).

`SparseLinear` keeps a weight in CSR with int32 indices and computes ``addmm(bias, W, x.T).T``
(PyTorch's MKL CSR kernel; ``F.linear`` with a CSR weight is several times slower), over
chunks of tokens so large batches stay in cache. `to_sparse_inference` replaces, per linear,
the dense module by a `SparseLinear` only where a timing on this machine says it is faster, and
reports every choice. Inference only: no gradients flow through a `SparseLinear`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan

__all__ = [
    "SparseLinear",
    "LinearChoice",
    "to_sparse_inference",
    "time_linear",
    "break_even_sparsity",
]

CHUNK = 512  # tokens per addmm


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with W stored as CSR (int32 indices); for inference on CPU."""

    def __init__(self, linear: nn.Linear, chunk: int = CHUNK) -> None:
        super().__init__()
        weight = linear.weight.detach()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
            csr = weight.to_sparse_csr()
            self.weight = torch.sparse_csr_tensor(
                csr.crow_indices().to(torch.int32),
                csr.col_indices().to(torch.int32),
                csr.values(),
                csr.shape,
            )
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(weight.shape[0])
        self.register_buffer("bias_column", bias[:, None].clone())
        self.in_features, self.out_features, self.chunk = linear.in_features, weight.shape[0], chunk

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        parts = [
            torch.addmm(self.bias_column, self.weight, piece.T).T
            for piece in flat.split(self.chunk)
        ]
        return torch.cat(parts).reshape(*x.shape[:-1], self.out_features)


@dataclass(frozen=True)
class LinearChoice:
    name: str
    sparsity: float
    dense_ms: float
    sparse_ms: float | None  # None: not tried (below min_sparsity)
    sparse: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_linear(module: nn.Module, x: torch.Tensor, rounds: int = 5) -> float:
    """Median seconds of ``module(x)`` after one warm-up call."""
    with torch.no_grad():
        module(x)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            module(x)
            samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def to_sparse_inference(
    model: nn.Module,
    tokens: int = 32 * 128,
    min_sparsity: float = 0.5,
    rounds: int = 5,
    always: bool = False,
) -> list[LinearChoice]:
    """Replace each of the six linears of every layer by a `SparseLinear` where it is timed
    faster on ``tokens`` random input rows (linears below ``min_sparsity`` are not tried;
    ``always`` converts every tried one). Modifies ``model`` in place (float32, CPU); returns
    the choice made for every linear."""
    adapter = get_adapter(model)
    plan = current_plan(model)
    parameter = next(model.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        raise ConfigError(
            f"the sparse path runs float32 models on the CPU; this one is {parameter.dtype} on "
            f"{parameter.device} (use --device cpu, and a float32 model)"
        )
    generator = torch.Generator().manual_seed(0)
    choices = []
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        for slot_name in ("query", "key", "value", "attn_out", "ffn_in", "ffn_out"):
            slot = getattr(parts, slot_name)
            linear = slot.get()
            if not isinstance(linear, nn.Linear) or 0 in linear.weight.shape:
                continue
            sparsity = float((linear.weight == 0).float().mean())
            x = torch.randn(tokens, linear.in_features, generator=generator)
            dense = time_linear(linear, x, rounds)
            candidate = SparseLinear(linear) if sparsity >= min_sparsity else None
            sparse_time = time_linear(candidate, x, rounds) if candidate else None
            faster = sparse_time is not None and (always or sparse_time < dense)
            if faster:
                slot.set(candidate)
            sparse_ms = None if sparse_time is None else sparse_time * 1e3
            choices.append(
                LinearChoice(f"{layer}.{slot_name}", sparsity, dense * 1e3, sparse_ms, faster)
            )
    return choices


def break_even_sparsity(
    in_features: int,
    out_features: int,
    tokens: int,
    grid: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98),
    rounds: int = 5,
) -> float | None:
    """The lowest sparsity of ``grid`` at which a random ``in x out`` `SparseLinear` beats the
    dense one on ``tokens`` rows on this machine (None: never)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, in_features, generator=generator)
    for sparsity in grid:
        linear = nn.Linear(in_features, out_features)
        with torch.no_grad():
            keep = torch.rand(linear.weight.shape, generator=generator) >= sparsity
            linear.weight.mul_(keep)
        if time_linear(SparseLinear(linear), x, rounds) < time_linear(linear, x, rounds):
            return sparsity
    return None
