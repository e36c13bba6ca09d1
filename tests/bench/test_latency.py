"""Timing statistics from synthetic samples, the spread warning, and real timings on the CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

from prunekit.bench import (
    SPREAD_THRESHOLD,
    Timing,
    environment,
    spread_warning,
    summarize,
    time_models,
    unreliable,
)
from prunekit.device import cpu_name
from prunekit.errors import ConfigError

OLD_KEYS = {"batch_size", "seq_len", "median_s", "mean_s", "std_s", "rounds", "warmup"}


def test_summary_statistics_of_known_samples():
    timing = summarize([0.010, 0.012, 0.011, 0.013, 0.050], batch_size=4, seq_len=16, warmup=2)
    assert timing.median_s == pytest.approx(0.012)
    assert timing.min_s == pytest.approx(0.010)
    assert timing.iqr_s == pytest.approx(0.013 - 0.011)  # the 50 ms hiccup does not count
    assert timing.spread == pytest.approx(0.002 / 0.012)
    assert timing.rounds == 5 and timing.warmup == 2
    assert timing.sequences_per_s == pytest.approx(4 / 0.012)


def test_to_dict_keeps_the_old_keys_and_adds_the_spread():
    record = summarize([1.0, 1.0, 1.0], batch_size=1, seq_len=8).to_dict()
    assert OLD_KEYS | {"sequences_per_s"} <= set(record)
    assert record["spread"] == 0.0 and record["min_s"] == 1.0 and record["iqr_s"] == 0.0


def test_a_single_round_has_no_spread():
    timing = summarize([0.5], batch_size=1, seq_len=8)
    assert timing.std_s == 0.0 and timing.spread == 0.0 and timing.trustworthy()


def test_busy_machine_samples_are_flagged_with_advice():
    quiet = summarize([1.00, 1.01, 0.99, 1.00, 1.02], batch_size=32, seq_len=128)
    busy = summarize([1.0, 1.9, 0.6, 1.5, 2.2, 0.7], batch_size=1, seq_len=128)
    assert quiet.trustworthy() and not busy.trustworthy()
    assert unreliable([quiet, busy]) == [busy]
    warning = spread_warning([quiet, busy])
    assert warning is not None and "\n" not in warning
    assert warning.startswith(f"batch 1 timings vary by {busy.spread:.0%} of the median")
    assert f"(threshold {SPREAD_THRESHOLD:.0%})" in warning
    assert "OMP_NUM_THREADS" in warning and "--rounds" in warning
    assert spread_warning([quiet]) is None


def test_warning_names_every_noisy_batch_size_and_the_worst_spread():
    noisy = [
        summarize([1.0, 1.5, 0.8, 1.2], batch_size=1, seq_len=8),
        summarize([1.0, 3.0, 0.5, 2.0], batch_size=32, seq_len=8),
    ]
    warning = spread_warning(noisy, threshold=0.2)
    worst = max(t.spread for t in noisy)
    assert warning is not None and warning.startswith(f"batches 1, 32 timings vary by {worst:.0%}")


def test_bad_statistics_input_is_a_one_line_error():
    with pytest.raises(ConfigError, match="no timing samples"):
        summarize([], batch_size=1, seq_len=8)
    with pytest.raises(ConfigError, match="-0.1"):
        summarize([0.1, -0.1], batch_size=1, seq_len=8)
    with pytest.raises(ConfigError, match="threshold must be > 0"):
        unreliable([], threshold=0)


def test_a_hand_built_timing_without_the_new_fields_still_works():
    timing = Timing(
        batch_size=1, seq_len=8, median_s=1.0, mean_s=1.0, std_s=0.0, rounds=3, warmup=1
    )
    assert timing.spread == 0.0 and set(timing.to_dict()) >= OLD_KEYS


def test_time_models_on_the_cpu():
    models = {"a": tiny_model("bert"), "b": tiny_model("bert", seed=1)}
    timings = time_models(models, batch_size=2, seq_len=8, rounds=3, warmup=1, device="cpu")
    assert set(timings) == {"a", "b"}
    for timing in timings.values():
        assert timing.rounds == 3 and 0 < timing.min_s <= timing.median_s
        assert timing.spread == timing.iqr_s / timing.median_s


def test_time_models_refuses_models_on_different_devices():
    cpu = tiny_model("bert")
    with torch.device("meta"):
        elsewhere = tiny_model("bert")
    with pytest.raises(ConfigError, match="share a device"):
        time_models({"a": cpu, "b": elsewhere}, batch_size=1, seq_len=8, rounds=1)
    with pytest.raises(ConfigError, match="rounds must be >= 1"):
        time_models({"a": cpu}, batch_size=1, seq_len=8, rounds=0)


def test_time_models_refuses_onnxruntime_off_the_cpu_before_moving_models():
    model = tiny_model("bert")
    with pytest.raises(ConfigError, match="onnxruntime is timed on the CPU"):
        time_models({"a": model}, batch_size=1, seq_len=8, sessions={"a": object()}, device="meta")
    assert next(model.parameters()).device.type == "cpu"  # the refused call moved nothing


def test_environment_records_device_and_dtype():
    assert environment()["device"] == "cpu" and environment()["dtype"] == "float32"
    assert environment()["cpu"] == cpu_name()  # the processor model, where the OS names it
    info = environment([tiny_model("bert").to(torch.bfloat16)])
    assert info["device"] == "cpu" and info["dtype"] == "bfloat16"
    assert "gpu" not in info
    mixed = environment([tiny_model("bert"), tiny_model("bert").half()])
    assert mixed["dtype"] == "float16+float32"
