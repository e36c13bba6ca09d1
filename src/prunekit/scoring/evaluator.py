"""Fast metric evaluation of many head sets on one fixed split, through gates.

A state is a set of removed heads ``{(layer, head)}``. Its metric needs a forward pass over
the split with those heads gated to 0. Two states whose gates agree on layers ``0..l`` have
identical hidden states after layer ``l``, so the evaluator keeps each layer's output per
(prefix of gate rows) in an LRU cache bounded in bytes, and starts a new state's forward at the
first layer not covered by a cached prefix: the layers before it are replaced by modules that
replay the cached output. Several states that start at the same layer from the same cached
prefix run in one forward (``[S, L, H]`` gates over an S-times stacked batch).
Results equal an uncached forward's to float precision: replayed layers are the very outputs
computed before, but a stacked forward may take other kernel paths than a single one, so the
lowest bits can differ (tests bound them at 1e-5), and with them a near-tied prediction.

With ``memo_dir`` every state's metric is also appended to ``<memo_dir>/<fingerprint>.jsonl``,
where the fingerprint hashes the weights, the head plan, the split's inputs and labels and the
metric. A later evaluator of the same model on the same split reads it back, so searches that
share states (A* at several budgets, a killed search run again) never pay twice.

Everything runs on the model's device: the split is moved there once, gates are built there and
cached layer outputs stay there (``cache_bytes`` then bounds device memory). Metrics computed on
a GPU can differ from CPU ones in the last float digits, so non-CPU devices get their own memo.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from torch import nn

from prunekit.data import TaskSpec, compute_metrics, primary_metric
from prunekit.device import module_device
from prunekit.models.adapter import get_adapter
from prunekit.models.gates import HeadGates, plan_gates
from prunekit.models.memo import hash_inputs, hash_weights
from prunekit.models.surgery import current_plan

__all__ = ["GatedEvaluator", "EvaluatorStats", "State"]

State = frozenset  # frozenset[tuple[int, int]] of removed (layer, head)
MEMO_FORMAT = 1  # bump when what a memo line means changes


@dataclass
class EvaluatorStats:
    states: int = 0
    forwards: int = 0
    layer_forwards: int = 0
    layer_forwards_saved: int = 0
    memo_hits: int = 0  # states whose metric came from the memo file, not a forward

    @property
    def saved_fraction(self) -> float:
        total = self.layer_forwards + self.layer_forwards_saved
        return self.layer_forwards_saved / total if total else 0.0


class _Replay(nn.Module):
    """Stands in for an encoder layer and returns a stored output instead of computing one."""

    def __init__(self, output) -> None:
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


class GatedEvaluator:
    """The task's primary metric of ``model`` with given heads removed, on fixed batches.

    Args:
        model: a fine-tuned sequence classifier on any device (not modified; eval mode).
        batches: the labelled split, materialised once on the model's device.
        task: decides the metric (primary metric of the task, x100).
        cache_bytes: LRU bound for cached layer outputs; 0 disables the prefix cache.
        states_per_forward: how many states may share one stacked forward.
        memo_dir: where metrics persist across evaluators (see the module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Iterable[dict[str, torch.Tensor]],
        task: TaskSpec,
        cache_bytes: int = 4 << 30,
        states_per_forward: int = 4,
        memo_dir: Path | str | None = None,
    ) -> None:
        self.model = model.eval()
        self.device = module_device(model)
        self.task = task
        self.metric_name = primary_metric(task)
        self.batches = [dict(b) for b in batches]
        self.labels = np.concatenate([b.pop("labels").cpu().numpy() for b in self.batches])
        # Moved once: the split is re-read for every state, a copy per forward would dominate.
        self.batches = [{k: v.to(self.device) for k, v in b.items()} for b in self.batches]
        self.plan = current_plan(model)
        self.layers = get_adapter(model).layer_list(model)
        self.num_layers = len(self.layers)
        self.cache_bytes = cache_bytes
        self.states_per_forward = max(1, states_per_forward)
        self.stats = EvaluatorStats()
        self._cache: OrderedDict[bytes, list] = OrderedDict()
        self._cached_bytes = 0
        self._memo: dict[State, np.ndarray] = {}
        self._scores: dict[State, float] = {}
        self._from_file: set[State] = set()
        self.memo_file: Path | None = None
        if memo_dir is not None:
            self.memo_file = Path(memo_dir) / f"{self.fingerprint()}.jsonl"
            self._scores = _read_memo(self.memo_file)
            self._from_file = set(self._scores)

    # ------------------------------------------------------------------ public

    def gates_of(self, state: State) -> torch.Tensor:
        """``[L, H]`` CPU gates of a state: 1 for kept heads, 0 for removed or absent ones.

        The CPU copy is the cache key; `HeadGates` moves it to the model's device.
        """
        gates = plan_gates(self.plan)
        for layer, head in state:
            gates[layer, head] = 0.0
        return gates

    def metric(self, state: State) -> float:
        return self.metrics([state])[0]

    def metrics(self, states: Sequence[State]) -> list[float]:
        """Metric of each state (memoised: a state is evaluated at most once)."""
        todo = [s for s in dict.fromkeys(states) if s not in self._scores]
        for state, logits in zip(todo, self.logits(todo), strict=True):
            self._scores[state] = self._score(logits)
        hits = self._from_file.intersection(states)
        self.stats.memo_hits += len(hits)
        self._from_file -= hits
        if todo and self.memo_file is not None:
            _append_memo(self.memo_file, {s: self._scores[s] for s in todo})
        return [self._scores[s] for s in states]

    def fingerprint(self) -> str:
        """Hash of what a metric depends on: weights, heads, inputs, labels, metric, and the
        kernels (torch and transformers versions, attention implementation, device type)."""
        # The device type joins the key only off the CPU. (Memo files written before the
        # transformers version and attention implementation joined it are not read again.)
        device = "" if self.device.type == "cpu" else f"|{self.device.type}"
        attention = getattr(self.model.config, "_attn_implementation", None)
        header = (
            f"{MEMO_FORMAT}|{torch.__version__}|{transformers.__version__}|{attention}|"
            f"{self.metric_name}|{self.plan.to_json()}"
        )
        digest = hashlib.sha256(f"{header}{device}".encode())
        hash_weights(digest, self.model)
        hash_inputs(digest, self.batches)
        digest.update(self.labels.tobytes())
        return digest.hexdigest()[:24]

    def logits(self, states: Sequence[State]) -> list[np.ndarray]:
        """Model outputs ``[N, C]`` on the split for each state, in split order."""
        todo = list(dict.fromkeys(s for s in states if s not in self._memo))
        groups: dict[tuple[int, bytes], list[State]] = {}
        prefixes: dict[bytes, list] = {}
        for state in todo:
            start, key = self._deepest_prefix(self.gates_of(state))
            groups.setdefault((start, key), []).append(state)
            if start > 0:
                # Hold the outputs now: storing later groups may evict this key from the LRU.
                prefixes[key] = self._cache[key]
        for (start, key), members in sorted(groups.items(), key=lambda kv: -kv[0][0]):
            for i in range(0, len(members), self.states_per_forward):
                self._run(members[i : i + self.states_per_forward], start, prefixes.get(key))
        return [self._memo[s] for s in states]

    # ------------------------------------------------------------------ internals

    def _prefix_key(self, gates: torch.Tensor, layer: int) -> bytes:
        return layer.to_bytes(2, "little") + gates[: layer + 1].numpy().tobytes()

    def _deepest_prefix(self, gates: torch.Tensor) -> tuple[int, bytes]:
        """(first layer to compute, cache key of the output before it or b'')."""
        if self.cache_bytes > 0:
            for layer in range(self.num_layers - 1, -1, -1):
                key = self._prefix_key(gates, layer)
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return layer + 1, key
        return 0, b""

    @torch.inference_mode()
    def _run(self, states: list[State], start: int, cached: list | None) -> None:
        count = len(states)
        gates = torch.stack([self.gates_of(s) for s in states])  # [S, L, H], CPU: cache keys
        outputs_per_layer: list[list] = [[] for _ in range(self.num_layers)]
        logits = []
        captured: dict[int, object] = {}
        hooks = [
            self.layers[i].register_forward_hook(_capture(captured, i))
            for i in range(start, self.num_layers)
        ]
        originals = [self.layers[i] for i in range(start)]
        try:
            with HeadGates(self.model, gates):
                for b, batch in enumerate(self.batches):
                    inputs = {k: v.repeat(count, *([1] * (v.ndim - 1))) for k, v in batch.items()}
                    if start > 0:
                        replay = _stack(cached[b], count)
                        for i in range(start):
                            self.layers[i] = _Replay(replay)
                    logits.append(self.model(**inputs).logits.float().cpu())
                    for i in range(start, self.num_layers):
                        outputs_per_layer[i].append(captured[i])
        finally:
            for i, layer in enumerate(originals):
                self.layers[i] = layer
            for hook in hooks:
                hook.remove()
        batches = len(self.batches)
        self.stats.forwards += 1
        self.stats.states += count
        self.stats.layer_forwards += (self.num_layers - start) * batches * count
        self.stats.layer_forwards_saved += start * batches * count
        all_logits = torch.cat([chunk.unflatten(0, (count, -1)) for chunk in logits], dim=1)
        for s, state in enumerate(states):
            self._memo[state] = all_logits[s].numpy()
            if self.cache_bytes > 0:
                for i in range(start, self.num_layers - 1):  # the last layer is never replayed
                    self._store(
                        self._prefix_key(gates[s], i),
                        [_select(out, s, count) for out in outputs_per_layer[i]],
                    )

    def _score(self, logits: np.ndarray) -> float:
        predictions = logits[:, 0] if self.task.is_regression else logits.argmax(-1)
        return compute_metrics(self.task, predictions, self.labels)[self.metric_name]

    def _store(self, key: bytes, outputs: list) -> None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return
        size = sum(_nbytes(o) for o in outputs)
        if size > self.cache_bytes:
            return
        self._cache[key] = outputs
        self._cached_bytes += size
        while self._cached_bytes > self.cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= sum(_nbytes(o) for o in evicted)


