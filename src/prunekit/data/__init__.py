"""GLUE data: task registry, TSV loading with a seeded validation split, metrics, encoding."""

from prunekit.data.encode import (
    EncodedDataset,
    by_length,
    encode_examples,
    input_lengths,
    make_collate,
)
from prunekit.data.glue import (
    TASKS,
    Example,
    TaskSpec,
    examples_digest,
    get_task,
    list_tasks,
    load_examples,
    resolve_data_dir,
)
from prunekit.data.metrics import compute_metrics, constant_prediction_floor, primary_metric
from prunekit.data.multitask import TaskMixture
from prunekit.data.task_data import SPLIT_SEED, TaskData, task_dataset, train_examples_digest

__all__ = [
    "SPLIT_SEED",
    "TASKS",
    "TaskData",
    "TaskMixture",
    "task_dataset",
    "train_examples_digest",
    "EncodedDataset",
    "Example",
    "TaskSpec",
    "by_length",
    "compute_metrics",
    "constant_prediction_floor",
    "encode_examples",
    "examples_digest",
    "get_task",
    "input_lengths",
    "list_tasks",
    "load_examples",
    "make_collate",
    "primary_metric",
    "resolve_data_dir",
]
