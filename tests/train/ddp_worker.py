"""Run under torchrun: each rank fine-tunes the same tiny model, with a trained scale outside it
(as a method's extra parameter group), and writes its final weights and scale."""

import os
import sys
from pathlib import Path

import safetensors.torch
import torch
from conftest import tiny_model
from torch.utils.data import default_collate
from train.test_finetune import toy_dataset

from prunekit.outputs import atomic_output_dir
from prunekit.train import ParamGroup, TrainConfig, TrainExtras, finetune

out = Path(sys.argv[1])
rank = int(os.environ["RANK"])
# Before any training formed accelerate's state: a shared output must still be the main
# process's alone (a state formed without cpu=True on this CPU-only host had no group).
with atomic_output_dir(out / "early", shared=True) as tmp:
    (tmp / "rank.txt").write_text(str(rank))
assert (out / "early" / "rank.txt").read_text() == "0"
model = tiny_model("bert")
if rank == 0:
    safetensors.torch.save_model(model, str(out / "initial.safetensors"))
scale = torch.nn.Parameter(torch.ones(1))


def loss_fn(model, batch, step):
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits * scale
    return torch.nn.functional.cross_entropy(logits, batch["labels"])


finetune(
    model,
    toy_dataset(),
    default_collate,
    TrainConfig(learning_rate=1e-3, epochs=2, batch_size=4, checkpoint_every=2),
    loss_fn=loss_fn,
    extras=TrainExtras(param_groups=[ParamGroup([scale], lr=0.05)]),
    checkpoint_dir=out / "checkpoints",  # every rank's random states land in one folder
    keep_checkpoint=True,
)
assert torch.distributed.get_world_size() == 2, "accelerate did not form a 2-process group"
# A second stage in another precision in the same processes (a bf16 fine-tune, then an fp32
# search): accelerate keeps one precision per process, so the loop resets it, not the group.
second = tiny_model("bert")
bf16 = TrainConfig(learning_rate=1e-3, epochs=1, batch_size=4, precision="bf16")
finetune(second, toy_dataset(), default_collate, bf16)
weights = {k: v.contiguous() for k, v in model.state_dict().items()}
weights["extra.scale"] = scale.detach().clone()
weights |= {f"second.{k}": v.contiguous() for k, v in second.state_dict().items()}
safetensors.torch.save_file(weights, str(out / f"rank{rank}.safetensors"))
# every rank saves one output folder, as a recipe does: the main one's lands, once
with atomic_output_dir(out / "saved", shared=True) as tmp:
    (tmp / "rank.txt").write_text(str(rank))
assert (out / "saved" / "rank.txt").read_text() == "0"
# the dense cache's lock under a launch: the main process takes it and tells the others
from prunekit.processes import main_process_value  # noqa: E402
from prunekit.train import task_recipes  # noqa: E402

assert main_process_value(rank == 0) is True  # the main process's answer, on every rank
with task_recipes._locked(out / ".cache.lock"):
    (out / f"locked{rank}.txt").write_text("in")
torch.distributed.barrier()
# a gloo group left to the interpreter's exit can abort a rank ("terminate called without an
# active exception") after its work is done
torch.distributed.destroy_process_group()
