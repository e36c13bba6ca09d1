"""The method contract and its registry (timm's registry, kept to one decorator).

A method is one module: a frozen pydantic ``Config`` (extra="forbid"), then score -> select ->
plan (-> train, for methods that train, through `prunekit.train.finetune`), then one registered
entry ``fn(request, config) -> MethodResult``. The decorator records what the method needs and
does (`MethodInfo`), and recipes, `compare` and the report read that metadata instead of
testing method names. Adding a method touches no recipe, CLI or report code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.data import Dataset

from prunekit.data import TaskSpec
from prunekit.errors import ConfigError
from prunekit.methods.config import (
    RESUMES_AT_DEFAULT,
    MethodConfig,
    TrainingMethodConfig,
    read_method_options,
)
from prunekit.methods.targets import HeadTarget, head_target, select_top_heads
from prunekit.plan import PruningPlan
from prunekit.train import LossFn, TrainConfig, TrainExtras, TrainResult, finetune

__all__ = [
    "DEFAULT_HEAD_METHOD",
    "RESUMES_AT_DEFAULT",
    "HeadTarget",
    "MethodConfig",
    "TrainingMethodConfig",
    "MethodInfo",
    "MethodResult",
    "PruneRequest",
    "Target",
    "register_method",
    "get_method",
    "list_methods",
    "head_target",
    "select_top_heads",
    "read_method_options",
]

Target = Literal["heads", "ffn", "sparsity"]
Batches = Callable[[], Iterable[dict[str, torch.Tensor]]]


@dataclass
class PruneRequest:
    """Everything a method may use to decide. Methods must not touch ``dev`` data, and must not
    modify ``model``: a method that trains weights trains a copy and returns it.

    Attributes:
        model: the model to prune (fine-tuned, or pre-trained for ``prunes_pretrained``).
        plan: what the model keeps now (methods choose among these heads).
        target: the head budget (all kept heads in budget mode: the method decides).
        seed: the only source of randomness.
        batches: re-iterable validation-split batches (labels included), or None.
        certify_batches: for methods that certify (``certifies``), the held-out part of the
            validation split that ``batches`` (the search part) never includes.
        train_set, collate: the train split, for methods that train through the loop.
        tokenizer: the model's tokenizer, for methods that rewrite inputs (augmentation).
        task: the task being pruned for (its primary metric), when known.
        teacher: the unpruned model, frozen (methods with ``needs_teacher``).
        options: raw settings (``KEY=VALUE``); validated against the method's ``Config``
            unless ``config`` is given.
        config: the method's typed settings.
        state_dir: a directory for this run's checkpoints; kept across kills.
        keep_trained_state: keep the final checkpoint of a method's training in ``state_dir``
            (`prunekit prune` and `run`, which delete their work folder once the output is
            written): a kill after training, while evaluating or recovering, then reads the
            trained weights back instead of training again.
        cache_dir: a directory shared by every run of this method on this model (memos).
        train_budget_steps: optimizer steps the other methods get for recovery (compare's
            equal budget); methods that train weights spend no more unless told to.
        on_progress: callback for long-running work: ``{"step", "steps", "loss"?, "note"?,
            ...}``; numeric extras are shown as ``name value``.
    """

    model: nn.Module
    plan: PruningPlan
    target: HeadTarget
    seed: int = 0
    batches: Batches | None = None
    certify_batches: Batches | None = None
    train_set: Dataset | None = None
    collate: Callable[[list[dict]], dict[str, torch.Tensor]] | None = None
    tokenizer: Any = None
    task: TaskSpec | None = None
    teacher: nn.Module | None = None
    options: dict[str, Any] = field(default_factory=dict)
    config: MethodConfig | None = None
    state_dir: Path | None = None
    keep_trained_state: bool = False
    cache_dir: Path | None = None
    train_budget_steps: int | None = None
    on_progress: Callable[[dict[str, Any]], None] | None = None

    def progress(self, **info: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(info)

    def train(
        self,
        model: nn.Module,
        config: TrainConfig,
        loss_fn: LossFn | None = None,
        extras: TrainExtras | None = None,
        state: str | None = None,
        report: Callable[[int], dict[str, Any]] | None = None,
    ) -> TrainResult:
        """Train ``model`` on this request's train split through the package's one loop,
        checkpointing in ``state_dir`` (under ``state`` when a method trains several times),
        so a killed run resumes; each step is reported as progress with the loss parts and
        what ``report(step)`` adds (a budget, a sparsity, a note)."""

        def on_step(step: int, total: int, values: dict[str, float]) -> None:
            extra = report(step) if report is not None else {}
            self.progress(step=step, steps=total, **extra, **values)

        directory = self.state_dir
        if directory is not None and state is not None:
            directory = directory / state
        return finetune(
            model,
            self.train_set,
            self.collate,
            config,
            checkpoint_dir=directory,
            resume=True,
            loss_fn=loss_fn,
            on_step=on_step,
            extras=extras,
            keep_checkpoint=self.keep_trained_state and directory is not None,
        )


@dataclass
class MethodResult:
    """A method's answer: the plan, plus what a training-time method produced.

    Attributes:
        plan: what stays (original indices); the method's name is in ``plan.method``.
        model: the trained weights (same shapes as the request's model, before `apply_plan`),
            or None when the method only decided.
        record: provenance for files and reports: ``certificate`` (A*), ``loss_curve``
            (the loop's metrics.jsonl lines), ``train_steps``, ``seconds``...; ``warnings``
            (a list of one-line strings): what the user should know about the decision, which
            `prunekit prune` prints and keeps in metrics.json.
    """

    plan: PruningPlan
    model: nn.Module | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_weights(self) -> bool:
        return self.model is not None


MethodFn = Callable[[PruneRequest, Any], MethodResult]


@dataclass(frozen=True)
class MethodInfo:
    """A registered method and what it needs and does.

    Attributes:
        summary: one line for ``prunekit methods``.
        targets: what it prunes (heads, ffn neurons, unstructured sparsity).
        per_layer: supports ``--per-layer`` (the same head count in every layer).
        decides_count: runs without ``--heads`` (budget mode: the method picks how many); its
            Config must then have a ``budget`` setting (compare sets it per budget point).
        attn_implementation: load the model with this attention (``eager`` for attention maps).
        trains_weights: may train the model's weights (then the result carries them).
        needs_teacher: gets the unpruned model as ``request.teacher``.
        prunes_pretrained: meant for pre-trained models (no fine-tuned classifier needed).
        needs_data: splits it reads: ``validation`` (search/scoring) and/or ``train``.
        certifies: states a guarantee; `decide` then splits the validation split into a search
            part and a disjoint certify part (``request.certify_batches``).
    """

    name: str
    fn: MethodFn = field(repr=False)
    config: type[MethodConfig]
    summary: str
    targets: tuple[Target, ...] = ("heads",)
    per_layer: bool = True
    decides_count: bool = False
    attn_implementation: str | None = None
    trains_weights: bool = False
    needs_teacher: bool = False
    prunes_pretrained: bool = False
    needs_data: tuple[str, ...] = ("validation",)
    certifies: bool = False

    def parse_config(self, options: Mapping[str, Any] | None) -> MethodConfig:
        """Validate ``options`` against the method's Config (one-line `ConfigError`)."""
        options = dict(options or {})
        fields = self.config.model_fields
        valid = ", ".join(sorted(fields)) or "none"
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise ConfigError(f"{self.name}: unknown option {unknown[0]!r}; valid options: {valid}")
        try:
            return self.config(**options)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first.get("loc", ()))
            message = first["msg"].removeprefix("Value error, ")
            if not key:  # a check across options: it names them itself
                raise ConfigError(f"{self.name}: {message}") from None
            value = options.get(key, first.get("input"))
            raise ConfigError(
                f"{self.name}: option {key}={value!r}: {message}; valid options: {valid}"
            ) from None

    def check_target(self, counted: bool, per_layer: bool, min_per_layer: int = 0) -> None:
        """Refuse target modes the method does not have (before anything loads)."""
        if "heads" not in self.targets:
            head_flags = {
                "--heads": counted,
                "--per-layer": per_layer,
                "--at-least-heads-per-layer": min_per_layer > 0,
            }
            if given := [flag for flag, on in head_flags.items() if on]:
                raise ConfigError(
                    f"{self.name} targets {'/'.join(self.targets)}, not heads: drop "
                    f"{', '.join(given)} (see its settings with prunekit methods)"
                )
            return
        if not counted and not self.decides_count:
            raise ConfigError(
                f"give --heads FRACTION (e.g. 0.5) or --keep-heads N; {self.name} does not "
                "choose the head count itself"
            )
        if per_layer and not self.per_layer:
            raise ConfigError(f"{self.name} chooses heads globally; --per-layer is not supported")

    def uses_teacher(self, options: Mapping[str, Any] | None) -> bool:
        """Whether a run with these method ``options`` distils from a teacher."""
        return self.needs_teacher and self.parse_config(options).reads_teacher()

    def check_modes(
        self, options: Mapping[str, Any] | None, counted: bool, deciding: bool = False
    ) -> None:
        """Refuse settings that no run reads: those of the budget mode when every run has a head
        count (``counted``, not ``deciding``), those of the head-count mode when none has.
        ``budget`` is always the budget mode's (fixed-K A* would certify back to fewer heads
        than asked, peer would ignore it)."""
        if not self.decides_count:
            return
        config = self.parse_config(options)
        fields = self.config.model_fields
        modes = {"count": counted, "budget": deciding}
        for setting, mode in self.config.read_only_in_mode.items():
            default = fields[setting].get_default(call_default_factory=True)
            if modes[mode] or getattr(config, setting) == default:
                continue
            if setting == "budget":
                raise ConfigError(
                    f"{self.name}: --budget is for its budget mode, which chooses the head "
                    "count; with --heads/--keep-heads it removes exactly that many: drop one of "
                    "them"
                )
            if mode == "budget":
                raise ConfigError(
                    f"{self.name}: {setting} is read only in its budget mode, which chooses the "
                    f"head count (no --heads/--keep-heads; compare: --budgets): drop {setting} "
                    "or the head count"
                )
            raise ConfigError(
                f"{self.name}: {setting} is read only with a head count (--heads/--keep-heads): "
                f"drop {setting} or give a head count"
            )

    def __call__(self, request: PruneRequest) -> MethodResult:
        config = request.config
        if not isinstance(config, self.config):
            config = self.parse_config(request.options)
        if "heads" in self.targets:
            self.check_target(True, request.target.per_layer)
        if self.needs_teacher and config.reads_teacher() and request.teacher is None:
            raise ConfigError(f"{self.name} distils from the unpruned model and needs a teacher")
        if "train" in self.needs_data and request.train_set is None:
            raise ConfigError(f"{self.name} trains and needs the train split")
        result = self.fn(request, config)
        result.plan = result.plan.model_copy(update={"method": self.name})
        return result

    def to_dict(self) -> dict[str, Any]:
        """Metadata and the config's fields (type, default, description, where it is read):
        `methods --json`."""
        options = {}
        for name, info in self.config.model_fields.items():
            annotation = getattr(info.annotation, "__name__", None) or str(info.annotation)
            default = info.get_default(call_default_factory=True)
            options[name] = {
                "type": annotation.replace("typing.", ""),
                "default": default if _jsonable(default) else str(default),
                "description": info.description or "",
                # read only under a switch, or in one count mode; given otherwise: refused
                "read_only_with": self.config.read_only_with.get(name),
                "read_only_in_mode": self.config.read_only_in_mode.get(name),
            }
        return {
            "name": self.name,
            "summary": self.summary,
            "targets": list(self.targets),
            "per_layer": self.per_layer,
            "decides_count": self.decides_count,
            "attn_implementation": self.attn_implementation,
            "trains_weights": self.trains_weights,
            "needs_teacher": self.needs_teacher,
            "prunes_pretrained": self.prunes_pretrained,
            "needs_data": list(self.needs_data),
            "certifies": self.certifies,
            "options": options,
            "default": self.name == DEFAULT_HEAD_METHOD,
        }


_METHODS: dict[str, MethodInfo] = {}

# The head-pruning method `prunekit run` and `prunekit prune` use unless told otherwise: the
# leader of the five-task comparison at 50% of heads with one recovery epoch (R1), by mean
# paired difference over every committed (task, seed) run. It is not fixed: a test recomputes
# the leader from benchmarks/results/head_baselines and fails when more runs change it.
DEFAULT_HEAD_METHOD = "l0"


def register_method(
    name: str, *, config: type[MethodConfig], summary: str, **metadata: Any
) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn(request, config) -> MethodResult`` under ``name`` with its metadata."""

    def add(fn: MethodFn) -> MethodFn:
        if name in _METHODS:
            raise ValueError(f"pruning method {name!r} is already registered")
        if metadata.get("decides_count") and "budget" not in config.model_fields:
            raise ValueError(f"{name} chooses the head count, so its Config needs a budget")
        _METHODS[name] = MethodInfo(name=name, fn=fn, config=config, summary=summary, **metadata)
        return fn

    return add


def _import_methods() -> None:
    """Import every module of this package once, so that each method registers itself: a new
    method is a new module and nothing else."""
    import importlib
    import pkgutil

    import prunekit.methods as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def list_methods() -> list[str]:
    _import_methods()
    return sorted(_METHODS)


def get_method(name: str) -> MethodInfo:
    _import_methods()
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
