"""GLUE task registry and loading of the nine tasks from the ``glue_data`` TSV layout.

Data comes from a local folder in the layout written by GLUE's ``download_glue_data.py``
(``DIR/SST-2/train.tsv`` ...), or, when no folder is configured, from the Hugging Face hub
through the optional ``datasets`` package.

The GLUE test sets have no public labels, so prunekit never uses them: model selection uses a
``validation`` split carved deterministically out of ``train.tsv``, and the GLUE dev file is
only used for the final report.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from prunekit.data.carve import validation_carve
from prunekit.errors import DataError

__all__ = [
    "TaskSpec", "Example", "TASKS", "get_task", "list_tasks", "resolve_data_dir", "load_examples",
]  # fmt: skip

logger = logging.getLogger(__name__)

GLUE_DIR_ENV = "GLUE_DIR"
_HUB_HINT = (
    "pass --data-dir DIR or set GLUE_DIR to a folder in the glue_data layout "
    "(DIR/SST-2/train.tsv), or install `datasets` (pip install 'prunekit[hub]') "
    "with internet access"
)


@dataclass(frozen=True)
class TaskSpec:
    """Static description of one GLUE task.

    Attributes:
        name: Canonical lowercase name, e.g. ``"sst2"``.
        dir_name: Folder of the task inside ``glue_data``, e.g. ``"SST-2"``.
        text_fields: TSV header names of the one or two text columns.
        labels: Label vocabulary as written in the TSV; ``None`` for STS-B regression.
        primary_metric: Key of :func:`prunekit.data.compute_metrics` output used for selection.
        is_large: Whether the validation split is at most 2000 examples rather than 10% of
            train.
        dev_files: Split name to file name for the GLUE dev data.
    """

    name: str
    dir_name: str
    text_fields: tuple[str, ...]
    labels: tuple[str, ...] | None
    primary_metric: str
    is_large: bool
    # A dict is unhashable; leaving it out of the hash keeps TaskSpec usable as a cache key.
    dev_files: dict[str, str] = field(hash=False)
    # Whether train holds the phrases of each sentence's parse tree (SST-2): its validation
    # carve then takes whole sentences (`prunekit.data.carve`).
    carve_by_sentence: bool = False

    @property
    def dev_splits(self) -> tuple[str, ...]:
        """The GLUE dev splits results report: ``("dev",)``, and MNLI's ``"dev_mismatched"``."""
        return tuple(self.dev_files)

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for regression, else the size of the label vocabulary."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        """Whether the task is scored as regression (STS-B)."""
        return self.labels is None


@dataclass(frozen=True)
class Example:
    """One labelled sentence or sentence pair.

    Attributes:
        text_a: First (or only) text.
        text_b: Second text for pair tasks, else ``None``.
        label: Class index into ``TaskSpec.labels``, or the float score for STS-B.
    """

    text_a: str
    text_b: str | None
    label: int | float


_01 = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_S12 = ("sentence1", "sentence2")
_MNLI_DEV = {"dev": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"}


def _spec(*args: object, dev: dict[str, str] | None = None, by_sentence: bool = False) -> TaskSpec:
    # A fresh dict per task, so that mutating one spec's dev_files cannot leak into another.
    dev_files = dict(dev or {"dev": "dev.tsv"})
    return TaskSpec(*args, dev_files=dev_files, carve_by_sentence=by_sentence)  # type: ignore[arg-type]


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _spec("cola", "CoLA", ("sentence",), _01, "matthews", False),
        _spec("sst2", "SST-2", ("sentence",), _01, "accuracy", True, by_sentence=True),
        _spec("mrpc", "MRPC", ("#1 String", "#2 String"), _01, "f1", False),
        _spec("stsb", "STS-B", _S12, None, "spearman", False),
        _spec("qqp", "QQP", ("question1", "question2"), _01, "accuracy", True),
        _spec("mnli", "MNLI", _S12, ("contradiction", "entailment", "neutral"), "accuracy", True,
              dev=_MNLI_DEV),
        _spec("qnli", "QNLI", ("question", "sentence"), _NLI2, "accuracy", True),
        _spec("rte", "RTE", _S12, _NLI2, "accuracy", False),
        _spec("wnli", "WNLI", _S12, _01, "accuracy", False),
    )
}  # fmt: skip

# Header name of the label column per task; CoLA has no header and is read by position.
_LABEL_COLUMN = {"sst2": "label", "mrpc": "Quality", "stsb": "score", "qqp": "is_duplicate",
                 "mnli": "gold_label", "qnli": "label", "rte": "label",
                 "wnli": "label"}  # fmt: skip
_COLA_COLUMNS = 4
_COLA_LABEL, _COLA_TEXT = 1, 3

# Hub config: (text fields, TSV label for each hub label id). The hub orders MNLI labels
# differently from the TSV vocabulary, so ids are mapped through the label strings.
_HUB_LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "cola": (("sentence",), _01), "sst2": (("sentence",), _01), "mrpc": (_S12, _01),
    "stsb": (_S12, None), "qqp": (("question1", "question2"), _01),
    "mnli": (("premise", "hypothesis"), ("entailment", "neutral", "contradiction")),
    "qnli": (("question", "sentence"), _NLI2), "rte": (_S12, _NLI2), "wnli": (_S12, _01),
}  # fmt: skip
_HUB_SPLIT = {"train": "train", "dev": "validation", "dev_mismatched": "validation_mismatched"}


def list_tasks() -> list[str]:
    """Return the canonical names of the nine GLUE tasks."""
    return list(TASKS)


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Look up a task by name, ignoring case, hyphens and underscores (``"SST-2"`` -> sst2).

    Args:
        name: Task name such as ``"sst2"``, ``"SST-2"`` or ``"sts-b"``; a TaskSpec is
            returned unchanged.

    Returns:
        The task's TaskSpec.

    Raises:
        DataError: If the name is not one of the nine GLUE tasks.
    """
    if isinstance(name, TaskSpec):
        return name
    key = str(name).lower().replace("-", "").replace("_", "").strip()
    if key not in TASKS:
        raise DataError(f"Unknown GLUE task {name!r}; choose one of: {', '.join(TASKS)}.")
    return TASKS[key]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """Pick the GLUE data folder: the explicit argument, else ``$GLUE_DIR``, else ``None``.

    Args:
        data_dir: Folder given by the user (``--data-dir``), or ``None``.

    Returns:
        The folder as a Path, or ``None`` when neither the argument nor ``GLUE_DIR`` is set.

    Raises:
        DataError: If the chosen folder does not exist or is not a directory.
    """
    if data_dir is not None and str(data_dir) != "":
        path, source = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get(GLUE_DIR_ENV):
        path, source = Path(os.environ[GLUE_DIR_ENV]).expanduser(), GLUE_DIR_ENV
    else:
        return None
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise DataError(
            f"GLUE data folder {path} (from {source}) {what}; pass --data-dir DIR or set "
            f"GLUE_DIR to a folder in the glue_data layout (DIR/SST-2/train.tsv)."
        )
    return path