def _read_memo(path: Path) -> dict[State, float]:
    """Metrics stored by earlier evaluators; a torn last line (a killed run) is skipped."""
    scores: dict[State, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                scores[frozenset(tuple(h) for h in record["removed"])] = float(record["metric"])
            except (ValueError, KeyError, TypeError):
                continue
    return scores


def _append_memo(path: Path, scores: dict[State, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps({"removed": sorted(state), "metric": metric}) + "\n"
        for state, metric in scores.items()
    )
    torn = False
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as existing:
            existing.seek(-1, 2)
            torn = existing.read(1) != b"\n"
    with path.open("a") as handle:
        handle.write(("\n" if torn else "") + lines)


def _capture(store: dict, index: int):
    def hook(module, args, output):
        store[index] = output

    return hook


def _map(output, fn):
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, tuple):
        return tuple(_map(o, fn) for o in output)
    return output


def _select(output, s: int, count: int):
    """State ``s``'s block of a stacked layer output (cloned so the stack can be freed)."""
    return _map(output, lambda t: t.unflatten(0, (count, -1))[s].clone())


def _stack(output, count: int):
    return _map(output, lambda t: t.repeat(count, *([1] * (t.ndim - 1))))


def _nbytes(output) -> int:
    if isinstance(output, torch.Tensor):
        return output.numel() * output.element_size()
    if isinstance(output, tuple):
        return sum(_nbytes(o) for o in output)
    return 0
