"""Fine-tuning (accelerate) and evaluation."""

from prunekit.train.evaluate import EvalResult, evaluate, predict
from prunekit.train.finetune import TrainConfig, TrainResult, finetune

__all__ = ["EvalResult", "TrainConfig", "TrainResult", "evaluate", "finetune", "predict"]