def examples_digest(
    task: str | TaskSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> str:
    """24 hex digits identifying a split's examples (texts and labels, in order): a checkpoint
    keyed by it is never resumed on other data."""
    digest = hashlib.sha256()
    for example in load_examples(task, split, data_dir, seed):
        digest.update(repr(example).encode())
    return digest.hexdigest()[:24]


def load_examples(
    task: str | TaskSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> list[Example]:
    """Load one split of a GLUE task.

    Args:
        task: Task name or TaskSpec.
        split: ``"train"`` (train.tsv minus the validation examples), ``"validation"`` (carved
            from train.tsv with ``seed``), ``"dev"`` (the GLUE dev file), or for MNLI also
            ``"dev_mismatched"``.
        data_dir: GLUE data folder; defaults to ``$GLUE_DIR``, then the Hugging Face hub.
        seed: Seed of the train/validation split; the same seed gives the same split anywhere.

    Returns:
        The examples, in file order.

    Raises:
        DataError: If the task or split is unknown, or the data cannot be found or parsed.
    """
    spec = get_task(task)
    valid = ["train", "validation", *spec.dev_files]
    if split not in valid:
        raise DataError(
            f"Unknown split {split!r} for {spec.name}; choose one of: {', '.join(valid)}."
        )
    root = resolve_data_dir(data_dir)
    source = "train" if split in ("train", "validation") else split
    rows = _load_hub(spec, source) if root is None else _load_tsv(spec, root, source)
    if source != "train":
        if not rows:
            where = "the hub" if root is None else f"{root}"
            raise DataError(
                f"The {spec.name} {split} split from {where} has no examples; replace it with "
                "the original GLUE file."
            )
        return list(rows)
    validation, train = validation_carve(spec, rows, seed)
    keep = validation if split == "validation" else train
    return [ex for ex, k in zip(rows, keep.tolist(), strict=True) if k]


def _present_tasks(root: Path) -> list[str]:
    return [s.name for s in TASKS.values() if (root / s.dir_name).is_dir()]


def _load_tsv(spec: TaskSpec, root: Path, source: str) -> tuple[Example, ...]:
    filename = "train.tsv" if source == "train" else spec.dev_files[source]
    path = root / spec.dir_name / filename
    try:
        stat = path.stat()
    except OSError:
        present = ", ".join(_present_tasks(root)) or "none"
        raise DataError(
            f"GLUE file {path} not found (task folders present in {root}: {present}); add the "
            f"file or pass --data-dir / set GLUE_DIR to a complete glue_data folder."
        ) from None
    # mtime and size in the key so that a file rewritten in place is parsed again.
    return _parse_tsv(str(path), spec, stat.st_mtime_ns, stat.st_size)


# The original GLUE QQP train.tsv has rows with missing columns (GLUE-baselines issue #5);
# transformers' QqpProcessor and HF datasets skip them. Every other task's file is whole.
_SKIPS_MALFORMED = frozenset({"qqp"})


@lru_cache(maxsize=32)
def _parse_tsv(path: str, spec: TaskSpec, _mtime_ns: int, _size: int) -> tuple[Example, ...]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            width, text_cols, label_col = _columns(reader, spec, path)
            examples, skipped = [], 0
            for row in reader:
                if not row:
                    continue
                if len(row) != width and spec.name in _SKIPS_MALFORMED:
                    skipped += 1
                    continue
                if len(row) != width:
                    raise DataError(
                        f"{path} line {reader.line_num} has {len(row)} columns, expected {width}; "
                        f"fix or remove that line (the file may be truncated or not tab-separated)."
                    )
                label = _parse_label(spec, row[label_col], path, reader.line_num)
                text_b = row[text_cols[1]] if len(text_cols) > 1 else None
                examples.append(Example(row[text_cols[0]], text_b, label))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"Could not read GLUE file {path} ({exc}); replace it with the original GLUE file."
        ) from exc
    if skipped:
        logger.warning("skipped %d malformed lines of %s (as GLUE's own loaders do)", skipped, path)
    logger.debug("parsed %d %s examples from %s", len(examples), spec.name, path)
    return tuple(examples)


def _columns(
    reader: Iterator[list[str]], spec: TaskSpec, path: str
) -> tuple[int, tuple[int, ...], int]:
    """Return (row width, text column indices, label column index), consuming any header."""
    if spec.name == "cola":
        return _COLA_COLUMNS, (_COLA_TEXT,), _COLA_LABEL
    header = next(reader, None)
    if header is None:
        raise DataError(f"GLUE file {path} is empty; replace it with the original GLUE file.")
    wanted = (*spec.text_fields, _LABEL_COLUMN[spec.name])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(
            f"GLUE file {path} has no column(s) {', '.join(missing)} in its header line; "
            f"replace it with the original {spec.dir_name} file from glue_data."
        )
    *text_cols, label_col = (header.index(c) for c in wanted)
    return len(header), tuple(text_cols), label_col


def _parse_label(spec: TaskSpec, raw: str, path: str, line: int) -> int | float:
    if spec.labels is None:
        try:
            return float(raw)
        except ValueError:
            expected = "a number"
    elif raw in spec.labels:
        return spec.labels.index(raw)
    else:
        expected = ", ".join(spec.labels)
    raise DataError(
        f"{path} line {line} has label {raw!r}, expected {expected}; fix or remove that line."
    )


@lru_cache(maxsize=16)
def _load_hub(spec: TaskSpec, source: str) -> tuple[Example, ...]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"No GLUE data folder is set and `datasets` is missing; {_HUB_HINT}."
        ) from None
    fields, hub_labels = _HUB_LAYOUT[spec.name]
    hub_split = _HUB_SPLIT[source]
    if spec.name == "mnli" and source == "dev":
        hub_split = "validation_matched"
    try:
        ds = datasets.load_dataset("nyu-mll/glue", spec.name, split=hub_split)
    # Offline, unknown config, auth: every hub failure has the same two fixes.
    except Exception as exc:
        raise DataError(f"Loading {spec.name} from the hub failed ({exc}); {_HUB_HINT}.") from None
    columns = [ds[f] for f in fields]
    out = []
    for i, raw in enumerate(ds["label"]):
        if hub_labels is None:
            label: int | float = float(raw)
        else:
            label = spec.labels.index(hub_labels[raw])  # type: ignore[union-attr]
        out.append(Example(columns[0][i], columns[1][i] if len(columns) > 1 else None, label))
    return tuple(out)
