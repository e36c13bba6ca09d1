"""CUDA runs match CPU runs: gates, gradient scores, the A* evaluator and timings.

Every test here is ``@pytest.mark.gpu``; tests/conftest.py skips them without CUDA.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import HeadGates
from prunekit.bench import environment, time_models
from prunekit.data import get_task
from prunekit.device import resolve_device
from prunekit.scoring import head_importance
from prunekit.scoring.evaluator import GatedEvaluator

pytestmark = pytest.mark.gpu

L, H = TINY["layers"], TINY["heads"]


def some_gates() -> torch.Tensor:
    gates = torch.ones(L, H)  # on the CPU on purpose: HeadGates must move them
    gates[0, 1] = 0.0
    gates[2, :3] = 0.3
    return gates


def labelled():
    return [
        {**tiny_batch(batch=4, seq=9, seed=s), "labels": torch.tensor([0, 1, 1, 0])} for s in (1, 2)
    ]


def test_auto_resolves_to_cuda():
    assert resolve_device("auto").type == "cuda"


def test_head_gates_on_cuda_equal_the_cpu_result(family):
    batch = tiny_batch()
    model = tiny_model(family)
    with torch.no_grad(), HeadGates(model, some_gates()):
        expected = model(**batch).logits
    model.cuda()
    with torch.no_grad(), HeadGates(model, some_gates()) as gates:
        actual = model(**{k: v.cuda() for k, v in batch.items()}).logits
    assert gates.values.device.type == "cuda"
    torch.testing.assert_close(actual.cpu(), expected, rtol=1e-4, atol=1e-4)


def test_gradients_reach_a_cpu_leaf_through_a_cuda_model():
    model = tiny_model("bert").cuda()
    leaf = torch.ones(L, H, requires_grad=True)
    with HeadGates(model, leaf) as gates:
        model(**{k: v.cuda() for k, v in tiny_batch().items()}).logits.sum().backward()
    assert gates.values is leaf and leaf.grad is not None and (leaf.grad.abs() > 0).all()
    with HeadGates(model, requires_grad=True) as gates:
        model(**{k: v.cuda() for k, v in tiny_batch().items()}).logits.sum().backward()
    assert gates.values.is_leaf and gates.values.grad.device.type == "cuda"


def test_head_importance_on_cuda_matches_the_cpu():
    model = tiny_model("bert")
    expected = head_importance(model, labelled(), gates=some_gates())
    actual = head_importance(model.cuda(), labelled(), gates=some_gates())
    assert actual.device.type == "cpu"
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=1e-6)


def test_head_importance_in_bfloat16_on_cuda():
    scores = head_importance(tiny_model("bert").cuda().to(torch.bfloat16), labelled())
    assert torch.isfinite(scores).all() and (scores > 0).any()


def test_gated_evaluator_on_cuda():
    states = [frozenset(), frozenset({(2, 1)}), frozenset({(2, 1), (0, 3)})]
    model = tiny_model("bert")
    cpu = GatedEvaluator(model, labelled(), get_task("rte"), cache_bytes=0)
    expected = cpu.logits(states)
    cuda_model = tiny_model("bert").cuda()
    plain = GatedEvaluator(cuda_model, labelled(), get_task("rte"), cache_bytes=0)
    cached = GatedEvaluator(cuda_model, labelled(), get_task("rte"), states_per_forward=2)
    assert all(v.is_cuda for b in cached.batches for v in b.values())
    cached.metrics(states[:1])
    for a, b, c in zip(cached.logits(states), plain.logits(states), expected, strict=True):
        assert (a == b).all()  # the prefix cache replays exactly, on the GPU too
        torch.testing.assert_close(torch.from_numpy(a), torch.from_numpy(c), rtol=1e-4, atol=1e-4)
    assert cached.stats.layer_forwards_saved > 0
    assert cached.fingerprint() != cpu.fingerprint()  # GPU metrics get their own memo


def test_time_models_on_cuda():
    models = {"a": tiny_model("bert"), "b": tiny_model("bert", seed=1)}
    timings = time_models(models, batch_size=2, seq_len=16, rounds=3, warmup=1, device="cuda")
    assert all(next(m.parameters()).is_cuda for m in models.values())
    assert all(t.min_s > 0 and t.rounds == 3 for t in timings.values())
    info = environment(models.values())
    assert info["device"].startswith("cuda") and info["gpu"] == torch.cuda.get_device_name(0)
    assert info["dtype"] == "float32"


def test_bench_on_a_gpu_times_float16_by_default(tmp_path):
    from prunekit.models import save
    from prunekit.recipes.bench import run_bench

    folder = save(tiny_model("bert"), tmp_path / "m")
    result = run_bench(folder, seq_len=8, rounds=2, warmup=1, device="cuda")
    assert result["environment"]["dtype"] == "float16"
    assert "gpu" in result["environment"]


@pytest.mark.parametrize("is_regression", [False, True])
def test_distillation_takes_a_teacher_on_another_device(is_regression):
    """peer keeps its teacher where it is and moves every feature; the logits too."""
    from prunekit.train.distill import distillation_parts

    classes = 1 if is_regression else 3
    teacher = torch.randn(4, classes)  # CPU
    student = torch.randn(4, classes, device="cuda")
    labels = torch.rand(4, device="cuda") if is_regression else torch.tensor([0, 1, 2, 1]).cuda()
    parts = distillation_parts(student, teacher, labels, is_regression=is_regression)
    on_cpu = distillation_parts(student.cpu(), teacher, labels.cpu(), is_regression=is_regression)
    for name, value in parts.items():
        assert value.item() == pytest.approx(on_cpu[name].item(), rel=1e-5)


def test_movement_on_cuda_keeps_the_weights_an_earlier_plan_dropped():
    """The dropped weights' scores are filled where the weights are (a CUDA mask into CPU
    scores failed)."""
    from conftest import train_request

    from prunekit import apply_plan, current_plan
    from prunekit.methods import get_method
    from prunekit.models.masks import masked_linears

    model = tiny_model("bert")
    plan = current_plan(model)
    earlier = {k: w.abs() > w.abs().median() for k, w in masked_linears(model, plan).items()}
    apply_plan(model, plan.with_masks(earlier)).cuda()
    options = {"epochs": 2, "batch_size": 2, "events": 2, "sparsity": 0.75}
    result = get_method("movement")(train_request(model, model, options))
    for key, kept in result.plan.masks.items():
        assert not bool((kept & ~earlier[key]).any()), key


def test_augmentation_neighbours_of_cuda_embeddings_match_the_cpu():
    from prunekit.data.augment import embedding_neighbours

    embeddings = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    words, candidates = torch.arange(10), torch.ones(64, dtype=torch.bool)
    on_cpu = embedding_neighbours(embeddings, words, candidates, count=5)
    on_cuda = embedding_neighbours(embeddings.cuda(), words, candidates, count=5)
    assert on_cuda.keys() == on_cpu.keys()
    for word, nearest in on_cuda.items():
        assert nearest.device.type == "cpu" and torch.equal(nearest, on_cpu[word])
