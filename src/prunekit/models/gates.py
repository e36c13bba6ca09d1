"""Head gates: scale each head's context before the attention output projection.

``gates`` is an ``[L, H]`` tensor in original head indices. A forward pre-hook on each layer's
output projection reshapes its input ``[..., n*head_size]`` to ``[..., n, head_size]`` and
multiplies head ``j`` by ``gates[layer, kept_heads[layer][j]]``. That is exactly the masking
semantics of transformers 4.x ``head_mask`` (context zeroed, output bias kept), it works under
eager and SDPA attention alike (the hook sits after the attention kernel), and gradients reach
``gates``. On a pruned model, gates of removed heads are simply unused.

Devices: gate values live on the model's device. Gates without gradient are moved there once;
a tensor that requires grad is kept as given (so the caller's leaf still collects gradients)
and copied to each layer's device inside the forward, which autograd differentiates through.
Gates are cast to the activations' dtype in the hook, so float16/bfloat16 models work too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from prunekit.device import module_device
from prunekit.errors import ConfigError
from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan, install_head_mask_guard
from prunekit.plan import PruningPlan

__all__ = ["HeadGates", "plan_gates"]

ContextObserver = Callable[[int, torch.Tensor], None]


class HeadGates:
    """Context manager that installs head gates on a model.

    Example::

        with HeadGates(model, requires_grad=True) as gates:
            loss = model(**batch).loss
            loss.backward()
        importance = gates.values.grad.abs()      # [L, H]

    Args:
        model: a supported encoder (dense or already pruned).
        gates: ``[L, H]`` initial values (default all ones), on any device. Kept by
            reference when it is a tensor that already requires grad, so an optimizer can train
            it (even on the CPU while the model is on a GPU); otherwise moved to the model's
            device. ``[S, L, H]`` gates S states at once: the input batch must then be S equal
            blocks, block s gated by ``gates[s]`` (used to evaluate several head sets in one
            forward).
        requires_grad: make ``values`` a leaf on the model's device that collects gradients.
        observer: optional ``fn(layer, context)`` called with each layer's gated context
            ``[B, T, n_kept, head_size]`` (for scorers that need per-token statistics).
    """

    def __init__(
        self,
        model: nn.Module,
        gates: torch.Tensor | None = None,
        requires_grad: bool = False,
        observer: ContextObserver | None = None,
    ) -> None:
        self.model = model
        self.adapter = get_adapter(model)
        self.plan = current_plan(model)
        self.device = module_device(model)
        shape = (self.plan.num_layers, self.plan.num_heads)
        if gates is None:
            gates = torch.ones(shape, device=self.device)
        _check_shape(gates, shape)
        if requires_grad and not gates.requires_grad:
            gates = gates.detach().to(self.device, copy=True).requires_grad_(True)
        self.values = self._placed(gates)
        self.observer = observer
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def set(self, gates: torch.Tensor) -> None:
        """Replace the gate values (same shape) without reinstalling hooks."""
        _check_shape(gates, (self.plan.num_layers, self.plan.num_heads))
        self.values = self._placed(gates)

    def _placed(self, gates: torch.Tensor) -> torch.Tensor:
        # A tensor in an autograd graph stays as given: a copy made here would be a new leaf
        # whose gradients never reach the caller's tensor (or a graph freed after backward).
        if gates.requires_grad:
            return gates
        return gates.to(self.device)

    def __enter__(self) -> HeadGates:
        head_size = self.adapter.head_size(self.model.config)
        for layer, kept in enumerate(self.plan.kept_heads):
            if not kept:
                continue
            out_proj = self.adapter.layer_modules(self.model, layer).attn_out.get()
            hook = self._make_hook(layer, list(kept), head_size, module_device(out_proj))
            self._handles.append(out_proj.register_forward_pre_hook(hook))
        install_head_mask_guard(self.model)
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, layer: int, kept: list[int], head_size: int, device: torch.device):
        # Built once on the layer's device: a per-forward host-to-GPU copy would stall the GPU.
        index = torch.tensor(kept, dtype=torch.long, device=device)

        def gate_context(module: nn.Module, args: tuple) -> tuple:
            context = args[0]
            heads = context.unflatten(-1, (len(kept), head_size))
            # No-ops unless the values are a trainable leaf elsewhere or the model is split
            # across devices; the copy is differentiable, so gradients still reach the leaf.
            values = self.values.to(heads.device)
            gate = values[..., layer, :].index_select(-1, index.to(heads.device))
            gate = gate.to(heads.dtype)
            if values.ndim == 3:  # S stacked states: the batch is S blocks of equal size
                blocks = heads.unflatten(0, (gate.shape[0], -1))
                gated = (blocks * gate[:, None, None, :, None]).flatten(0, 1)
            else:
                gated = heads * gate[:, None]
            if self.observer is not None:
                self.observer(layer, gated)
            return (gated.flatten(-2), *args[1:])

        return gate_context


def _check_shape(gates: torch.Tensor, shape: tuple[int, int]) -> None:
    if tuple(gates.shape[-2:]) != shape or gates.ndim not in (2, 3):
        raise ConfigError(
            f"gates must have shape {list(shape)} (or [S, {shape[0]}, {shape[1]}]), "
            f"got {list(gates.shape)}"
        )


def plan_gates(plan: PruningPlan, device: torch.device | str | None = None) -> torch.Tensor:
    """``[L, H]`` gates of a plan: 1 for the heads it keeps, 0 for the others."""
    gates = torch.zeros(plan.num_layers, plan.num_heads, device=device)
    for layer, kept in enumerate(plan.kept_heads):
        gates[layer, list(kept)] = 1.0
    return gates
