"""Commands that look at or convert models, and list methods: inspect, bench, export, compact,
methods."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunekit.cli.app import AsJson, DeviceOption, Overwrite, app, emit, user_errors


@app.command()
@user_errors
def inspect(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    seq_len: Annotated[int, typer.Option(help="Sequence length for MACs.")] = 128,
    as_json: AsJson = False,
) -> None:
    """Heads, FFN widths, parameters (dense and nonzero) and MACs of a model, now and dense."""
    from prunekit.recipes.inspect import run_inspect

    stats = run_inspect(model, seq_len)
    human = (
        f"{stats['architecture']}: {stats['heads_total']}/{stats['heads_original']} heads "
        f"(per layer {stats['heads_per_layer']}), {stats['parameters']:,}/"
        f"{stats['parameters_original']:,} parameters"
    )
    if "parameters_nonzero" in stats and stats["parameters_nonzero"] != stats["parameters"]:
        human += f" ({stats['parameters_nonzero']:,} nonzero)"
    human += (
        f", encoder MACs@{seq_len} {stats['encoder_macs']:,}/{stats['encoder_macs_original']:,}"
    )
    disk = stats["disk_bytes"]
    human += f"\non disk: {disk['total'] / 1e6:.1f} MB"
    for key, what, dense in (
        ("sparse_tensors", "sparse linears", "dense fp32"),
        ("quantized_tensors", "word embeddings", "fp32"),
    ):
        if key in disk:
            part = disk[key]
            human += (
                f"; {what} {part['stored_bytes'] / 1e6:.1f} MB stored for "
                f"{part['dense_fp32_bytes'] / 1e6:.1f} MB {dense} ({part['ratio']:.1f}x smaller)"
            )
    if stats.get("dropped_modules"):
        human += (
            "\nnot counted: the config names "
            f"{', '.join(stats['dropped_modules'])}, whose weights are not in the checkpoint "
            "(loaded without them instead of initialising them at random)"
        )
    emit(stats, as_json, human)


@app.command()
@user_errors
def bench(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    against: Annotated[
        str | None, typer.Option(help="Baseline model directory to compare with.")
    ] = None,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    rounds: Annotated[int, typer.Option(help="Timed rounds per model (median reported).")] = 10,
    runtime: Annotated[
        str,
        typer.Option(
            help="torch; onnxruntime (exports and checks each model first); or sparse (the "
            "model's sparse CPU path vs dense torch and dense onnxruntime, with the "
            "break-even sparsity)."
        ),
    ] = "torch",
    device: DeviceOption = "auto",
    dtype: Annotated[
        str,
        typer.Option(
            help="Weights' type while timed in torch: auto (float16 on a GPU, float32 on the "
            "CPU), float32, float16 or bfloat16."
        ),
    ] = "auto",
    as_json: AsJson = False,
) -> None:
    """Measured latency (batch 1) and throughput (batch 32) vs the MAC-ideal speed-up."""
    from prunekit.recipes.bench import run_bench

    result = run_bench(
        model,
        against,
        seq_len=seq_len,
        rounds=rounds,
        runtime=runtime,
        device=device,
        dtype=dtype,
    )
    lines = [f"runtime: {result['runtime']}"]
    for name, entry in result["models"].items():
        line = (
            f"{name}: {entry['heads']} heads, latency {entry['latency']['median_s'] * 1e3:.1f} ms, "
            f"throughput {entry['throughput']['sequences_per_s']:.1f} seq/s"
        )
        if "vs_onnxruntime" in entry:
            v = entry["vs_onnxruntime"]
            line += (
                f"; vs onnxruntime dense: latency {v['latency']:.2f}x, "
                f"throughput {v['throughput']:.2f}x"
            )
        if "speedup" in entry:
            s = entry["speedup"]
            line += (
                f"; speed-up latency {s['latency']:.2f}x, throughput {s['throughput']:.2f}x, "
                f"ideal {s['ideal']:.2f}x (measured/ideal {s['throughput_vs_ideal']:.2f})"
            )
        lines.append(line)
    if "sparse_linears" in result:
        converted = sum(c["sparse"] for c in result["sparse_linears"])
        even = ", ".join(
            f"batch {batch}: " + (f"{value:.0%}" if value is not None else "none up to 98%")
            for batch, value in result["break_even_sparsity"].items()
        )
        hybrid = sum(c["dense_above"] is not None for c in result["sparse_linears"])
        bsr = sum(bool(c["sparse"] and c.get("block")) for c in result["sparse_linears"])
        fused = any(c["name"].endswith(".qkv") for c in result["sparse_linears"])
        notes = [f"{hybrid} of them dense above a token threshold"] if hybrid else []
        notes += [f"{bsr} of them BSR (block-sparse)"] if bsr else []
        blocks = "".join(
            f"; with {block}x{block} blocks ("
            + ", ".join(
                f"batch {batch}: " + (f"{value:.0%}" if value is not None else "none up to 98%")
                for batch, value in values.items()
            )
            + ")"
            for block, values in result.get("break_even_sparsity_bsr", {}).items()
        )
        lines.append(
            f"sparse path: {converted}/{len(result['sparse_linears'])} "
            + ("projections (feature-major encoder, query/key/value fused)" if fused else "linears")
            + " converted"
            + (f" ({'; '.join(notes)})" if notes else "")
            + f"; break-even sparsity on this CPU ({even}){blocks}"
        )
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    emit(result, as_json, "\n".join(lines))


@app.command()
def methods(as_json: AsJson = False) -> None:
    """List the registered pruning methods, what they need and their settings."""
    from prunekit.recipes.inspect import run_methods

    infos = run_methods()
    lines = []
    for info in infos:
        needs = [f"targets {'/'.join(info['targets'])}"]
        needs += [flag.replace("_", " ") for flag in _FLAGS if info[flag]]
        needs.append(f"reads {' and '.join(info['needs_data']) or 'no data'}")
        if info["attn_implementation"]:
            needs.append(f"{info['attn_implementation']} attention")
        marker = " [default]" if info.get("default") else ""
        lines.append(f"{info['name']}{marker}: {info['summary']} ({', '.join(needs)})")
        for name, option in info["options"].items():
            lines.append(
                f"    {name} = {option['default']!r}  {option['description']}{_read_only(option)}"
            )
    emit({"methods": infos}, as_json, "\n".join(lines))


def _read_only(option: dict) -> str:
    if switch := option.get("read_only_with"):
        return f" [only with {switch}]"
    mode = option.get("read_only_in_mode")
    return {"budget": " [budget mode only]", "count": " [with a head count only]"}.get(mode, "")


_FLAGS = ("decides_count", "certifies", "trains_weights", "needs_teacher", "prunes_pretrained")


@app.command()
@user_errors
def export(
    model: Annotated[str, typer.Argument(help="Model directory (pruned or dense).")],
    out: Annotated[Path, typer.Option(help="Output directory for model.onnx and friends.")],
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 18,
    tolerance: Annotated[
        float, typer.Option(help="Largest allowed |onnxruntime - PyTorch| output difference.")
    ] = 1e-4,
    optimize: Annotated[
        bool,
        typer.Option(
            help="Fuse for onnxruntime (SkipLayerNormalization, BiasGelu): faster there, but "
            "the file then needs onnxruntime's contrib ops."
        ),
    ] = False,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Export to ONNX (dynamic batch and length) and check it against PyTorch with onnxruntime."""
    from prunekit.recipes.inspect import run_export

    report = run_export(model, out, opset, tolerance, overwrite, optimize)
    human = (
        f"wrote {report['path']} ({report['onnx_bytes'] / 1e6:.1f} MB, opset {report['opset']}); "
        f"onnxruntime vs PyTorch max |diff| {report['max_abs_diff']:.1e} on shapes "
        f"{report['checked_shapes']}"
    )
    emit(report, as_json, human)


@app.command()
@user_errors
def compact(
    model: Annotated[str, typer.Argument(help="Model directory (pruned or dense).")],
    out: Annotated[Path, typer.Option(help="Output directory for the smaller copy.")],
    sparse_values: Annotated[
        str, typer.Option(help="Nonzeros of sparse weights: float32 (exact) or float16.")
    ] = "float32",
    embeddings: Annotated[
        str, typer.Option(help="Word embeddings: float32, float16 or int8 (per-row scales).")
    ] = "float32",
    overwrite: Overwrite = False,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=2**32 - 1, help="Seed of the random batch the outputs are compared on."
        ),
    ] = 0,
    as_json: AsJson = False,
) -> None:
    """Store a model smaller: half-precision sparse values, float16 or int8 word embeddings."""
    from prunekit.recipes.inspect import run_compact

    report = run_compact(model, out, sparse_values, embeddings, overwrite, seed)
    human = (
        f"wrote {report['out']}: {report['bytes_before'] / 1e6:.1f} MB -> "
        f"{report['bytes_after'] / 1e6:.1f} MB; outputs moved by at most "
        f"{report['max_abs_output_change']:.1e} on a random batch (check task metrics with "
        "`prunekit eval`)"
    )
    emit(report, as_json, human)
