"""Save and load pruned models as Hugging Face directories that reload exactly.

Layout written by `save`: ``model.safetensors`` (the only weight format read or written),
``config.json`` with a ``prunekit`` section (format version + plan in original indices) and
the model's actual ``dtype``, ``model_masks.safetensors`` when the plan has unstructured masks,
tokenizer files and a ``README.md`` model card. `load` follows timm's builder: dense
architecture from the config -> shapes from the plan -> strict safetensors load. Stock
``from_pretrained`` refuses such a directory with a size-mismatch error, never loads it wrongly.
Directories written by transformers 4.x ``prune_heads`` (``config.pruned_heads``) and by
prunekit 0.1.0 (format version 1: no masks, no reliable dtype) load too.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import safetensors.torch
import transformers
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModel, PreTrainedModel

from prunekit.errors import ConfigError, ModelLoadError, PlanError, PrunekitError
from prunekit.models.adapter import get_adapter
from prunekit.models.model_card import model_card
from prunekit.models.positions import fit_tokenizer
from prunekit.models.sparse_storage import (
    MASKS_NAME,
    QUANTIZED_NAME,
    SPARSE_NAME,
    StorageOptions,
    compact_parameters,
    emptied,
    write_compact,
)
from prunekit.models.surgery import (
    CONFIG_KEY,
    apply_plan,
    check_weights_match,
    current_plan,
    dense_plan,
    install_head_mask_guard,
)
from prunekit.models.weights_file import (
    file_dtypes,
    load_weights,
    match_dtypes,
    parameter_dtype,
    shard_files,
)
from prunekit.outputs import atomic_output_dir
from prunekit.plan import (
    MASKS_FILE,
    PLAN_FORMAT_VERSION,
    READABLE_FORMAT_VERSIONS,
    PruningPlan,
)

__all__ = [
    "save",
    "write_model_files",
    "load",
    "load_tokenizer",
    "is_prunekit_dir",
    "refuse_pickled_weights",
    "read_config_json",
]

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
# Not the plan's default "masks.safetensors" (MASKS_NAME is "model_masks.safetensors"): a recipe
# may write a method's plan.json (and its masks) into the same directory, and that plan need not
# equal the model's composed one.
# Directories with compact storage (half/int8 values, quantized embeddings) are version 3; the
# plan inside keeps the plan format.
STORAGE_FORMAT_VERSION = 3
_READABLE = (*READABLE_FORMAT_VERSIONS, STORAGE_FORMAT_VERSION)


def save(
    model: PreTrainedModel,
    directory: str | Path,
    tokenizer: Any = None,
    overwrite: bool = False,
    storage: StorageOptions | None = None,
) -> Path:
    """Write ``model`` (and ``tokenizer``) to ``directory`` atomically. Returns the path.

    ``storage`` stores sparse values or the word embeddings in half precision or int8
    (`StorageOptions`); the default keeps every weight exactly as the model holds it.
    """
    from prunekit.models.sparse import is_converted  # sparse imports this module's siblings

    if is_converted(model):
        raise ConfigError(
            "this model runs the sparse inference path, which is not saved; save the model "
            "before to_sparse_inference (a saved sparse model is already stored compactly)"
        )
    with atomic_output_dir(directory, overwrite) as tmp:
        write_model_files(model, tmp, tokenizer, storage)
    return Path(directory)


def write_model_files(
    model: PreTrainedModel,
    directory: Path,
    tokenizer: Any = None,
    storage: StorageOptions | None = None,
    method_plan: PruningPlan | None = None,
) -> None:
    """Write the model files into an existing (temporary) directory, and with ``method_plan``
    the plan a method returned as ``plan.json`` (its provenance beside the model's own)."""
    storage = storage or StorageOptions()
    plan = current_plan(model)
    check_weights_match(model, plan)  # a config shared with a model pruned since: refused
    if plan.sparse_masks is not None:
        plan = plan.with_masks(plan.masks, MASKS_NAME)
    # a copy: the files record the storage and dtype, the caller's live model stays as it was
    # (a later save_pretrained of it, or a failed save here, must not claim compact storage)
    config = copy.deepcopy(model.config)
    section: dict[str, Any] = {"format_version": PLAN_FORMAT_VERSION, "plan": plan.to_dict()}
    if storage != StorageOptions():
        # A reader that predates compact storage must say "upgrade", not "size mismatch".
        section |= {"format_version": STORAGE_FORMAT_VERSION, "storage": storage.to_dict()}
    setattr(config, CONFIG_KEY, section)
    # ``model.to(float16)`` leaves config.dtype as it was; record what the weights really are.
    config.dtype = parameter_dtype(model) or config.dtype
    config.architectures = [type(model).__name__]
    # A transformers-4.x key would make 4.x loaders prune a second time; the plan replaces it.
    if hasattr(config, "pruned_heads"):
        delattr(config, "pruned_heads")
    config.save_pretrained(directory)
    # Masked (and quantized) weights are stored compactly and leave an empty placeholder.
    compact = compact_parameters(model, plan, storage)
    with emptied(compact) as dense:
        safetensors.torch.save_model(
            model, str(directory / WEIGHTS_NAME), metadata={"format": "pt"}
        )
    write_compact(directory, dense, model, plan, storage)
    plan.write_masks(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(model_card(model, plan, storage))
    if method_plan is not None:
        # A plan taken from a loaded sparse model names the model's masks file (or a plan.json
        # edited by hand, its weights): its masks must not replace one of the model's files.
        if method_plan.sparse_masks in _OWN_FILES:
            method_plan = method_plan.with_masks(method_plan.masks, MASKS_FILE)
        method_plan.write(directory / "plan.json")
    if plan.sparse_masks is not None:  # the live plan names the masks file as the saved one
        setattr(
            model.config, CONFIG_KEY, getattr(model.config, CONFIG_KEY) | {"plan": plan.to_dict()}
        )


# The weight files a saved model may have: a method plan's masks never take their names.
_OWN_FILES = (WEIGHTS_NAME, SPARSE_NAME, QUANTIZED_NAME, MASKS_NAME)


def refuse_pickled_weights(directory: Path) -> None:
    """A one-line refusal for a directory whose weights are pickles only (pytorch_model*.bin,
    no safetensors): unpickling runs code from the file."""
    if not any(directory.glob("*.safetensors")) and any(directory.glob("pytorch_model*.bin")):
        raise ModelLoadError(
            f"{directory} has only pytorch_model.bin; prunekit never unpickles weights. "
            "Convert it to model.safetensors with a trusted transformers install first"
        )


def is_prunekit_dir(directory: str | Path) -> bool:
    """True when ``directory`` holds a config.json with a prunekit or 4.x pruned_heads section."""
    raw = read_config_json(Path(directory), must_exist=False)
    return raw is not None and (CONFIG_KEY in raw or bool(raw.get("pruned_heads")))


def load(directory: str | Path, attn_implementation: str | None = None) -> PreTrainedModel:
    """Rebuild and load a model saved by `save` (or by transformers 4.x after ``prune_heads``).

    A plain dense Hugging Face directory loads too. The result is in eval mode and rejects
    ``head_mask=``.

    Raises:
        ModelLoadError: the directory, config or weights are missing or corrupt.
        UnsupportedModelError: the architecture has no adapter.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    raw = read_config_json(directory, must_exist=True)
    weights = directory / WEIGHTS_NAME
    # a dense Hugging Face checkpoint may come in shards; prunekit's own saves never do
    files = [weights] if weights.is_file() else shard_files(directory)
    if not files:
        refuse_pickled_weights(directory)
        raise ModelLoadError(f"{directory} has no {WEIGHTS_NAME}; is it a saved model directory?")

    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except (ValueError, KeyError, OSError, StrictDataclassError) as err:
        # StrictDataclassError: a field of the wrong type ("hidden_size": "384")
        reason = " ".join(str(err).split())
        raise ModelLoadError(f"cannot read {directory / 'config.json'}: {reason}") from None
    get_adapter(config)  # fail on unsupported architectures before building anything
    model_class = _model_class(raw)
    kwargs: dict[str, Any] = {}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    # The weights' own dtype, not config.dtype: prunekit 0.1.0 recorded a stale one.
    stored_dtypes = {key: dtype for file in files for key, dtype in file_dtypes(file).items()}
    dtype = Counter(stored_dtypes.values()).most_common(1)[0][0] if stored_dtypes else config.dtype
    if dtype is not None:
        kwargs["dtype"] = dtype

    plan = _stored_plan(raw, config)
    storage = _stored_storage(raw)
    if plan is not None and files != [weights]:
        raise ModelLoadError(
            f"{directory} records a pruning plan but its weights are sharded; prunekit reads a "
            f"pruned model from one {WEIGHTS_NAME}: save it with prunekit.save"
        )
    if plan is not None:
        try:
            plan = plan.resolve_masks(directory)
        except PlanError as err:
            raise ModelLoadError(f"{directory} is incomplete: {err}") from None
    for key in (CONFIG_KEY, "pruned_heads"):
        if hasattr(config, key):
            delattr(config, key)
    if plan is None:
        model = _from_pretrained_dense(model_class, directory, kwargs)
    else:
        try:  # e.g. an attention implementation the family or this machine lacks
            if model_class is AutoModel:
                model = AutoModel.from_config(config, **kwargs)
            else:
                model = model_class._from_config(config, **kwargs)
        except (ValueError, ImportError) as err:
            raise ModelLoadError(f"cannot build {directory}'s model: {err}") from None
        if plan != dense_plan(config):
            try:
                apply_plan(model, plan)
            except PlanError as err:
                raise ModelLoadError(f"{directory} holds an unusable plan: {err}") from None
        match_dtypes(model, stored_dtypes)
        load_weights(model, weights, plan, storage, directory)
    install_head_mask_guard(model)
    return model.eval()


def load_tokenizer(directory: str | Path) -> Any:
    """The tokenizer saved next to a model, or `ModelLoadError` if there is none; it cuts
    inputs to the model's position table where the directory's config.json gives one."""
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True
        )
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(f"no usable tokenizer in {directory}: {err}") from None
    config = read_config_json(Path(directory), must_exist=False)
    if config is not None and "max_position_embeddings" in config:
        fit_tokenizer(tokenizer, SimpleNamespace(**config))
    return tokenizer


# ---------------------------------------------------------------------------- helpers


def read_config_json(directory: Path, must_exist: bool) -> dict[str, Any] | None:
    """``directory``'s config.json as a dict (None when absent and not ``must_exist``), or
    `ModelLoadError` naming what is wrong with it."""
    path = directory / "config.json"
    if not path.is_file():
        if must_exist:
            raise ModelLoadError(f"{directory} has no config.json; is it a saved model directory?")
        return None
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(
            f"{path} is not valid JSON ({err}); the checkpoint is corrupt"
        ) from None
    if not isinstance(raw, dict):
        raise ModelLoadError(
            f"{path} holds a JSON {type(raw).__name__}, not a config object; the checkpoint is "
            "corrupt"
        )
    return raw


def _stored_plan(raw: dict[str, Any], config) -> PruningPlan | None:
    """The plan recorded in config.json, converting a 4.x ``pruned_heads`` map if present."""
    section = raw.get(CONFIG_KEY)
    if section is not None:
        if not isinstance(section, dict) or not isinstance(section.get("plan"), dict):
            raise ModelLoadError(f"config.json '{CONFIG_KEY}' section has no plan; corrupt")
        version = section.get("format_version")
        if version not in _READABLE:
            raise ModelLoadError(
                f"checkpoint format version {version} is not supported by this prunekit "
                f"(reads {', '.join(map(str, _READABLE))}); upgrade prunekit"
            )
        try:
            return PruningPlan.build(**section["plan"])
        except PrunekitError as err:
            raise ModelLoadError(f"config.json holds an invalid plan: {err}") from None
    pruned = raw.get("pruned_heads")
    if pruned:
        dense = dense_plan(config)
        if not isinstance(pruned, dict):
            raise ModelLoadError(
                f"config.json pruned_heads is {type(pruned).__name__}, not a mapping of layers "
                "to heads: the config is corrupt"
            )
        kept = [set(range(dense.num_heads)) for _ in range(dense.num_layers)]
        for layer, heads in pruned.items():
            try:
                index, removed = int(layer), {int(h) for h in heads}
                if not 0 <= index < dense.num_layers:
                    raise IndexError
                if any(not 0 <= h < dense.num_heads for h in removed):
                    raise IndexError
                kept[index] -= removed
            except (ValueError, TypeError, IndexError):
                raise ModelLoadError(
                    f"config.json pruned_heads names layer {layer!r} with heads {heads!r}; the "
                    f"model has layers 0 to {dense.num_layers - 1} of heads 0 to "
                    f"{dense.num_heads - 1}: the config is corrupt"
                ) from None
        return PruningPlan.build(
            **{**dense.to_dict(), "kept_heads": [sorted(k) for k in kept], "method": "v4"}
        )
    return None


def _stored_storage(raw: dict[str, Any]) -> StorageOptions:
    section = raw.get(CONFIG_KEY) or {}
    try:
        return StorageOptions.from_dict(section.get("storage"))
    except (PrunekitError, TypeError) as err:
        raise ModelLoadError(f"config.json holds invalid storage options: {err}") from None


def _model_class(raw: dict[str, Any]) -> type[PreTrainedModel]:
    """The transformers class named in ``architectures`` (never remote code), else AutoModel;
    `ModelLoadError` when it belongs to another model type than the config's (a BERT config
    naming a GPT-2 class would build a model none of the weights fit)."""
    names = raw.get("architectures") or []
    other = None  # a class of another model type, if that is all there is
    for name in names if isinstance(names, list) else []:
        cls = getattr(transformers, str(name), None)
        if isinstance(cls, type) and issubclass(cls, PreTrainedModel):
            model_type = getattr(cls.config_class, "model_type", None)
            if model_type == raw.get("model_type"):
                return cls
            other = other or (name, model_type)
    if other is not None:
        raise ModelLoadError(
            f"config.json names {other[0]} (a {other[1]} class) for a "
            f"{raw.get('model_type')} model: the config is corrupt"
        )
    return AutoModel  # type: ignore[return-value]


def _from_pretrained_dense(model_class, directory: Path, kwargs: dict) -> PreTrainedModel:
    """``from_pretrained`` a plain directory without passing random weights off as loaded.

    Sentence-transformers folders often name ``*ForMaskedLM`` in ``architectures`` but ship
    only the encoder, so transformers would build the LM head from random numbers. When every
    weight of such a pre-training head is missing, the bare encoder (AutoModel) is loaded
    instead. The model records what happened, for ``inspect`` and callers:
    ``prunekit_dropped_modules`` (head modules named in the config but not in the weights, so
    not built) and ``prunekit_new_modules`` (modules whose weights were missing and were
    randomly initialised).
    """

    def attempt(cls) -> tuple[PreTrainedModel, set[str]]:
        try:
            with quiet_transformers():
                model, info = cls.from_pretrained(  # safetensors only: no pickle is read
                    directory,
                    local_files_only=True,
                    output_loading_info=True,
                    use_safetensors=True,
                    **kwargs,
                )
        except SafetensorError as err:
            raise ModelLoadError(f"{directory}'s weights are corrupt: {err}") from None
        except (OSError, RuntimeError, ValueError) as err:
            raise ModelLoadError(f"cannot load {directory}: {str(err).splitlines()[0]}") from None
        missing = set(info.get("missing_keys") or ())
        # A tied weight (LM decoder = word embeddings) is missing by name but copied from its
        # source, so it is only new when its source is missing too.
        tied = getattr(model, "all_tied_weights_keys", None) or {}  # {target: source}, v5
        sources = tied if isinstance(tied, dict) else dict.fromkeys(tied)
        return model, {k for k in missing if k not in sources or sources[k] in missing}

    model, missing = attempt(model_class)
    dropped: list[str] = []
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    head = [name for name, _ in model.named_parameters() if not name.startswith(prefix)]
    pretraining_head = model_class.__name__.endswith(("ForMaskedLM", "ForPreTraining"))
    if pretraining_head and prefix != "." and head and set(head) <= set(missing):
        dropped = sorted({name.split(".")[0] for name in head})
        log.warning(
            "%s names %s but its weights hold no %s; loaded the bare encoder without it",
            directory,
            model_class.__name__,
            ", ".join(dropped),
        )
        model, missing = attempt(AutoModel)
    new = sorted({key.rpartition(".")[0] or key for key in missing})
    if new:
        log.warning("%s: randomly initialised (not in the weights): %s", directory, ", ".join(new))
    model.prunekit_dropped_modules = dropped
    model.prunekit_new_modules = new
    return model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No load-report table and no per-tensor progress bar on stderr while loading."""
    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
