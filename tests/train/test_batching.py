"""Length-grouped training batches: every example once per epoch, batches of similar length,
a new order each epoch, the same order for the same seed and epoch."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import pad_batch, tiny_model, varied_lengths

from prunekit.errors import ConfigError
from prunekit.train import TrainConfig, finetune
from prunekit.train.batching import SHUFFLE_ORDER, LengthGroupedSampler, ShuffledSampler


def lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 128) for _ in range(n)]


def padded_slots(order: list[int], sizes: list[int], batch: int) -> int:
    return sum(
        max(sizes[i] for i in order[s : s + batch]) * len(order[s : s + batch])
        for s in range(0, len(order), batch)
    )


def test_each_epoch_is_a_permutation_with_less_padding_than_random():
    sizes = lengths()
    sampler = LengthGroupedSampler(sizes, batch_size=32, seed=0, group=10)
    order = list(sampler)
    assert sorted(order) == list(range(len(sizes)))
    shuffled = list(range(len(sizes)))
    random.Random(1).shuffle(shuffled)
    real = sum(sizes)
    grouped, random_order = padded_slots(order, sizes, 32), padded_slots(shuffled, sizes, 32)
    assert grouped < 1.15 * real < random_order  # random batches of 32 pad ~1.9x here


def test_the_short_batch_comes_last_and_full_batches_hold_similar_lengths():
    sizes = lengths(100)
    order = list(LengthGroupedSampler(sizes, batch_size=8, seed=3, group=4))
    # 100 = 12 full batches of 8, then 4: a quarter of a sorted mega-batch of 32 spans ~30
    # lengths on average; a random batch of 8 spans ~95 of these 5..128
    spreads = [
        max(sizes[i] for i in order[s : s + 8]) - min(sizes[i] for i in order[s : s + 8])
        for s in range(0, 96, 8)
    ]
    assert sum(spreads) / len(spreads) < 50
    assert len(order[96:]) == 4 and sorted(order) == list(range(100))


def test_same_seed_and_epoch_same_order_other_epoch_other_order():
    sizes = lengths(300)
    a = LengthGroupedSampler(sizes, batch_size=16, seed=5)
    b = LengthGroupedSampler(sizes, batch_size=16, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(LengthGroupedSampler(sizes, batch_size=16, seed=6)) != first


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedSampler([3, 4], batch_size=0)


class Killed(Exception):
    pass


@pytest.mark.parametrize("every, kill, resumed_at", [(5, 12, 10), (3, 14, 12)])
def test_grouped_training_is_resumed_after_a_kill_to_the_same_weights(
    tmp_path, every, kill, resumed_at
):
    """Killed after an epoch's end, or mid-epoch (10 steps per epoch: step 12 is two batches
    into the second epoch, which the resumed run must skip in the same grouped order)."""
    config = TrainConfig(
        learning_rate=1e-3, epochs=3, batch_size=4, checkpoint_every=every, group_by_length=True
    )
    data = varied_lengths(40, classes=2)
    reference = tiny_model("bert")
    seen = []
    original_collate = pad_batch

    def collate(items):
        seen.append([len(item["input_ids"]) for item in items])
        return original_collate(items)

    finetune(reference, data, collate, config)
    assert len(seen) == 30  # every epoch: 10 batches of 4
    spread = sum(max(b) - min(b) for b in seen) / len(seen)
    assert spread < 4  # lengths 3..15; random batches of 4 span ~8

    def stop(step, total, values):
        if step == kill:
            raise Killed

    interrupted = tiny_model("bert")
    with pytest.raises(Killed):
        finetune(interrupted, data, pad_batch, config, checkpoint_dir=tmp_path, on_step=stop)
    resumed = tiny_model("bert")
    result = finetune(resumed, data, pad_batch, config, checkpoint_dir=tmp_path, resume=True)
    assert result.resumed_from_step == resumed_at and result.steps == 30
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_grouping_items_without_input_ids_is_refused():
    rows = [{"x": torch.zeros(2), "labels": torch.tensor(0)}] * 8
    config = TrainConfig(max_steps=1, batch_size=4, group_by_length=True)
    with pytest.raises(ConfigError, match="group_by_length needs"):
        finetune(tiny_model("bert"), rows, pad_batch, config)


def test_shuffled_batches_share_no_epoch_order_across_seeds():
    """accelerate's seedable sampler drew epoch e of seed s as seed s + e, so seed 1's first
    epoch was seed 0's second; each (seed, epoch) has its own order now, and a permutation."""
    orders = {}
    for seed in range(3):
        sampler = ShuffledSampler(200, seed)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            order = list(sampler)
            assert sorted(order) == list(range(200))
            orders[seed, epoch] = order
    assert len({tuple(o) for o in orders.values()}) == 9
    assert list(ShuffledSampler(200, 1)) == orders[1, 0]  # the same seed and epoch: same order


def test_the_order_keys_shuffled_runs_only():
    from prunekit.train.task_recipes import TaskRecipe

    shuffled = TaskRecipe(learning_rate=5e-5, epochs=3)
    assert shuffled.settings()["shuffle_order"] == SHUFFLE_ORDER
    grouped = shuffled.model_copy(update={"group_by_length": True})
    assert "shuffle_order" not in grouped.settings()  # length-grouped orders did not change


def test_the_loop_draws_shuffled_batches_from_its_own_sampler():
    from prunekit.train.batching import loader_order

    order = loader_order(list(range(10)), batch_size=4, group_by_length=False, seed=3)
    assert isinstance(order["sampler"], ShuffledSampler) and order["sampler"].seed == 3
