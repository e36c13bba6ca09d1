"""The speed table's ratios against a baseline."""

from __future__ import annotations

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
