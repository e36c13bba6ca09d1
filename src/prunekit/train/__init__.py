"""The one training loop (accelerate), its losses and schedules, recovery and evaluation."""

from prunekit.train.distill import (
    DistillConfig,
    distillation_loss,
    distillation_parts,
    make_distillation_loss,
)
from prunekit.train.evaluate import EvalResult, evaluate, evaluate_splits, predict
from prunekit.train.extras import GeneratorState, LossFn, ParamGroup, StepCallback, TrainExtras
from prunekit.train.finetune import (
    LOOP_OPTIONS,
    METRICS_FILE,
    Precision,
    TrainConfig,
    TrainResult,
    asked_loop_options,
    finetune,
)
from prunekit.train.recover import recover, recovery_steps

__all__ = [
    "LOOP_OPTIONS",
    "METRICS_FILE",
    "DistillConfig",
    "EvalResult",
    "GeneratorState",
    "LossFn",
    "ParamGroup",
    "Precision",
    "StepCallback",
    "TrainConfig",
    "TrainExtras",
    "TrainResult",
    "asked_loop_options",
    "distillation_loss",
    "distillation_parts",
    "evaluate",
    "evaluate_splits",
    "finetune",
    "make_distillation_loss",
    "predict",
    "recover",
    "recovery_steps",
]
