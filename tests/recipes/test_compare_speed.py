"""compare's speed columns: measured once per model and machine, read back after."""

from __future__ import annotations

from conftest import tiny_model

from prunekit.recipes import compare_speed


def test_timings_from_one_gpu_are_not_read_back_on_another(tmp_path, monkeypatch):
    timed = []

    def fake_speed_table(models, sizes, rounds, warmup):
        timed.append(len(timed))
        return {"models": {"model": {"speedup": {"throughput": 1.5 + len(timed)}}}, "warnings": []}

    monkeypatch.setattr(compare_speed, "speed_table", fake_speed_table)
    dense, model = tiny_model("bert"), tiny_model("bert")
    speeds = []
    # one host CPU, one thread count: only the card differs (a sweep resumed on an H200)
    for card in ("NVIDIA H100", "NVIDIA H100", "NVIDIA H200"):
        monkeypatch.setattr(compare_speed, "describe_device", lambda _, c=card: f"cuda:0 ({c})")
        speeds.append(compare_speed.pruned_speed(tmp_path, "m", dense, model)["measured_speedup"])
    assert speeds == [2.5, 2.5, 3.5]  # the H100's read back once, the H200 timed anew
