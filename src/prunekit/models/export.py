"""ONNX export of a saved (pruned) model, checked against PyTorch with onnxruntime.

The graph is the physically smaller model: removed heads and FFN units are simply absent, so
onnxruntime, or anything else that reads ONNX, runs it with no prunekit code. PyTorch's
torch.export-based exporter traces it with dynamic batch and sequence axes; the file is then
run by onnxruntime on inputs of other shapes than the traced ones and refused (nothing is
written) when its outputs differ from PyTorch's by more than ``tolerance``.

The model is traced with eager attention: PyTorch's SDPA decomposes into a graph with a NaN
guard per layer (IsNaN, Where) that onnxruntime runs 10-25% slower than the plain
MatMul-Softmax-MatMul of eager attention (measured on the default MiniLM, 2-core CPU; the
numbers are the same either way). ``optimize`` then applies onnxruntime's transformer fusions
(SkipLayerNormalization, BiasGelu: contrib ops, so that file runs only in onnxruntime); the
benchmarks use it because a user comparing runtimes compares against the fastest dense one.

The output directory holds ``model.onnx``, the source ``config.json`` (with its prunekit
section), the tokenizer files and ``export.json`` (opset, inputs, the measured difference).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prunekit.errors import ConfigError, ExportError
from prunekit.models.checkpoint import load, load_tokenizer, quiet_transformers
from prunekit.models.positions import max_sequence_length
from prunekit.outputs import atomic_output_dir, check_output_dir, refuse_output_holding

__all__ = ["ExportReport", "export_onnx", "onnx_session", "require_onnx"]

ONNX_NAME = "model.onnx"
# Texts for tracing and checking; the check batches differ from the trace in both axes.
TRACE_TEXTS = ["a short sentence to trace", "and a second, slightly longer one to pad"]
CHECK_TEXTS = [
    ["one"],
    [
        "the exported graph must generalise to other batch sizes",
        "and to other sequence lengths",
        "including a sequence much longer than any of the sentences used for tracing it, "
        "so that position embeddings and padding masks are exercised as well",
    ],
]


@dataclass
class ExportReport:
    path: str
    opset: int
    inputs: list[str]
    output: str
    max_abs_diff: float
    tolerance: float
    checked_shapes: list[list[int]]
    onnx_bytes: int
    fused_operators: dict[str, int] | None  # onnxruntime fusions applied (``optimize``)
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    opset: int = 18,
    tolerance: float = 1e-4,
    overwrite: bool = False,
    optimize: bool = False,
) -> ExportReport:
    """Export the model saved in ``model_dir`` to ``out_dir/model.onnx`` and verify it;
    ``optimize`` fuses it for onnxruntime first (the verified file is the fused one).

    Raises:
        ConfigError: the ONNX packages are missing (``pip install 'prunekit[onnx]'``).
        ModelLoadError: ``model_dir`` is not a loadable model with a tokenizer.
        ExportError: tracing failed, or onnxruntime disagrees with PyTorch.
        OutputExistsError: ``out_dir`` exists and ``overwrite`` is false.
    """
    require_onnx()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    refuse_output_holding(out_dir, model_dir)
    check_output_dir(out_dir, overwrite)
    model = load(model_dir, attn_implementation="eager")
    tokenizer = load_tokenizer(model_dir)
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in tokenizer.model_input_names if n in accepted]
    longest = min(128, max_sequence_length(model))  # a small position table
    example = _encode(tokenizer, TRACE_TEXTS, names, longest)
    with torch.no_grad():
        output_name = "logits" if hasattr(model(**example), "logits") else "last_hidden_state"

    with atomic_output_dir(out_dir, overwrite) as tmp:
        onnx_path = tmp / ONNX_NAME
        _trace(model, example, names, output_name, opset, onnx_path)
        written = _default_opset(onnx_path)
        if written != opset:  # torch builds at 18 and down-converts, keeping 18 if that fails
            raise ExportError(
                f"the graph was exported at opset {written}, not the {opset} asked for (torch "
                f"could not convert it); use --opset {written}"
            )
        fused = _fuse_for_onnxruntime(onnx_path) if optimize else None
        try:
            session = onnx_session(onnx_path)
        except Exception as err:  # an opset or an operator this onnxruntime lacks
            raise ExportError(
                f"onnxruntime cannot load the exported graph ({str(err).splitlines()[0]}); try "
                "another --opset, or a float32 model"
            ) from None
        worst, shapes = 0.0, []
        for texts in CHECK_TEXTS:
            inputs = _encode(tokenizer, texts, names, longest)
            with torch.no_grad():
                want = getattr(model(**inputs), output_name).float().numpy()
            try:
                got = session.run([output_name], {k: v.numpy() for k, v in inputs.items()})[0]
            except Exception as err:  # onnxruntime raises its own untyped errors
                raise ExportError(
                    f"the exported graph fails on a batch of shape {list(inputs[names[0]].shape)}"
                    f" (it may have been specialised to the traced shape): {err}"
                ) from None
            if got.shape != want.shape:
                raise ExportError(
                    f"the exported graph returns {output_name} of shape {list(got.shape)} for a "
                    f"batch PyTorch answers with {list(want.shape)}; nothing was written"
                )
            difference = float(np.abs(got - want).max())
            if not np.isfinite(difference):  # max(0.0, nan) would be 0.0: check it here
                raise ExportError(
                    f"the exported graph or the model gives non-finite {output_name} on a batch "
                    f"of shape {list(inputs[names[0]].shape)}; nothing was written"
                )
            worst = max(worst, difference)
            shapes.append(list(inputs[names[0]].shape))
        if not worst <= tolerance:
            raise ExportError(
                f"onnxruntime's outputs differ from PyTorch's by {worst:.2e} (> tolerance "
                f"{tolerance:.0e}); nothing was written. "
                + ("Export without --optimize" if optimize else "Try another --opset")
            )
        shutil.copy2(model_dir / "config.json", tmp / "config.json")
        tokenizer.save_pretrained(tmp)
        report = ExportReport(
            path=str(out_dir / ONNX_NAME),
            opset=opset,
            inputs=names,
            output=output_name,
            max_abs_diff=worst,
            tolerance=tolerance,
            checked_shapes=shapes,
            onnx_bytes=onnx_path.stat().st_size,
            fused_operators=fused,
            versions={
                p: _version(p)
                for p in ("torch", "transformers", "onnx", "onnxruntime", "onnxscript")
            },
        )
        (tmp / "export.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime CPU session with as many intra-op threads as torch uses: by default
    onnxruntime takes every physical core whatever ``OMP_NUM_THREADS`` says, and a timing
    against torch would compare two thread counts. Default options otherwise (spinning
    threads are part of why onnxruntime is fast)."""
    ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def require_onnx():
    """The onnxruntime module, or a `ConfigError` naming the missing package and the fix."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"ONNX export needs onnx, onnxruntime and onnxscript ({err.name} is missing): "
            "pip install 'prunekit[onnx]'"
        ) from None
    return onnxruntime


def _version(package: str) -> str:
    # onnxruntime-gpu, -openvino, ... install the onnxruntime module under another name
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return getattr(importlib.import_module(package), "__version__", "unknown")


def _default_opset(path: Path) -> int:
    """The default ONNX domain's opset of the file at ``path`` (without its weights)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _encode(
    tokenizer, texts: list[str], names: list[str], max_length: int = 128
) -> dict[str, torch.Tensor]:
    encoded = tokenizer(
        texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {name: encoded[name] for name in names}


def _trace(model, example: dict, names: list[str], output_name: str, opset: int, path: Path):
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: sequence} for name in names}
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" per op
    try:
        with quiet_transformers(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (),
                kwargs=example,
                input_names=names,
                output_names=[output_name],
                dynamic_shapes=dynamic,
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
            program.save(str(path))
    except Exception as err:  # the exporter raises many internal error types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"torch.onnx could not export the model: {first_line}") from err
    finally:
        exporter_log.setLevel(level)


def _fuse_for_onnxruntime(path: Path) -> dict[str, int]:
    """Rewrite ``path`` with onnxruntime's transformer fusions; the fused operator counts.

    The head counts are read from the graph (``num_heads=0``), since a pruned model's layers
    differ; fusions whose pattern does not match are simply not applied."""
    from onnxruntime.transformers.optimizer import optimize_model

    fusion_log = logging.getLogger("onnxruntime.transformers")
    level = fusion_log.level
    fusion_log.setLevel(logging.ERROR)
    try:
        fused = optimize_model(
            str(path), model_type="bert", num_heads=0, hidden_size=0, opt_level=0
        )
        fused.save_model_to_file(str(path))
    except Exception as err:  # the optimizer raises many internal error types
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"onnxruntime could not optimise the graph ({first_line}); export without --optimize"
        ) from err
    finally:
        fusion_log.setLevel(level)
    return {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
