"""Fine-tuning (accelerate) and evaluation."""

from prunekit.train.distill import distillation_loss, make_distillation_loss
from prunekit.train.evaluate import EvalResult, evaluate, predict
from prunekit.train.finetune import TrainConfig, TrainResult, finetune

__all__ = [
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "distillation_loss",
    "evaluate",
    "finetune",
    "make_distillation_loss",
    "predict",
]
