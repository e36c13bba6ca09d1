"""The speed table's ratios against a baseline."""

from __future__ import annotations

import torch
from conftest import tiny_model

from prunekit import PruningPlan, apply_plan, current_plan
from prunekit.bench import speed_table
from prunekit.models import model_stats


def test_a_model_with_no_encoder_work_left_gets_a_ratio_not_a_zero_division():
    dense = tiny_model("bert")
    shape = current_plan(dense)
    emptied = PruningPlan(
        num_layers=shape.num_layers,
        num_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        kept_heads=tuple(() for _ in range(shape.num_layers)),
        kept_ffn=tuple(() for _ in range(shape.num_layers)),
    )
    model = apply_plan(tiny_model("bert"), emptied)
    models = {"baseline": dense, "model": model}
    stats = {name: model_stats(m).to_dict() for name, m in models.items()}
    assert stats["model"]["encoder_macs"] == 0
    table = speed_table(models, stats, seq_len=8, throughput_batch=2, rounds=1, warmup=0)
    speedup = table["models"]["model"]["speedup"]
    assert speedup["ideal"] == stats["baseline"]["encoder_macs"]  # as if one MAC were left
    assert speedup["latency"] > 0


def test_bench_times_the_weights_in_the_dtype_asked_and_half_precision_on_a_gpu(tmp_path):
    import pytest

    from prunekit.bench import timing_dtype
    from prunekit.errors import ConfigError
    from prunekit.models import save
    from prunekit.recipes.bench import run_bench

    assert timing_dtype("cuda:0") == torch.float16 and timing_dtype("cpu") == torch.float32
    assert timing_dtype("cpu", "bfloat16") == torch.bfloat16
    folder = save(tiny_model("bert"), tmp_path / "m")
    timed = run_bench(folder, seq_len=8, rounds=1, warmup=0, device="cpu", dtype="bfloat16")
    assert timed["environment"]["dtype"] == "bfloat16"
    on_cpu = run_bench(folder, seq_len=8, rounds=1, warmup=0, device="cpu")
    assert on_cpu["environment"]["dtype"] == "float32"
    with pytest.raises(ConfigError, match="--dtype"):
        run_bench(folder, seq_len=8, rounds=1, warmup=0, dtype="int8")
    with pytest.raises(ConfigError, match="drop --dtype"):
        run_bench(folder, seq_len=8, rounds=1, warmup=0, runtime="sparse", dtype="float16")
